//! Identifiers people and agents can type: bead ids are a short per-rig prefix plus a random
//! base36 suffix (`gt-4k2x9`; town-level beads use `hq-`), and town/rig ids are random UUIDs.

use crate::error::{CoreError, CoreResult};

/// The prefix of beads that belong to the town rather than to a rig (mail, convoys, the mayor).
pub const TOWN_PREFIX: &str = "hq";
const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
pub const SUFFIX_LEN: usize = 5;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the platform has a random source");
    buf
}

/// `len` random base36 characters. Rejection sampling keeps the distribution uniform.
pub fn base36_suffix(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<16>() {
            // 252 = 7 * 36: bytes above it would bias the first characters.
            if b < 252 && out.len() < len {
                out.push(BASE36[(b % 36) as usize] as char);
            }
        }
    }
    out
}

pub fn bead_id(prefix: &str, suffix_len: usize) -> String {
    format!("{prefix}-{}", base36_suffix(suffix_len))
}

/// A random v4 UUID (towns, rigs).
pub fn uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Derives a bead prefix from a rig name: its initials when it has several words
/// (`gas-town` → `gt`), else its first two letters (`backend` → `ba`). Never `hq`.
pub fn derive_prefix(rig_name: &str) -> String {
    let words: Vec<&str> = rig_name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut p: String = if words.len() >= 2 {
        words.iter().take(3).filter_map(|w| w.chars().next()).collect()
    } else {
        words.first().map(|w| w.chars().take(2).collect()).unwrap_or_default()
    };
    p = p.to_ascii_lowercase();
    if p.len() < 2 || !p.starts_with(|c: char| c.is_ascii_lowercase()) {
        p = format!("r{p}");
    }
    if p == TOWN_PREFIX {
        p = "hqr".into();
    }
    p
}

pub fn validate_prefix(prefix: &str) -> CoreResult<()> {
    let ok = (2..=6).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        return Err(CoreError::bad("bead_prefix", "must be 2-6 lowercase letters or digits, starting with a letter"));
    }
    if prefix == TOWN_PREFIX {
        return Err(CoreError::bad("bead_prefix", "\"hq\" is reserved for town-level beads"));
    }
    Ok(())
}

/// True for ids this system could have produced; used to reject junk in paths early.
pub fn looks_like_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn bead_ids_are_short_typable_and_distinct() {
        // 300 draws from 36^5: a repeat has odds of about 1 in 1300, so allow one.
        let ids: HashSet<String> = (0..300).map(|_| bead_id("gt", SUFFIX_LEN)).collect();
        assert!(ids.len() >= 299);
        for id in ids.iter().take(50) {
            assert_eq!(id.len(), 8);
            assert!(id.starts_with("gt-"));
            assert!(id[3..].chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
    }

    #[test]
    fn suffix_uses_the_whole_alphabet() {
        let s: HashSet<char> = base36_suffix(5000).chars().collect();
        assert_eq!(s.len(), 36);
    }

    #[test]
    fn uuid_is_v4_shaped() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid(), uuid());
    }

    #[test]
    fn prefixes() {
        assert_eq!(derive_prefix("gas-town"), "gt");
        assert_eq!(derive_prefix("backend"), "ba");
        assert_eq!(derive_prefix("my_big_web_app"), "mbw");
        assert_eq!(derive_prefix("x"), "rx");
        assert_eq!(derive_prefix("9lives"), "r9l");
        assert_eq!(derive_prefix("hq"), "hqr");
        assert!(validate_prefix("gt").is_ok());
        assert!(validate_prefix("hq").is_err());
        assert!(validate_prefix("G1").is_err());
        assert!(validate_prefix("toolongx").is_err());
    }
}
