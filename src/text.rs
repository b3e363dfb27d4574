//! Neutralising untrusted text before it reaches a terminal: control characters, escape
//! sequences and bidi overrides from a peer become visible symbols, so a message can never move
//! the cursor, recolour the screen or reorder what the user reads. Also the one definition of
//! "contains, ignoring case" (Unicode case folding) that search, its prefilter and
//! highlighting share, and durations in words.
//! Owns no state.

use std::ops::Range;

use caseless::Caseless;

/// Returns `s` with every character that could act on a terminal replaced by a visible
/// stand-in, and every character that draws nothing shown as a visible escape (`invisible`).
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        match neutralise(c) {
            Some(shown) => out.push(shown),
            None if hidden(c, prev, chars.peek().copied()) => {
                out.push_str(&escape(c));
            }
            None => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// Like `sanitize`, but keeps line breaks: for multi-line messages shown as several lines.
pub fn sanitize_lines(s: &str) -> String {
    s.split('\n').map(sanitize).collect::<Vec<_>>().join("\n")
}

/// The visible stand-in for a control character, if `c` is one.
fn neutralise(c: char) -> Option<char> {
    Some(match c {
        '\t' => ' ',
        // C0 controls map onto the Unicode "control pictures" block (ESC shows as ␛).
        '\0'..='\x1f' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\x7f' => '\u{2421}',
        // C1 controls (CSI, OSC, …).
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        _ => return None,
    })
}

/// How an invisible character is shown: its code point, between angle brackets ("⟨U+200B⟩").
pub fn escape(c: char) -> String {
    format!("{ESCAPE_OPEN}U+{:04X}{ESCAPE_CLOSE}", u32::from(c))
}

const ESCAPE_OPEN: char = '⟨';
const ESCAPE_CLOSE: char = '⟩';

/// Byte ranges of the escapes (`escape`) in sanitised text, to be drawn dimly.
pub fn escapes(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find(ESCAPE_OPEN).map(|i| from + i) {
        let body = open + ESCAPE_OPEN.len_utf8();
        let hex = text[body..]
            .strip_prefix("U+")
            .map(|rest| rest.bytes().take_while(u8::is_ascii_hexdigit).count());
        match hex {
            Some(digits @ 4..=6) if text[body + 2 + digits..].starts_with(ESCAPE_CLOSE) => {
                let end = body + 2 + digits + ESCAPE_CLOSE.len_utf8();
                out.push(open..end);
                from = end;
            }
            _ => from = body,
        }
    }
    out
}

/// Characters that draw nothing, or only steer how others are drawn: zero-width spaces and
/// joiners, the word joiner and invisible operators, bidi marks, embeddings, overrides and
/// isolates, the BOM, line and paragraph separators, the soft hyphen, fillers, variation
/// selectors and tags (Unicode's Default_Ignorable_Code_Point set, with the invisible format
/// characters and the two separators). Hidden in a text they change nothing you see; in a name
/// they make two names look alike.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// Whether the invisible `c` (between `prev` and `next`) is one to show as an escape. A few
/// are part of how some writing works, and are left alone there: a zero-width (non-)joiner
/// between two visible letters outside ASCII (Persian, the Indic scripts, emoji sequences
/// such as 👩‍💻), a variation selector right after a visible character outside ASCII or a
/// keycap's digit, # or * (❤️, 1️⃣), and the tags that spell a subdivision flag (🏴 and
/// tags). Anywhere else they show.
fn hidden(c: char, prev: Option<char>, next: Option<char>) -> bool {
    if !invisible(c) {
        return false;
    }
    let visible_beyond_ascii =
        |c: Option<char>| c.is_some_and(|c| !c.is_ascii() && !invisible(c) && !c.is_control());
    let selector = |c: char| matches!(c, '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}');
    let kept = match c {
        '\u{200c}' | '\u{200d}' => {
            (visible_beyond_ascii(prev) || prev.is_some_and(selector)) && visible_beyond_ascii(next)
        }
        c if selector(c) => {
            visible_beyond_ascii(prev)
                || prev.is_some_and(|p| p.is_ascii_digit() || p == '#' || p == '*')
        }
        '\u{e0020}'..='\u{e007f}' => {
            prev.is_some_and(|p| p == '\u{1f3f4}' || ('\u{e0020}'..='\u{e007e}').contains(&p))
        }
        _ => false,
    };
    !kept
}

/// Why `name` cannot be a name, in one sentence, if it cannot: it holds a control character
/// or one that draws nothing (see `invisible`), so it could pass for another name.
pub fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars().peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        if neutralise(c).is_some() || hidden(c, prev, chars.peek().copied()) {
            return Some(format!(
                "the name \"{}\" holds an invisible or control character ({}) that would let \
                 it pass for another name; choose a name without it",
                sanitize(name),
                format_args!("U+{:04X}", u32::from(c)),
            ));
        }
        prev = Some(c);
    }
    None
}

