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

/// What the prompt ended with.
pub enum Answer {
    /// A valid code, typed and confirmed with Enter.
    Code(Code),
    /// The user stopped (Esc, Ctrl-C, Ctrl-D) with this much typed.
    Stopped(String),
}

impl Answer {
    /// Why nothing was sent, when the user stopped: one sentence.
    pub fn stopped(typed: &str) -> String {
        match typed.trim() {
            "" => "no code typed; nothing was sent".to_owned(),
            typed => format!(
                "stopped before \"{typed}\" was a whole code; nothing was sent (run the command \
                 again to type it)"
            ),
        }
    }
}

/// Asks for a code until a valid one is typed or the user stops (Esc, Ctrl-C).
pub fn ask_code() -> io::Result<Answer> {
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
            KeyCode::Esc => return finish(&mut out, Answer::Stopped(typed)),
            KeyCode::Char('c' | 'd') if ctrl => return finish(&mut out, Answer::Stopped(typed)),
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
                Ok(code) => return finish(&mut out, Answer::Code(code)),
                Err(error) => write!(out, "\r\n{error}\r\n")?,
            },
            _ => {}
        }
        redraw(&mut out, &typed)?;
    }
}

fn finish(out: &mut io::Stdout, answer: Answer) -> io::Result<Answer> {
    write!(out, "\r\n")?;
    out.flush()?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::Answer;

    #[test]
    fn stopping_with_part_of_a_code_typed_does_not_say_nothing_was_typed() {
        assert_eq!(Answer::stopped(""), "no code typed; nothing was sent");
        let said = Answer::stopped("12-app");
        assert!(said.starts_with("stopped before \"12-app\" was a whole code"), "{said}");
    }
}
