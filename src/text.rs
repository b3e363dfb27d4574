//! Neutralising untrusted text before it reaches a terminal: control characters, escape
//! sequences and bidi overrides from a peer become visible symbols, so a message can never move
//! the cursor, recolour the screen or reorder what the user reads. Also the one definition of
//! "contains, ignoring case" that search and highlighting share, and durations in words.
//! Owns no state.

use std::ops::Range;

/// Returns `s` with every character that could act on a terminal replaced by a visible stand-in.
pub fn sanitize(s: &str) -> String {
    s.chars().map(neutralise).collect()
}

/// Like `sanitize`, but keeps line breaks: for multi-line messages shown as several lines.
pub fn sanitize_lines(s: &str) -> String {
    s.split('\n').map(sanitize).collect::<Vec<_>>().join("\n")
}

fn neutralise(c: char) -> char {
    match c {
        '\t' => ' ',
        // C0 controls map onto the Unicode "control pictures" block (ESC shows as ␛).
        '\0'..='\x1f' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\x7f' => '\u{2421}',
        // C1 controls (CSI, OSC, …) and bidi embeddings/overrides/isolates.
        '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '\u{fffd}',
        _ => c,
    }
}

/// A span of whole seconds in words: "10 minutes", "1 minute", "90 seconds".
pub fn duration_words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 60 && secs.is_multiple_of(60) {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// Byte ranges of the non-overlapping places where `haystack` contains `needle`, ignoring
/// case (both sides compared by their Unicode lowercase), first to last.
pub fn matches_ignoring_case(haystack: &str, needle: &str) -> Vec<Range<usize>> {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    let mut out = Vec::new();
    if needle.is_empty() {
        return out;
    }
    let mut next_free = 0;
    for (start, _) in haystack.char_indices() {
        if start < next_free {
            continue;
        }
        if let Some(len) = match_len(&haystack[start..], &needle) {
            out.push(start..start + len);
            next_free = start + len;
        }
    }
    out
}

/// Where `haystack` first contains `needle`, ignoring case (see `matches_ignoring_case`).
pub fn find_ignoring_case(haystack: &str, needle: &str) -> Option<Range<usize>> {
    matches_ignoring_case(haystack, needle).into_iter().next()
}

/// Bytes of `haystack`'s start that lowercase to exactly `needle`, if they do.
fn match_len(haystack: &str, needle: &[char]) -> Option<usize> {
    let mut k = 0;
    for (at, c) in haystack.char_indices() {
        for lower in c.to_lowercase() {
            if needle.get(k) != Some(&lower) {
                return None;
            }
            k += 1;
        }
        if k == needle.len() {
            return Some(at + c.len_utf8());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration_words(600), "10 minutes");
        assert_eq!(duration_words(60), "1 minute");
        assert_eq!(duration_words(90), "90 seconds");
        assert_eq!(duration_words(1), "1 second");
    }

    #[test]
    fn matching_ignores_case_and_reports_byte_ranges() {
        assert_eq!(matches_ignoring_case("Hello hello HELLO", "hello"), vec![0..5, 6..11, 12..17]);
        assert_eq!(matches_ignoring_case("aaaa", "aa"), vec![0..2, 2..4]);
        assert_eq!(find_ignoring_case("Grüße ÜBER alles", "über"), Some(8..13));
        assert_eq!(find_ignoring_case("世界 hello", "HELLO"), Some(7..12));
        assert_eq!(find_ignoring_case("abc", ""), None);
        assert_eq!(find_ignoring_case("ab", "abc"), None);
        // A character whose lowercase is two characters matches only as a whole.
        assert_eq!(find_ignoring_case("İx", "i"), None);
        assert_eq!(find_ignoring_case("İx", "i\u{307}x"), Some(0..3));
    }

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(sanitize("a\x1b[2Jb"), "a\u{241b}[2Jb");
        assert_eq!(sanitize("x\ry\nz"), "x\u{240d}y\u{240a}z");
        assert_eq!(sanitize("\u{9b}31m"), "\u{fffd}31m");
        assert_eq!(sanitize("abc\u{202e}def"), "abc\u{fffd}def");
        assert_eq!(sanitize("\x7f"), "\u{2421}");
    }

    #[test]
    fn line_breaks_survive_sanitize_lines_only() {
        assert_eq!(sanitize_lines("a\nb\x1b"), "a\nb\u{241b}");
        assert_eq!(sanitize_lines("a\r\nb"), "a\u{240d}\nb");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let s = "héllo 世界 👋 tab\there";
        assert_eq!(sanitize(s), "héllo 世界 👋 tab here");
    }
}
