//! The one question p2pchat asks on a plain terminal before the chat: the pairing code a
//! friend reads out, typed with Tab completion of its words. The terminal is in raw mode only
//! while it asks, and is restored on every way out.

use std::io::{self, Write};

use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
use crossterm::terminal::{disable_raw_mode, enable_raw_mode};

use crate::proto::keying::{Code, Completion};

const PROMPT: &str = "Code from your friend (Tab completes words, Esc stops): ";

/// Leaves raw mode when dropped.
struct RawMode;

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
    }
}

/// Asks for a code until a valid one is typed; `None` when the user stops (Esc, Ctrl-C).
pub fn ask_code() -> io::Result<Option<Code>> {
    enable_raw_mode()?;
    let _raw = RawMode;
    let mut out = io::stdout();
    let mut typed = String::new();
    let redraw = |out: &mut io::Stdout, typed: &str| -> io::Result<()> {
        write!(out, "\r\x1b[2K{PROMPT}{typed}")?;
        out.flush()
    };
    redraw(&mut out, &typed)?;
    loop {
        let Event::Key(key) = read()? else { continue };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return finish(&mut out, None),
            KeyCode::Char('c' | 'd') if ctrl => return finish(&mut out, None),
            KeyCode::Char('u') if ctrl => typed.clear(),
            KeyCode::Char(c) if !ctrl && (c.is_ascii_alphanumeric() || c == '-' || c == ' ') => {
                typed.push(c);
            }
            KeyCode::Backspace => {
                typed.pop();
            }
            KeyCode::Tab => match Code::complete(&typed) {
                Completion::Line(line) => typed = line,
                Completion::Choices(words) => write!(out, "\r\n{}\r\n", words.join("  "))?,
                Completion::Nothing => write!(out, "\x07")?,
            },
            KeyCode::Enter => match Code::parse(&typed) {
                Ok(code) => return finish(&mut out, Some(code)),
                Err(error) => write!(out, "\r\n{error}\r\n")?,
            },
            _ => {}
        }
        redraw(&mut out, &typed)?;
    }
}

fn finish(out: &mut io::Stdout, code: Option<Code>) -> io::Result<Option<Code>> {
    write!(out, "\r\n")?;
    out.flush()?;
    Ok(code)
}
