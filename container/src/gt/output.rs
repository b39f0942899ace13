//! Human-readable rendering of API objects (`--json` bypasses all of this).
//!
//! Objects are read leniently from `serde_json::Value`: a missing field prints as
//! empty rather than failing, so the tool keeps working as the API grows.

use serde_json::Value;

use gastown_container::text::{fence, one_line};

/// A string field, or `""`.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A field rendered as text (strings bare, null/missing as `""`, others as JSON).
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The items of an array (an empty slice for anything else).
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Prints rows as left-aligned columns (the last column is not padded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(headers.to_vec()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Indents every line of `body`.
pub fn indent(body: &str, prefix: &str) -> String {
    body.lines().map(|l| if l.is_empty() { String::new() } else { format!("{prefix}{l}") }).collect::<Vec<_>>().join("\n")
}

/// Beads as columns: id, status, priority, title.
pub fn bead_table(beads: &[Value]) -> String {
    if beads.is_empty() {
        return "no beads\n".into();
    }
    let rows: Vec<Vec<String>> =
        beads.iter().map(|b| vec![s(b, "id").into(), s(b, "status").into(), s(b, "priority").into(), s(b, "title").into()]).collect();
    table(&["ID", "STATUS", "PRIORITY", "TITLE"], &rows)
}

/// One bead in full.
pub fn bead_detail(b: &Value) -> String {
    let mut out = format!("{}  {}\n", s(b, "id"), one_line(s(b, "title")));
    let mut meta = vec![format!("status: {}", s(b, "status")), format!("priority: {}", s(b, "priority"))];
    if !s(b, "type").is_empty() {
        meta.push(format!("type: {}", s(b, "type")));
    }
    if !s(b, "assignee_agent_id").is_empty() {
        meta.push(format!("assignee: {}", s(b, "assignee_agent_id")));
    }
    out.push_str(&format!("  {}\n", meta.join("  ")));
    let labels: Vec<&str> = items(b.get("labels").unwrap_or(&Value::Null)).iter().filter_map(Value::as_str).collect();
    if !labels.is_empty() {
        out.push_str(&format!("  labels: {}\n", labels.join(", ")));
    }
    if !s(b, "created_at").is_empty() {
        out.push_str(&format!("  created: {}", s(b, "created_at")));
        if !s(b, "created_by").is_empty() {
            out.push_str(&format!(" by {}", s(b, "created_by")));
        }
        out.push('\n');
    }
    if !s(b, "closed_at").is_empty() {
        out.push_str(&format!("  closed: {}\n", s(b, "closed_at")));
    }
    let body = s(b, "body");
    if !body.trim().is_empty() {
        // Written by people or agents: data, never instructions.
        out.push('\n');
        out.push_str(&indent(&fence("bead", s(b, "id"), body.trim_end()), "  "));
        out.push('\n');
    }
    out
}

/// One mail in full.
pub fn mail_detail(m: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!("Mail {}\n", s(m, "id")));
    out.push_str(&format!("From:    {}\n", s(m, "from")));
    out.push_str(&format!("To:      {}\n", s(m, "to_agent_id")));
    out.push_str(&format!("Date:    {}\n", s(m, "created_at")));
    out.push_str(&format!("Subject: {}\n", one_line(s(m, "subject"))));
    out.push('\n');
    let body = s(m, "body");
    if body.trim().is_empty() {
        out.push_str("(no body)\n");
    } else {
        // Written by a person or another agent (possibly compromised): data, never instructions.
        out.push_str(&fence("mail", s(m, "id"), body.trim_end()));
        out.push('\n');
    }
    out
}

/// `gt mail check`: every mail just taken, in full.
pub fn mail_check(mail: &[Value]) -> String {
    if mail.is_empty() {
        return "no unread mail\n".into();
    }
    let mut out = format!("{} unread mail, now marked read:\n\n", mail.len());
    for m in mail {
        out.push_str(&mail_detail(m));
        out.push('\n');
    }
    out
}

/// A mailbox: unread first, marked with `*`.
pub fn mail_table(mail: &[Value]) -> String {
    if mail.is_empty() {
        return "no mail\n".into();
    }
    let mut sorted: Vec<&Value> = mail.iter().collect();
    // Stable: unread first, otherwise the server's order.
    sorted.sort_by_key(|m| m.get("read").and_then(Value::as_bool).unwrap_or(false));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|m| {
            let unread = !m.get("read").and_then(Value::as_bool).unwrap_or(false);
            vec![
                if unread { "*".into() } else { " ".into() },
                s(m, "id").into(),
                s(m, "from").into(),
                s(m, "created_at").into(),
                s(m, "subject").into(),
            ]
        })
        .collect();
    let unread = rows.iter().filter(|r| r[0] == "*").count();
    let mut out = table(&[" ", "ID", "FROM", "DATE", "SUBJECT"], &rows);
    out.push_str(&format!("\n{unread} unread (*) of {}; read one with `gt mail read <id>`\n", rows.len()));
    out
}
