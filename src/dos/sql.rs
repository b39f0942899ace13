//! [`Db`] over a Durable Object's SQLite storage. Transactions use the runtime's
//! `transactionSync`, which rolls back when its callback throws; a two-line JS shim does the
//! throwing, so an `Err` from Rust rolls back without unwinding through wasm. Typed queries get
//! their rows as one JSON string serialised by the runtime (`toArray` + `JSON.stringify`): one
//! wasm↔JS crossing per query instead of one per cell; a value SQLite builds itself (a page of
//! rows as one JSON array) comes back as the one string it is.

use gastown_core::db::{Db, Row, SqlValue};
use gastown_core::{CoreError, CoreResult};
use wasm_bindgen::prelude::*;
use worker::{SqlStorage, SqlStorageValue, Storage};

#[wasm_bindgen(inline_js = "
export function gastown_tx(storage, f) { storage.transactionSync(() => { if (!f()) { throw new Error('gastown: rolled back'); } }); }
export function gastown_rows(sql, query, params) { return JSON.stringify(sql.exec(query, ...params).toArray()); }
export function gastown_text(sql, query, params) { const r = sql.exec(query, ...params).raw().next(); return r.done ? null : r.value[0]; }
")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn gastown_tx(storage: &JsValue, f: &mut dyn FnMut() -> bool) -> Result<(), JsValue>;
    /// The rows of a query as one JSON string, serialised by the runtime in a single call.
    #[wasm_bindgen(catch)]
    fn gastown_rows(sql: &JsValue, query: &str, params: &js_sys::Array) -> Result<String, JsValue>;
    /// The first column of the first row, as the runtime returns it (null: no row).
    #[wasm_bindgen(catch)]
    fn gastown_text(sql: &JsValue, query: &str, params: &js_sys::Array) -> Result<JsValue, JsValue>;
}

pub struct DoSql {
    sql: SqlStorage,
    storage: Storage,
}

impl DoSql {
    pub fn new(storage: Storage) -> Self {
        DoSql { sql: storage.sql(), storage }
    }

    /// True once the DO has any table of ours: lets a read on an unknown id answer 404 without
    /// creating storage for it.
    pub fn has_table(&self, name: &str) -> CoreResult<bool> {
        let rows = self.exec("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", vec![name.into()])?;
        Ok(matches!(rows.first().and_then(|r| r.first()), Some((_, SqlValue::Integer(n))) if *n > 0))
    }
}

/// Positional parameters as the runtime's `exec` takes them: one JS value each.
fn js_params(params: Vec<SqlValue>) -> js_sys::Array {
    let args = js_sys::Array::new();
    for p in params {
        args.push(&match p {
            SqlValue::Null => JsValue::NULL,
            SqlValue::Integer(i) => JsValue::from(i as f64),
            SqlValue::Real(f) => JsValue::from(f),
            SqlValue::Text(s) => JsValue::from(s),
        });
    }
    args
}

fn err(e: worker::Error) -> CoreError {
    CoreError::Internal(format!("sql: {e}"))
}

fn to_storage(v: SqlValue) -> SqlStorageValue {
    match v {
        SqlValue::Null => SqlStorageValue::Null,
        SqlValue::Integer(i) => SqlStorageValue::Integer(i),
        SqlValue::Real(f) => SqlStorageValue::Float(f),
        SqlValue::Text(s) => SqlStorageValue::String(s),
    }
}

fn from_storage(v: SqlStorageValue) -> SqlValue {
    match v {
        SqlStorageValue::Null => SqlValue::Null,
        SqlStorageValue::Boolean(b) => SqlValue::Integer(b as i64),
        SqlStorageValue::Integer(i) => SqlValue::Integer(i),
        SqlStorageValue::Float(f) => SqlValue::Real(f),
        SqlStorageValue::String(s) => SqlValue::Text(s),
        SqlStorageValue::Blob(b) => SqlValue::Text(String::from_utf8_lossy(&b).into_owned()),
    }
}

impl Db for DoSql {
    fn exec(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Vec<Row>> {
        let cursor = self.sql.exec(sql, params.into_iter().map(to_storage).collect::<Vec<_>>()).map_err(err)?;
        let cols = cursor.column_names();
        let mut out = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(err)?;
            out.push(cols.iter().cloned().zip(row.into_iter().map(from_storage)).collect());
        }
        Ok(out)
    }

    fn query_json(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<String> {
        gastown_rows(self.sql.as_ref(), sql, &js_params(params)).map_err(|e| CoreError::Internal(format!("sql: {e:?}")))
    }

    fn text(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Option<String>> {
        let v = gastown_text(self.sql.as_ref(), sql, &js_params(params)).map_err(|e| CoreError::Internal(format!("sql: {e:?}")))?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        v.as_string().map(Some).ok_or_else(|| CoreError::Internal(format!("expected text, got {v:?}")))
    }

    fn exec_batch(&self, sql: &str) -> CoreResult<()> {
        let cursor = self.sql.exec(sql, None).map_err(err)?;
        for row in cursor.raw() {
            row.map_err(err)?;
        }
        Ok(())
    }

    fn transaction_dyn(&self, f: &mut dyn FnMut() -> CoreResult<()>) -> CoreResult<()> {
        let mut outcome: CoreResult<()> = Ok(());
        let mut run = || match f() {
            Ok(()) => true,
            Err(e) => {
                outcome = Err(e);
                false
            }
        };
        let thrown = gastown_tx(self.storage.as_raw(), &mut run);
        match (outcome, thrown) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(js)) => Err(CoreError::Internal(format!("transaction failed: {js:?}"))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}
