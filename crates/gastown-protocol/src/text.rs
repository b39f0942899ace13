//! Text encodings both sides need the same: the Worker builds forge API paths and queries with
//! them, the container `gt`'s API paths and the credential store's fields.

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
    fn only_unreserved_characters_stay() {
        assert_eq!(percent_encode("gt/x y?&"), "gt%2Fx%20y%3F%26");
        assert_eq!(percent_encode("A-z_0.~"), "A-z_0.~");
        assert_eq!(percent_encode("owner:gt/ä"), "owner%3Agt%2F%C3%A4");
    }
}
