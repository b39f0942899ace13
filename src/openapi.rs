//! The API's OpenAPI 3.1 document and the dashboard's TypeScript types, both derived from the
//! route table ([`crate::router::ROUTES`]) and the Rust types its rows name (JSON Schema by
//! `schemars`). Native builds only: the Worker serves the checked-in `api/openapi.json`, and a
//! test here fails when that file or `dashboard/src/api.gen.ts` no longer matches the code
//! (`npm run gen:api` rewrites both).

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::router::{Access, ROUTES};

pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// What the document says about one route (see `route!` in the router).
pub struct Doc {
    pub summary: &'static str,
    pub query: Option<SchemaFn>,
    pub body: Option<SchemaFn>,
    pub status: u16,
    pub reply: Option<SchemaFn>,
    pub websocket: bool,
    /// Replies wrapped in `{"success": true, "data": …}` (all but `/health` and this document).
    pub enveloped: bool,
}

impl Doc {
    pub const fn websocket(summary: &'static str, query: Option<SchemaFn>) -> Doc {
        Doc { summary, query, body: None, status: 101, reply: None, websocket: true, enveloped: false }
    }
}

/// A reference to `T` (a named type lands in `components/schemas`).
pub fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// Replies are described as the Worker serialises them (a defaulted field is always there) and
/// inputs as it deserialises them (a defaulted field may be left out), so each side has its own
/// generator; see [`merge_definitions`].
fn generator(serialize: bool) -> SchemaGenerator {
    let mut s = SchemaSettings::draft2020_12();
    s.definitions_path = "/components/schemas".into();
    let s = if serialize { s.for_serialize() } else { s.for_deserialize() };
    s.into_generator()
}

/// One set of schemas from the two generators: a type that reads differently from how it is
/// written (defaults, skipped fields) keeps its name for the reply and is `…Input` as a request.
fn merge_definitions(replies: Map<String, Value>, inputs: Map<String, Value>, ops: &mut Value) -> Map<String, Value> {
    let renamed: Vec<String> = inputs.iter().filter(|(k, v)| replies.get(*k).is_some_and(|r| r != *v)).map(|(k, _)| k.clone()).collect();
    let rename = |v: &Value| -> Value {
        let mut text = v.to_string();
        for name in &renamed {
            text = text.replace(&format!("\"#/components/schemas/{name}\""), &format!("\"#/components/schemas/{name}Input\""));
        }
        serde_json::from_str(&text).expect("renaming references keeps JSON valid")
    };
    let mut all = replies;
    for (k, v) in &inputs {
        let v = rename(v);
        if renamed.contains(k) {
            all.insert(format!("{k}Input"), v);
        } else {
            all.entry(k.clone()).or_insert(v);
        }
    }
    // The request side of every operation points at the renamed inputs.
    for op in ops
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .flat_map(|m| m.as_object_mut().into_iter().flat_map(|m| m.values_mut()))
    {
        for key in ["parameters", "requestBody"] {
            if let Some(v) = op.get(key).map(&rename) {
                op[key] = v;
            }
        }
    }
    all
}

/// Path ids as the router accepts them (`gastown_core::ids::looks_like_id`).
fn id_schema() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
}

fn security(access: Access) -> Value {
    let people = [json!({"accessJwt": []}), json!({"accessCookie": []})];
    let agent = json!({"agentBearer": []});
    let list: Vec<Value> = match access {
        Access::Public | Access::Webhook => vec![],
        Access::Authenticated => people.into_iter().chain([agent]).collect(),
        Access::UserSelf | Access::TownOwner => people.into(),
        Access::RigMember | Access::AgentSelf | Access::Mayor => people.into_iter().chain([agent]).collect(),
        Access::Terminal => people.into_iter().chain([json!({"streamTicket": []})]).collect(),
    };
    Value::Array(list)
}

fn access_note(access: Access) -> &'static str {
    match access {
        Access::Public => "No credentials.",
        Access::Webhook => "No credentials; the body must carry the town's webhook signature.",
        Access::Authenticated => "Any authenticated caller.",
        Access::UserSelf => "The user named by the path.",
        Access::TownOwner => "The town's owner.",
        Access::RigMember => "The town's owner, or an agent of this rig.",
        Access::AgentSelf => "The town's owner, or the agent named by the path.",
        Access::Mayor => "The town's owner, or the town's mayor.",
        Access::Terminal => "The town's owner, or an unused stream ticket for this terminal.",
    }
}

fn envelope(data: Value) -> Value {
    // "Any JSON" as `{}` rather than the equivalent `true`: schemathesis 4.32 cannot read a
    // boolean schema where an envelope's `data` sits (tests/fuzz.test.mjs).
    let data = if data == json!(true) { json!({}) } else { data };
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": true}, "data": data},
    })
}

