//! Neutralising untrusted text before it reaches a terminal: control characters, escape
//! sequences and bidi overrides from a peer become visible symbols, so a message can never move
//! the cursor, recolour the screen or reorder what the user reads. Also the one definition of
//! "contains, ignoring case" (Unicode case folding) that search, its prefilter and
//! highlighting share, and durations in words.
//! Owns no state.

use std::ops::Range;

use caseless::Caseless;

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

/// `c` case-folded: Unicode's full default case folding (CaseFolding.txt, statuses C and F),
/// the mapping made for caseless matching. Unlike lowercasing, it makes "ς" and "Σ" both "σ",
/// "ß", "ẞ" and "SS" all "ss", "ﬀ" "ff", "ſ" "s", and lowercase Cherokee its uppercase. Not
/// the Turkic variant: "I" folds to "i", "İ" to "i" with a combining dot above, "ı" stays.
pub fn fold(c: char) -> Folded {
    if c.is_ascii() {
        Folded::Ascii(Some(c.to_ascii_lowercase()))
    } else {
        Folded::Other(std::iter::once(c).default_case_fold())
    }
}

/// The characters one character folds to (one to three); see `fold`.
pub enum Folded {
    /// ASCII folds to ASCII lowercase, without a table look-up.
    Ascii(Option<char>),
    /// Everything else, from the table.
    Other(caseless::CaseFold<std::iter::Once<char>>),
}

impl Iterator for Folded {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        match self {
            Self::Ascii(c) => c.take(),
            Self::Other(chars) => chars.next(),
        }
    }
}

/// `s` case-folded (see `fold`), appended to `out` as UTF-8. Runs of ASCII are lowercased as
/// bytes; only other characters are looked up.
pub fn fold_into(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut at = 0;
    let mut buf = [0u8; 4];
    while at < bytes.len() {
        let run = bytes[at..].iter().position(|b| !b.is_ascii()).unwrap_or(bytes.len() - at);
        out.extend(bytes[at..at + run].iter().map(u8::to_ascii_lowercase));
        at += run;
        let Some(c) = s[at..].chars().next() else { break };
        for folded in fold(c) {
            out.extend_from_slice(folded.encode_utf8(&mut buf).as_bytes());
        }
        at += c.len_utf8();
    }
}

/// Characters beyond those Unicode has case foldings for (the last is in Adlam, U+1E921).
const FOLDING_ENDS: u32 = 0x1_F000;

/// The characters that are not ASCII but fold to something holding ASCII ("ß" to "ss", "ﬁ" to
/// "fi", the Kelvin sign to "k", "İ" to "i" and a dot), in order.
fn into_ascii() -> &'static [char] {
    static ONCE: std::sync::OnceLock<Vec<char>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let end = char::from_u32(FOLDING_ENDS).unwrap_or(char::MAX);
        ('\u{80}'..end).filter(|&c| fold(c).any(|f| f.is_ascii())).collect()
    })
}

/// Whether `c` is not ASCII but folds to something holding ASCII: the few characters through
/// which text that is not ASCII can match an ASCII needle.
pub fn folds_to_ascii(c: char) -> bool {
    !c.is_ascii() && into_ascii().binary_search(&c).is_ok()
}

/// Whether `b` may start the UTF-8 of a character that `folds_to_ascii` (a superset, written
/// out so that a scan for it runs many bytes at a time; a test checks it against the table).
fn may_lead_into_ascii(b: u8) -> bool {
    matches!(b, 0xC3..=0xC7 | 0xE1 | 0xE2 | 0xEF)
}

/// Whether the UTF-8 `bytes` hold a character that `folds_to_ascii`. Fast on most text: 32
/// bytes at a time are checked for a first byte that could start one, and only then decoded;
/// invalid UTF-8 counts as holding one.
pub fn has_folds_to_ascii(bytes: &[u8]) -> bool {
    let mut offset = 0;
    for chunk in bytes.chunks(32) {
        if chunk.iter().fold(false, |seen, &b| seen | may_lead_into_ascii(b)) {
            let at = offset + chunk.iter().position(|&b| may_lead_into_ascii(b)).unwrap_or(0);
            return decodes_into_ascii(&bytes[at..]);
        }
        offset += chunk.len();
    }
    false
}

/// `has_folds_to_ascii` from a byte that may start such a character on.
fn decodes_into_ascii(bytes: &[u8]) -> bool {
    let mut at = 0;
    while let Some(skip) = bytes[at..].iter().position(|&b| may_lead_into_ascii(b)) {
        at += skip;
        let end = (at + 4).min(bytes.len());
        let c = match std::str::from_utf8(&bytes[at..end]) {
            Ok(s) => s.chars().next(),
            Err(e) => std::str::from_utf8(&bytes[at..at + e.valid_up_to()])
                .ok()
                .and_then(|s| s.chars().next()),
        };
        match c {
            Some(c) if folds_to_ascii(c) => return true,
            Some(c) => at += c.len_utf8(),
            None => return true,
        }
    }
    false
}

/// `s` case-folded (see `fold`).
pub fn fold_str(s: &str) -> String {
    s.chars().flat_map(fold).collect()
}

