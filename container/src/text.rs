//! Small text encodings shared by the server, the git manager and `gt`.

/// Single-quotes `s` for `sh` (the only quoting `sh` never interprets inside).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (one path segment, one query
/// component, or a credential-store field).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(percent_encode("gt/x y?&"), "gt%2Fx%20y%3F%26");
        assert_eq!(percent_encode("A-z_0.~"), "A-z_0.~");
    }
}