/// The whole document.
pub fn document() -> Value {
    let (mut g, mut gr) = (generator(false), generator(true));
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in ROUTES {
        let d = &r.doc;
        let path = r
            .path
            .split('/')
            .map(|s| s.strip_prefix(':').map_or_else(|| s.to_string(), |n| format!("{{{n}}}")))
            .collect::<Vec<_>>()
            .join("/");
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix(':'))
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": id_schema()}))
            .collect();
        if let Some(q) = d.query {
            // Query types are flat structs: each property is one parameter.
            let s = q(&mut g).to_value();
            let s = resolve(&g, &s);
            let required: Vec<&str> = s["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            for (name, schema) in s["properties"].as_object().into_iter().flatten() {
                let required = required.contains(&name.as_str());
                let mut param = json!({"name": name, "in": "query", "required": required, "schema": schema});
                if !required {
                    // `?status=` is the same as no `status` (`http::Query::decode`).
                    param["allowEmptyValue"] = json!(true);
                }
                params.push(param);
            }
        }
        let mut op = Map::new();
        op.insert("operationId".into(), json!(operation_id(r.method.as_ref(), r.path)));
        op.insert("summary".into(), json!(d.summary));
        op.insert("description".into(), json!(format!("Access: {}", access_note(r.access))));
        op.insert("tags".into(), json!([tag(r.path)]));
        op.insert("x-access".into(), json!(format!("{:?}", r.access)));
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        op.insert("security".into(), security(r.access));
        if let Some(b) = d.body {
            let schema = b(&mut g).to_value();
            // An empty body reads as `{}` (`gastown_core::json::from_body`), so a body whose
            // fields all have defaults may be left out altogether.
            let required = resolve(&g, &schema)["required"].as_array().is_some_and(|r| !r.is_empty());
            op.insert("requestBody".into(), json!({"required": required, "content": {"application/json": {"schema": schema}}}));
        }
        let mut responses = Map::new();
        if d.websocket {
            responses.insert("101".into(), json!({"description": "Switched to a WebSocket"}));
        } else {
            let data = d.reply.map_or(json!({}), |f| f(&mut gr).to_value());
            let body = if d.enveloped { envelope(data) } else { data };
            responses.insert(d.status.to_string(), json!({"description": "Success", "content": {"application/json": {"schema": body}}}));
        }
        responses.insert(
            "default".into(),
            json!({"description": "An error: 400 bad input, 401/403 credentials, 404 not found, 405, 409 conflict or limit, 413, 415, 5xx", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        op.insert("responses".into(), Value::Object(responses));
        paths.entry(path).or_default().insert(r.method.as_ref().to_ascii_lowercase(), Value::Object(op));
    }
    let mut paths = serde_json::to_value(paths).expect("paths are JSON");
    let mut schemas = merge_definitions(gr.take_definitions(true), g.take_definitions(true), &mut paths);
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["success", "error"], "properties": {"success": {"const": false}, "error": {"type": "string"}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gastown API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The control plane of a Gastown town: users' towns and rigs, beads, agents, mail, merges and live streams. People authenticate with Cloudflare Access; agents with their own short-lived JWT; terminals may use a single-use stream ticket.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "accessJwt": {"type": "apiKey", "in": "header", "name": "Cf-Access-Jwt-Assertion", "description": "The JWT Cloudflare Access puts on every request it lets through."},
                "accessCookie": {"type": "apiKey", "in": "cookie", "name": "CF_Authorization", "description": "The Access session cookie (browsers); non-GET requests must also come from an allowed Origin."},
                "agentBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An agent's own token (HS256, scoped to its town, rig and agent, short-lived)."},
                "streamTicket": {"type": "apiKey", "in": "query", "name": "ticket", "description": "A single-use, 60-second terminal ticket from POST …/stream-ticket."},
            },
        },
    })
}

/// Follows one `$ref` into the definitions gathered so far.
fn resolve(g: &SchemaGenerator, s: &Value) -> Value {
    match s.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
        Some(name) => g.definitions().get(name).cloned().unwrap_or_else(|| s.clone()),
        None => s.clone(),
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != "api") {
        id.push('_');
        id.push_str(&seg.trim_start_matches(':').replace(['-', '.'], "_"));
    }
    id
}

fn tag(path: &str) -> &'static str {
    let p = path;
    if p.starts_with("/api/users") {
        "users"
    } else if p.starts_with("/api/mayor") {
        "mayor tools"
    } else if p.starts_with("/api/webhooks") {
        "webhooks"
    } else if p.contains("/agents") {
        "agents"
    } else if p.contains("/beads") || p.ends_with("/sling") || p.contains("/rigs/:rigId/events") {
        "beads"
    } else if p.starts_with("/api/towns") {
        "towns"
    } else {
        "service"
    }
}

// ---------------------------------------------------------------------------------------------
// TypeScript

