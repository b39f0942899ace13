//! A minimal SQL interface that the stores are written against. The Worker implements it over a
//! Durable Object's SQLite storage; native tests implement it over rusqlite. Keeping the stores
//! behind this trait is what lets all control-plane logic run under plain `cargo test`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{CoreError, CoreResult};

/// A bound parameter or a returned cell.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(v as i64)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(v as i64)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

impl SqlValue {
    fn into_json(self) -> Value {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::from(i),
            SqlValue::Real(f) => Value::from(f),
            SqlValue::Text(s) => Value::String(s),
        }
    }
}

/// One result row: column names with their values, in query order.
pub type Row = Vec<(String, SqlValue)>;

/// Builds a parameter list: `params![a, b, c]`.
#[macro_export]
macro_rules! params {
    () => { Vec::<$crate::db::SqlValue>::new() };
    ($($v:expr),+ $(,)?) => { vec![$($crate::db::SqlValue::from($v)),+] };
}

pub trait Db {
    /// Runs one statement with positional `?` parameters and returns every row.
    fn exec(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Vec<Row>>;

    /// The rows as one JSON array of objects keyed by column name — the form every typed query
    /// decodes from. A backend that can build it natively (the Durable Object's SQLite, where
    /// the runtime serialises the rows in one call instead of one crossing per cell) overrides
    /// this; the default builds it from [`Db::exec`].
    fn query_json(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<String> {
        let rows: Vec<Value> = self
            .exec(sql, params)?
            .into_iter()
            .map(|row| Value::Object(row.into_iter().map(|(k, v)| (k, v.into_json())).collect()))
            .collect();
        Ok(Value::Array(rows).to_string())
    }

    /// The first column of the first row as text (`None`: no row, or NULL) — for a value SQLite
    /// built itself, e.g. a page of rows as one JSON array, handed over as it is. A backend that
    /// can return it without wrapping it in a row (the Durable Object's) overrides this.
    fn text(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Option<String>> {
        Ok(match self.exec(sql, params)?.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some((_, SqlValue::Text(t))) => Some(t),
            Some((_, SqlValue::Null)) | None => None,
            Some((_, v)) => return Err(CoreError::Internal(format!("expected text, got {v:?}"))),
        })
    }

    /// Runs a script of several statements without parameters (migrations).
    fn exec_batch(&self, sql: &str) -> CoreResult<()>;

    /// Runs `f` atomically: every write it made is kept if it returns `Ok`, none if it returns
    /// `Err`. Object-safe form; callers use [`DbExt::transaction`].
    fn transaction_dyn(&self, f: &mut dyn FnMut() -> CoreResult<()>) -> CoreResult<()>;
}

/// Typed helpers over [`Db`]; rows are decoded through serde so structs name their columns once.
pub trait DbExt: Db {
    /// Typed rows, decoded straight from [`Db::query_json`] (no per-cell intermediate values).
    fn query<T: DeserializeOwned>(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Vec<T>> {
        let json = self.query_json(sql, params)?;
        serde_json::from_str(&json).map_err(|e| CoreError::Internal(format!("decoding rows: {e}")))
    }

    fn query_opt<T: DeserializeOwned>(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Option<T>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// A single integer, e.g. `SELECT COUNT(*)`.
    fn scalar_i64(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<i64> {
        let rows = self.exec(sql, params)?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some((_, SqlValue::Integer(i))) => Ok(i),
            Some((_, SqlValue::Real(f))) => Ok(f as i64),
            Some((_, SqlValue::Null)) | None => Ok(0),
            Some((_, SqlValue::Text(t))) => t.parse().map_err(|_| CoreError::Internal(format!("expected an integer, got {t:?}"))),
        }
    }

    fn run(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<()> {
        self.exec(sql, params).map(|_| ())
    }

    /// Runs `f` atomically and returns its value.
    fn transaction<T>(&self, mut f: impl FnMut() -> CoreResult<T>) -> CoreResult<T> {
        let mut out = None;
        self.transaction_dyn(&mut || {
            out = Some(f()?);
            Ok(())
        })?;
        out.ok_or_else(|| CoreError::Internal("transaction produced no value".into()))
    }
}

impl<D: Db + ?Sized> DbExt for D {}

#[cfg(test)]
pub mod testing {
    use super::*;
    use rusqlite::types::ValueRef;
    use std::cell::Cell;

    pub struct MemDb {
        conn: rusqlite::Connection,
        depth: Cell<u32>,
        /// Every statement run through [`Db::exec`], while recording (see [`MemDb::recording`]).
        log: std::cell::RefCell<Option<Vec<String>>>,
        /// SQLite's virtual-machine steps over every statement run: what a statement costs in
        /// the rows it visits, whatever the machine's speed (see [`MemDb::steps`]).
        steps: Cell<u64>,
    }

    impl Default for MemDb {
        fn default() -> Self {
            Self::new()
        }
    }

    impl MemDb {
        pub fn new() -> Self {
            MemDb {
                conn: rusqlite::Connection::open_in_memory().unwrap(),
                depth: Cell::new(0),
                log: Default::default(),
                steps: Cell::new(0),
            }
        }

        /// The statements `f` runs: how the tests hold ops to a budget of SQL statements.
        pub fn recording<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<String>) {
            *self.log.borrow_mut() = Some(vec![]);
            let out = f();
            (out, self.log.borrow_mut().take().unwrap_or_default())
        }

        /// The virtual-machine steps SQLite took for the statements `f` runs: how the tests
        /// hold a read to a cost in rows visited, not in time.
        pub fn steps<T>(&self, f: impl FnOnce() -> T) -> (T, u64) {
            let before = self.steps.get();
            let out = f();
            (out, self.steps.get() - before)
        }
    }

    fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
        match v {
            SqlValue::Null => rusqlite::types::Value::Null,
            // As the Durable Object's SQL API binds it: the Worker passes an integer as a JS
            // number, which workerd binds as REAL, so arithmetic on a parameter is not integer
            // arithmetic (`(? + 1) / 2` is 1.5). Bound as INTEGER here, a bisection that was
            // right natively returned an empty page in workerd (tests/api.test.mjs, `since`).
            SqlValue::Integer(i) => rusqlite::types::Value::Real(*i as f64),
            SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
            SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
        }
    }

    impl Db for MemDb {
        fn exec(&self, sql: &str, params: Vec<SqlValue>) -> CoreResult<Vec<Row>> {
            let err = |e: rusqlite::Error| CoreError::Internal(format!("sql: {e}: {sql}"));
            if let Some(log) = self.log.borrow_mut().as_mut() {
                log.push(sql.to_string());
            }
            let mut stmt = self.conn.prepare(sql).map_err(err)?;
            let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
            let values: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
            let mut rows = stmt.query(rusqlite::params_from_iter(values.iter())).map_err(err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(err)? {
                let mut r = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    let v = match row.get_ref(i).map_err(err)? {
                        ValueRef::Null => SqlValue::Null,
                        ValueRef::Integer(i) => SqlValue::Integer(i),
                        ValueRef::Real(f) => SqlValue::Real(f),
                        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => SqlValue::Text(String::from_utf8_lossy(b).into_owned()),
                    };
                    r.push((name.clone(), v));
                }
                out.push(r);
            }
            drop(rows);
            let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
            self.steps.set(self.steps.get() + u64::try_from(steps).unwrap_or(0));
            Ok(out)
        }

        fn exec_batch(&self, sql: &str) -> CoreResult<()> {
            self.conn.execute_batch(sql).map_err(|e| CoreError::Internal(format!("sql: {e}")))
        }

        fn transaction_dyn(&self, f: &mut dyn FnMut() -> CoreResult<()>) -> CoreResult<()> {
            let depth = self.depth.get();
            let sp = format!("sp{depth}");
            self.exec_batch(&format!("SAVEPOINT {sp}"))?;
            self.depth.set(depth + 1);
            let result = f();
            self.depth.set(depth);
            match &result {
                Ok(_) => self.exec_batch(&format!("RELEASE {sp}"))?,
                Err(_) => self.exec_batch(&format!("ROLLBACK TO {sp}; RELEASE {sp}"))?,
            }
            result
        }
    }
}
