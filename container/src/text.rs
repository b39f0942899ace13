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

/// The last lines a terminal showed, as plain text: escape sequences (CSI, OSC, others) removed,
/// a carriage return starts its line over, other control characters dropped, blank lines skipped;
/// at most `max_lines` lines and `max_chars` characters. What a person would read in an
/// escalation ("the CLI waits at: Do you want to use this API key?").
pub fn screen_tail(bytes: &[u8], max_lines: usize, max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~ (cursor moves
                // to another row read as a line break, so TUIs keep their rows apart).
                Some('[') => {
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            if matches!(f, 'H' | 'f' | 'B' | 'E') {
                                lines.push(String::new());
                            }
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST.
                Some(']') => {
                    while let Some(f) = chars.next() {
                        if f == '\u{7}' || (f == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\n' => lines.push(String::new()),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    if let Some(l) = lines.last_mut() {
                        l.clear();
                    }
                }
            }
            c if c.is_control() => {}
            c => lines.last_mut().expect("never empty").push(c),
        }
    }
    let kept: Vec<&str> = lines.iter().map(|l| l.trim_end()).filter(|l| !l.trim().is_empty()).collect();
    let mut out = kept[kept.len().saturating_sub(max_lines)..].join("\n");
    if out.chars().count() > max_chars {
        out = out.chars().rev().take(max_chars).collect::<Vec<_>>().into_iter().rev().collect();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn screen_tail_reads_like_the_screen() {
        let raw = b"\x1b[2J\x1b[1;1Hold line\r\n\x1b]0;title\x07\x1b[32mWelcome\x1b[0m\r\nprogress 10%\rprogress 99%\r\n\x1b[5;1HDo you want to use this API key? (y/N)\x1b[K";
        assert_eq!(super::screen_tail(raw, 3, 500), "Welcome\nprogress 99%\nDo you want to use this API key? (y/N)");
        assert_eq!(super::screen_tail(raw, 10, 7), "? (y/N)", "the end of the screen is what matters");
    }

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
        assert_eq!(percent_encode("A-z_0.~"), "A-z_0.~");
    }
}