/// The start of `s`, at most `chars` characters, with "…" when there was more: for naming a
/// text in a notice without quoting all of it.
pub fn start_of(s: &str, chars: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &s[..at]).into(),
        None => s.into(),
    }
}

/// A number of things in words, in the singular for exactly one: "1 bad packet", "3 bad
/// packets", "1 entry evicted", "2 entries evicted".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A span of whole seconds in words: "10 minutes", "1 minute", "90 seconds".
pub fn duration_words(secs: u64) -> String {
    if secs >= 60 && secs.is_multiple_of(60) {
        count(secs / 60, "minute", "minutes")
    } else {
        count(secs, "second", "seconds")
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
pub fn into_ascii() -> &'static [char] {
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
        assert_eq!(sanitize("abc\u{202e}def"), "abc⟨U+202E⟩def");
        assert_eq!(sanitize("\x7f"), "\u{2421}");
    }

    #[test]
    fn invisible_characters_are_drawn_as_escapes() {
        assert_eq!(
            sanitize("zero\u{200b}\u{200c}\u{200d}\u{feff}width"),
            "zero⟨U+200B⟩⟨U+200C⟩⟨U+200D⟩⟨U+FEFF⟩width"
        );
        // Every kind: the word joiner, bidi marks, embeddings, overrides, isolates, the Arabic
        // letter mark, line and paragraph separators, the soft hyphen, fillers, a stray
        // variation selector, tags, an invisible operator.
        for c in [
            '\u{2060}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{61c}',
            '\u{2028}',
            '\u{2029}',
            '\u{ad}',
            '\u{3164}',
            '\u{115f}',
            '\u{fe0f}',
            '\u{e0041}',
            '\u{2062}',
            '\u{180e}',
            '\u{34f}',
            '\u{1d173}',
            '\u{fffb}',
        ] {
            let shown = sanitize(&format!("b{c}ob"));
            assert_eq!(shown, format!("b{}ob", escape(c)), "{c:?}");
            assert_eq!(escapes(&shown), vec![1..1 + escape(c).len()], "{c:?}");
        }
        assert_eq!(escape('\u{e0041}'), "⟨U+E0041⟩");
        assert!(escapes("⟨U+20⟩ ⟨U+200B ⟨x⟩").is_empty(), "only whole escapes");
    }

    #[test]
    fn invisible_characters_that_writing_needs_are_left_alone() {
        for text in [
            "می\u{200c}خواهم", // Persian: a zero-width non-joiner between letters
            "क्\u{200d}ष",      // Devanagari: a joiner after a virama
            "👩\u{200d}💻 👨\u{200d}👩\u{200d}👧", // emoji sequences
            "❤\u{fe0f}\u{200d}🔥", // a selector, then a joiner
            "❤\u{fe0f} 1\u{fe0f}\u{20e3}", // emoji presentation, a keycap
            "🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}", // England's flag
        ] {
            assert_eq!(sanitize(text), text);
            assert_eq!(name_problem(text), None, "{text}");
        }
        // The same characters where they do nothing are shown.
        assert_eq!(sanitize("b\u{200d}ob"), "b⟨U+200D⟩ob");
        assert_eq!(sanitize("b\u{fe0f}ob"), "b⟨U+FE0F⟩ob");
        assert_eq!(sanitize("\u{200c}می"), "⟨U+200C⟩می");
        assert_eq!(sanitize("a\u{e0041}"), "a⟨U+E0041⟩");
    }

    #[test]
    fn names_with_invisible_or_control_characters_are_refused_in_one_sentence() {
        for name in
            ["b\u{200b}ob", "bob\u{200f}", "\u{feff}bob", "bo\u{ad}b", "b\u{2028}ob", "b\x1bob"]
        {
            let problem = name_problem(name).unwrap_or_default();
            assert!(problem.contains("choose a name without it"), "{name:?}: {problem}");
            assert_eq!(problem.matches(". ").count(), 0, "one sentence: {problem}");
        }
        assert!(name_problem("b\u{200b}ob").unwrap_or_default().contains("U+200B"));
        for name in ["bob", "Zoë", "李小龍", "ann 👋"] {
            assert_eq!(name_problem(name), None);
        }
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