/// Byte ranges of the non-overlapping places where `haystack` contains `needle`, ignoring
/// case (both sides compared case-folded, see `fold`), first to last. A match starts and ends
/// on whole characters of the haystack: "ß" matches "ss", but "s" alone is not found in it.
pub fn matches_ignoring_case(haystack: &str, needle: &str) -> Vec<Range<usize>> {
    let needle: Vec<char> = needle.chars().flat_map(fold).collect();
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

/// Bytes of `haystack`'s start that fold to exactly `needle`, if they do.
fn match_len(haystack: &str, needle: &[char]) -> Option<usize> {
    let mut k = 0;
    for (at, c) in haystack.char_indices() {
        for folded in fold(c) {
            if needle.get(k) != Some(&folded) {
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
        // A character that folds to two characters matches only as a whole.
        assert_eq!(find_ignoring_case("İx", "i"), None);
        assert_eq!(find_ignoring_case("İx", "i\u{307}x"), Some(0..3));
    }

    /// Whether each of `texts` contains each of `needles` ignoring case, both ways round.
    fn all_match(forms: &[&str]) {
        for a in forms {
            for b in forms {
                assert!(find_ignoring_case(a, b).is_some(), "{a:?} should contain {b:?}");
            }
        }
    }

    #[test]
    fn the_characters_that_fold_into_ascii_are_all_known() {
        for c in ['ß', 'ẞ', 'ſ', '\u{212a}', 'ﬀ', 'ﬁ', 'ﬆ', 'İ', 'ŉ', 'ǰ'] {
            assert!(folds_to_ascii(c), "{c:?}");
        }
        for c in ['a', 'A', 'é', 'Σ', 'ς', '世', '😀', '\u{212b}', 'Ꭰ'] {
            assert!(!folds_to_ascii(c), "{c:?}");
        }
        assert!(has_folds_to_ascii("— Straße —".as_bytes()));
        assert!(has_folds_to_ascii("eﬃcient".as_bytes()));
        assert!(!has_folds_to_ascii("— Grüne, 世界 👋 —".as_bytes()));
        let long = format!("{}ß", "— Grüne, 世界 👋 —".repeat(10));
        assert!(has_folds_to_ascii(long.as_bytes()), "found past the first chunks");
        for c in into_ascii() {
            let mut buf = [0u8; 4];
            assert!(may_lead_into_ascii(c.encode_utf8(&mut buf).as_bytes()[0]), "{c:?}");
        }
        // Nothing past the end of the list folds at all (so the list misses nothing).
        let beyond = (FOLDING_ENDS..=0x10_FFFF).filter_map(char::from_u32);
        assert!(beyond.into_iter().all(|c| fold(c).eq(std::iter::once(c))));
    }

    #[test]
    fn every_scripts_case_folding_is_honoured() {
        // Greek: final sigma, and the symbol forms of beta, theta, phi; iota subscript.
        all_match(&["η οδος", "Η ΟΔΟΣ", "η οδοσ", "Η ΟΔΟς"]);
        assert_eq!(find_ignoring_case("η οδος", "ΟΔΟΣ"), Some(3..11));
        all_match(&["ϐϑϕ", "βθφ", "ΒΘΦ"]);
        all_match(&["ᾳ", "αι", "ΑΙ", "ᾼ"]);
        // German sharp s in all its forms; a match spans whole characters of the text.
        all_match(&["straße", "STRASSE", "strasse", "STRAẞE", "Straße"]);
        assert_eq!(find_ignoring_case("Straße", "SS"), Some(4..6));
        assert_eq!(find_ignoring_case("Straße", "s"), Some(0..1), "the plain s, not half of ß");
        assert_eq!(find_ignoring_case("ß", "s"), None);
        // Ligatures and compatibility letters: ﬀ ﬁ ﬃ ﬆ, long s, Kelvin and Ångström signs.
        all_match(&["eﬃcient ﬁsh", "EFFICIENT FISH", "efficient fish"]);
        all_match(&["ﬆar", "STAR", "ſtar"]);
        all_match(&["5 \u{212a}", "5 k", "5 K"]);
        all_match(&["\u{212b}", "å", "Å"]);
        // Armenian ligature ech-yiwn; Georgian Mtavruli and Mkhedruli.
        all_match(&["\u{587}", "\u{565}\u{582}", "\u{535}\u{552}"]);
        all_match(&["\u{1c90}\u{1c91}", "\u{10d0}\u{10d1}"]);
        // Cherokee (whose folding goes to the uppercase letters) and Deseret (outside the BMP).
        all_match(&["ᏣᎳᎩ", "ꮳꮃꭹ", "ᏣꮃᎩ"]);
        all_match(&["\u{13f8}", "\u{13f0}"]);
        all_match(&["𐐷𐐯", "𐐏𐐇"]);
        // Titlecase digraphs.
        all_match(&["ǆ", "ǅ", "Ǆ"]);
        // Turkish, as far as Unicode's default (not Turkic) folding goes: I and i are one
        // letter, İ is i with a combining dot above, ı is a letter of its own.
        all_match(&["ISTANBUL", "istanbul"]);
        all_match(&["İstanbul", "i\u{307}stanbul", "İSTANBUL"]);
        assert_eq!(find_ignoring_case("ılık", "ILIK"), None);
        assert!(find_ignoring_case("ILIK ılık", "ılık").is_some());
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
