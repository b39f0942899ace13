//! Bounds for text that comes from outside (git, quality gates, a container's error) and is
//! stored in a row, a mail or an escalation. A merge conflicting in 11 000 files once produced a
//! result too big for a SQLite row and left its merge request running forever; everything on
//! that path is cut here, always with a visible marker saying what was left out.

/// Stored merge output (gate output, conflict reports) at most, in bytes.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Conflicting files named at most; the rest are counted.
pub const MAX_FILES: usize = 200;
/// A short text at most (an error, a git message, an escalation's quoted output).
pub const MAX_SHORT: usize = 4 * 1024;

/// The last `max` bytes of `s` (on a char boundary), after a `[… N bytes omitted]` line when
/// anything was cut: for gate output the end is what says why it failed.
pub fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {start} bytes omitted]\n{}", &s[start..])
}

/// The first `max` bytes of `s` (on a char boundary), then `[… N bytes omitted]` when cut.
pub fn head(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}[… {} bytes omitted]", &s[..end], s.len() - end)
}

/// `a, b, c` for at most [`MAX_FILES`] names, then `… and N more files`. `total` is how many
/// files there were when the list was already cut before it got here (by the container).
pub fn file_list(files: &[String], total: Option<u64>) -> String {
    let total = total.unwrap_or(0).max(files.len() as u64);
    let shown: Vec<String> = files.iter().take(MAX_FILES).map(|f| head(f, 512)).collect();
    let mut out = shown.join(", ");
    let more = total - shown.len() as u64;
    if more > 0 {
        out.push_str(&format!(" … and {more} more files"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_keep_a_marker_and_char_boundaries() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("abcdef", 3), "[… 3 bytes omitted]\ndef");
        assert_eq!(tail("aé", 1), "[… 3 bytes omitted]\n");
        assert_eq!(head("abcdef", 3), "abc[… 3 bytes omitted]");
        assert_eq!(head("éa", 1), "[… 3 bytes omitted]");
    }

    #[test]
    fn file_lists_name_the_first_files_and_count_the_rest() {
        let files: Vec<String> = (0..11_000).map(|i| format!("src/f{i}.rs")).collect();
        let s = file_list(&files, None);
        assert!(s.starts_with("src/f0.rs, src/f1.rs"));
        assert!(s.ends_with(" … and 10800 more files"), "{}", &s[s.len() - 40..]);
        assert!(s.contains("src/f199.rs") && !s.contains("src/f200.rs"));
        assert_eq!(file_list(&files[..2], Some(5000)), "src/f0.rs, src/f1.rs … and 4998 more files");
        assert_eq!(file_list(&files[..1], None), "src/f0.rs");
    }
}