/// TypeScript declarations for every schema in the document, plus `ApiReplies`: what each route
/// answers (the `data` of its envelope), keyed by `"METHOD /path/{param}"`.
pub fn typescript(doc: &Value) -> String {
    let mut out = String::from(
        "// Generated from the Worker's route table and Rust types by `npm run gen:api`; do not edit.\n\
         // `npm test` fails when this file no longer matches the code.\n/* eslint-disable */\n\n",
    );
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        if let Some(d) = schema.get("description").and_then(Value::as_str) {
            out.push_str(&format!("/** {} */\n", d.replace("*/", "* /").replace('\n', " ")));
        }
        out.push_str(&format!("export type {name} = {};\n\n", ts(schema, 0)));
    }
    out.push_str("/** The `data` each route answers with. */\nexport interface ApiReplies {\n");
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            let Some((_, ok)) = op["responses"].as_object().and_then(|r| r.iter().find(|(k, _)| k.starts_with('2'))) else { continue };
            let schema = &ok["content"]["application/json"]["schema"];
            let data = if schema["properties"]["success"]["const"] == json!(true) { &schema["properties"]["data"] } else { schema };
            out.push_str(&format!("  {:?}: {};\n", format!("{} {path}", method.to_ascii_uppercase()), ts(data, 1)));
        }
    }
    out.push_str("}\n");
    out
}

fn ts(s: &Value, depth: usize) -> String {
    if s == &json!(true) || s.as_object().is_some_and(|o| o.is_empty() || o.keys().all(|k| k == "description")) {
        return "unknown".into();
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or("unknown").to_string();
    }
    if let Some(c) = s.get("const") {
        return c.to_string();
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e.iter().map(Value::to_string).collect::<Vec<_>>().join(" | ");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let mut parts: Vec<String> = alts.iter().map(|a| ts(a, depth)).collect();
            parts.dedup();
            return parts.join(" | ");
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        return all.iter().map(|a| ts(a, depth)).collect::<Vec<_>>().join(" & ");
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return if s.get("properties").is_some() { object(s, depth) } else { "unknown".into() };
    }
    types
        .iter()
        .map(|t| match *t {
            "string" => "string".to_string(),
            "integer" | "number" => "number".to_string(),
            "boolean" => "boolean".to_string(),
            "null" => "null".to_string(),
            "array" => match s.get("items") {
                Some(items) => format!("Array<{}>", ts(items, depth)),
                None => "unknown[]".to_string(),
            },
            "object" => object(s, depth),
            _ => "unknown".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn object(s: &Value, depth: usize) -> String {
    let props = s.get("properties").and_then(Value::as_object);
    let extra = s.get("additionalProperties").filter(|a| *a != &json!(false));
    match (props, extra) {
        (None, Some(a)) => format!("Record<string, {}>", ts(a, depth)),
        (None, None) => "Record<string, unknown>".into(),
        (Some(props), _) => {
            let required: Vec<&str> = s["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let pad = "  ".repeat(depth + 1);
            let mut o = String::from("{\n");
            for (k, v) in props {
                if let Some(d) = v.get("description").and_then(Value::as_str) {
                    o.push_str(&format!("{pad}/** {} */\n", d.replace("*/", "* /").replace('\n', " ")));
                }
                let opt = if required.contains(&k.as_str()) { "" } else { "?" };
                o.push_str(&format!("{pad}{k}{opt}: {};\n", ts(v, depth + 1)));
            }
            o.push_str(&"  ".repeat(depth));
            o.push('}');
            o
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// The served document and the dashboard's types are what the code says now. With
    /// `GASTOWN_UPDATE_API=1` (`npm run gen:api`) this test rewrites them instead.
    #[test]
    fn checked_in_document_and_types_are_current() {
        let doc = document();
        let json = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        let types = typescript(&doc);
        let files = [(root().join("api/openapi.json"), json), (root().join("dashboard/src/api.gen.ts"), types)];
        let update = std::env::var("GASTOWN_UPDATE_API").is_ok_and(|v| v == "1");
        for (path, want) in files {
            if update {
                std::fs::write(&path, &want).unwrap();
                continue;
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(have == want, "{} is out of date with the code: run `npm run gen:api` and commit the result", path.display());
        }
    }

    #[test]
    fn every_operation_is_documented_and_named_once() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        let mut n = 0;
        for ops in doc["paths"].as_object().unwrap().values() {
            for op in ops.as_object().unwrap().values() {
                n += 1;
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()), "duplicate operationId {}", op["operationId"]);
                assert!(!op["summary"].as_str().unwrap().is_empty());
                assert!(op["responses"]["default"].is_object());
            }
        }
        assert_eq!(n, ROUTES.len(), "one operation per route");
    }

    /// Every `$ref` points at a schema the document has (none dangles into nothing).
    #[test]
    fn references_resolve() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
    }
}
