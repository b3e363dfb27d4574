//! Neutralising untrusted text before it reaches a terminal: control characters, escape
//! sequences and bidi overrides from a peer become visible symbols, so a message can never move
//! the cursor, recolour the screen or reorder what the user reads. Owns no state.

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

#[cfg(test)]
mod tests {
    use super::{sanitize, sanitize_lines};

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
