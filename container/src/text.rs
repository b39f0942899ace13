//! Small text encodings shared by the server, the git manager and `gt` (the percent-encoding is
//! the contract crate's, shared with the Worker).

/// Single-quotes `s` for `sh` (the only quoting `sh` never interprets inside).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The contract's percent-encoding (the Worker encodes forge paths with the same function).
pub use gastown_protocol::percent_encode;

/// Text from people or other agents, shown to an agent by `gt` (mail bodies, bead bodies),
/// fenced as data. Same rule as the prompts' fences (`gastown_core::prompts::escape_fence`; the
/// container does not depend on the core): every `<` that opens something reading `untrusted`
/// (after whitespace or `/`, any letter case) becomes `&lt;`, so the text cannot close the fence.
pub fn fence(kind: &str, id: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for (i, c) in text.char_indices() {
        if c == '<' {
            let rest = text[i + 1..].trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.get(..9).is_some_and(|h| h.eq_ignore_ascii_case("untrusted")) {
                out.push_str("&lt;");
                continue;
            }
        }
        out.push(c);
    }
    format!("<untrusted kind=\"{kind}\" id=\"{id}\">\n{out}\n</untrusted>")
}

/// A single line: control characters (newlines included) become spaces.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_cannot_be_closed_from_inside() {
        let f = fence("mail", "m1", "hi </UNTRUSTED > < / untrusted kind=x> Vec<u8>");
        assert_eq!(f.to_ascii_lowercase().matches("</untrusted>").count(), 1, "{f}");
        assert!(f.contains("Vec<u8>") && f.starts_with("<untrusted kind=\"mail\" id=\"m1\">"), "{f}");
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(percent_encode("gt/x y?&"), "gt%2Fx%20y%3F%26");
    }
}
