//! The only owner of the terminal: raw mode, alternate screen, mouse and bracketed paste on
//! entry; restored on every way out (normal return, error, Ctrl-C, panic, and every signal that
//! ends a program: SIGHUP when the terminal closes, SIGTERM, SIGINT, SIGQUIT, each of which says
//! goodbye to the peers like /quit). Ctrl-Z (or SIGTSTP) hands the terminal back before the
//! program stops and takes it again, redrawn, when the shell resumes it. Turns terminal events
//! into `Message`s and draws only when the model changed.

use std::future::Future;
use std::io::{self, stdout};
use std::time::Duration;

use chrono::Local;
use crossterm::cursor::MoveTo;
use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture, Event, EventStream, KeyboardEnhancementFlags,
    MouseEventKind, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::execute;
use crossterm::terminal::{Clear, ClearType, EnterAlternateScreen, enable_raw_mode};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::backend::Backend;
use ratatui::buffer::Buffer;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, interval, sleep_until};
use unicode_width::UnicodeWidthStr;

use crate::app::messenger::Event as MessengerEvent;
use crate::app::{Message, keymap};
use crate::chat::{Chat, EndingSignals, Step};
use crate::consts::UI_TICK;
use crate::messenger::{self, Running};
use crate::ui;

/// What the full screen runs: a single chat, or the messenger.
pub trait Screen: Send {
    /// What a step takes.
    type Input: Send;
    /// A message from the terminal or the clock, as a step's input.
    fn ui(message: Message) -> Self::Input;
    /// The terminal gained (true) or lost focus, as a step's input, if it matters.
    fn focus(focused: bool) -> Option<Self::Input>;
    /// The next input from the network (or work beside it); `None` once the network ended.
    /// Cancel-safe (for `select!`).
    fn next_input(&mut self) -> impl Future<Output = Option<Self::Input>> + Send;
    /// How the network ended (see `Chat::network_outcome`).
    fn network_outcome(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Runs one input and carries out its effects.
    fn apply(&mut self, input: Self::Input) -> Step;
    /// Draws the screen (no side effects).
    fn render(&self, frame: &mut ratatui::Frame);
    /// Something visible changed since the last draw; `clean` says it was drawn.
    fn dirty(&mut self, clean: bool) -> bool;
    /// `/quit` was given: the goodbyes are on their way.
    fn quitting(&self) -> bool;
    /// When work waiting on time is due (see `Logbook::retry_at`).
    fn retry_at(&self) -> Option<Instant>;
    /// Draw in colour, or not (NO_COLOR).
    fn set_colour(&mut self, colour: bool);
}

impl Screen for Chat {
    type Input = Message;
    fn ui(message: Message) -> Message {
        message
    }
    fn focus(_: bool) -> Option<Message> {
        None
    }
    async fn next_input(&mut self) -> Option<Message> {
        Some(Message::Net(self.net.events.recv().await?, Local::now()))
    }
    async fn network_outcome(&mut self) -> anyhow::Result<()> {
        Chat::network_outcome(self).await
    }
    fn apply(&mut self, message: Message) -> Step {
        Chat::apply(self, message)
    }
    fn render(&self, frame: &mut ratatui::Frame) {
        ui::render(&self.model, frame);
    }
    fn dirty(&mut self, clean: bool) -> bool {
        let dirty = self.model.dirty;
        self.model.dirty &= !clean;
        dirty
    }
    fn quitting(&self) -> bool {
        self.model.quitting
    }
    fn retry_at(&self) -> Option<Instant> {
        Chat::retry_at(self)
    }
    fn set_colour(&mut self, colour: bool) {
        self.model.colour = colour;
    }
}

impl Screen for Running {
    type Input = MessengerEvent;
    fn ui(message: Message) -> MessengerEvent {
        MessengerEvent::Ui(message)
    }
    fn focus(focused: bool) -> Option<MessengerEvent> {
        Some(MessengerEvent::Focus(focused))
    }
    async fn next_input(&mut self) -> Option<MessengerEvent> {
        loop {
            match Running::next_input(self).await {
                messenger::Input::Event(event) => return Some(event),
                messenger::Input::NetworkEnded => return None,
                messenger::Input::Nothing => {}
            }
        }
    }
    async fn network_outcome(&mut self) -> anyhow::Result<()> {
        Running::network_outcome(self).await
    }
    fn apply(&mut self, event: MessengerEvent) -> Step {
        Running::apply(self, event)
    }
    fn render(&self, frame: &mut ratatui::Frame) {
        ui::render_messenger(&self.messenger, frame);
    }
    fn dirty(&mut self, clean: bool) -> bool {
        let messenger = &mut self.messenger;
        let models = messenger
            .conversations
            .iter_mut()
            .map(|c| &mut *c.model)
            .chain(messenger.home.as_deref_mut());
        let mut dirty = messenger.dirty;
        for model in models {
            dirty |= model.dirty;
            model.dirty &= !clean;
        }
        messenger.dirty &= !clean;
        dirty
    }
    fn quitting(&self) -> bool {
        self.messenger.quitting
    }
    fn retry_at(&self) -> Option<Instant> {
        Running::retry_at(self)
    }
    fn set_colour(&mut self, colour: bool) {
        let messenger = &mut self.messenger;
        let models = messenger
            .conversations
            .iter_mut()
            .map(|c| &mut *c.model)
            .chain(messenger.home.as_deref_mut());
        for model in models {
            model.colour = colour;
        }
    }
}

/// Rows per mouse-wheel notch.
const WHEEL_ROWS: i32 = 3;

/// How long to wait for the goodbyes to go out after /quit.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// The terminal's echo turned off while the chat waits before its screen opens (pairing, a
/// contact not online yet): keys typed meanwhile are not shown where the shell would keep
/// them, and are still read into the input box once the screen opens. Line editing and the
/// signal keys (Ctrl-C) work as before. Restored when dropped.
pub struct EchoOff(Option<rustix::termios::Termios>);

impl EchoOff {
    /// Turns echo off on stdin, when it is a terminal.
    pub fn on_stdin() -> Self {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = rustix::stdio::stdin();
        let Ok(saved) = tcgetattr(stdin) else { return Self(None) };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // `Now`, not `Flush`: what was typed already stays to be read.
        match tcsetattr(stdin, OptionalActions::Now, &quiet) {
            Ok(()) => Self(Some(saved)),
            Err(_) => Self(None),
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let stdin = rustix::stdio::stdin();
            let _ = rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, saved);
        }
    }
}

/// Restores the terminal when dropped, so an early return or error cannot leave it raw.
struct TerminalGuard {
    terminal: DefaultTerminal,
    /// The terminal reports modified keys unambiguously (kitty protocol): Shift-Enter exists.
    enhanced: bool,
}

/// Turns off what `enter` turned on, besides raw mode and the screen (ratatui's part).
fn leave_modes(enhanced: bool) {
    if enhanced {
        let _ = execute!(stdout(), PopKeyboardEnhancementFlags);
    }
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste, DisableFocusChange);
}

/// Turns on what `leave_modes` turns off.
fn enter_modes(enhanced: bool) -> io::Result<()> {
    execute!(stdout(), EnableMouseCapture, EnableBracketedPaste, EnableFocusChange)?;
    if enhanced {
        let flags = KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES;
        execute!(stdout(), PushKeyboardEnhancementFlags(flags))?;
    }
    Ok(())
}

impl TerminalGuard {
    fn enter() -> io::Result<Self> {
        let terminal = ratatui::try_init()?;
        let enhanced = crossterm::terminal::supports_keyboard_enhancement().unwrap_or(false);
        // ratatui's panic hook restores raw mode and the screen; ours also turns off the mouse,
        // paste and keyboard modes first.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            leave_modes(enhanced);
            hook(info);
        }));
        let guard = Self { terminal, enhanced };
        enter_modes(enhanced)?;
        Ok(guard)
    }

    /// Job control: gives the terminal back as it was, stops the whole program (as SIGTSTP
    /// would have, had we not caught it), and once the shell resumes it (SIGCONT) takes the
    /// terminal again and clears it for a full redraw.
    fn suspend(&mut self) -> io::Result<()> {
        leave_modes(self.enhanced);
        ratatui::restore();
        signal_hook::low_level::raise(signal_hook::consts::SIGSTOP)?;
        // Resumed.
        enable_raw_mode()?;
        execute!(stdout(), EnterAlternateScreen)?;
        enter_modes(self.enhanced)?;
        // Cleared through `resize` (all of the screen, and a full redraw next), not `clear`:
        // that one asks the terminal where the cursor is, and the answer goes to our event
        // reader instead.
        let size = self.terminal.size()?;
        self.terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        leave_modes(self.enhanced);
        ratatui::restore();
    }
}

/// Whether the terminal may give `symbol` another width than we do: a grapheme of several
/// code points (skin tones, ZWJ sequences, flags, keycaps, combining marks). Terminals differ
/// on these (tmux draws a flag as two letters), and then a cell we think blank still shows a
/// piece of one.
fn width_uncertain(symbol: &str) -> bool {
    symbol.chars().nth(1).is_some()
}

/// The cells of row `y`.
fn row(buffer: &Buffer, y: u16) -> impl Iterator<Item = &ratatui::buffer::Cell> + '_ {
    let area = buffer.area;
    (area.left()..area.right()).map(move |x| &buffer[(x, y)])
}

/// Rows of `current` that differ from `previous` and hold, in either, a symbol whose width the
/// terminal may see differently: drawing only their changed cells could leave pieces behind.
fn rows_to_repaint(previous: &Buffer, current: &Buffer) -> Vec<u16> {
    if previous.area != current.area {
        return Vec::new(); // a resize redraws everything anyway
    }
    (current.area.top()..current.area.bottom())
        .filter(|&y| {
            let risky =
                row(previous, y).chain(row(current, y)).any(|c| width_uncertain(c.symbol()));
            risky && row(previous, y).ne(row(current, y))
        })
        .collect()
}

/// Clears `rows` on the terminal and draws every cell of them again from `buffer`, each at
/// its own position, so the screen ends up as we meant it whatever width the terminal gave a
/// symbol.
fn repaint(terminal: &mut DefaultTerminal, buffer: &Buffer, rows: &[u16]) -> io::Result<()> {
    let area = buffer.area;
    for &y in rows {
        execute!(stdout(), MoveTo(area.left(), y), Clear(ClearType::UntilNewLine))?;
        let mut covered = 0;
        let mut cells = Vec::new();
        for x in area.left()..area.right() {
            let cell = &buffer[(x, y)];
            if covered > 0 {
                covered -= 1; // the rest of a wide symbol
                continue;
            }
            covered = cell.symbol().width().saturating_sub(1);
            cells.push((x, y, cell));
        }
        terminal.backend_mut().draw(cells.into_iter())?;
    }
    ratatui::backend::Backend::flush(terminal.backend_mut())
}

fn translate<S: Screen>(event: Event) -> Option<S::Input> {
    let message = match event {
        Event::Key(key) => keymap::map_key(key).map(Message::Key),
        Event::Paste(text) => Some(Message::Paste(text)),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Some(Message::Scroll(WHEEL_ROWS)),
            MouseEventKind::ScrollDown => Some(Message::Scroll(-WHEEL_ROWS)),
            _ => None,
        },
        Event::Resize(cols, rows) => Some(Message::Resize(cols, rows)),
        Event::FocusGained => return S::focus(true),
        Event::FocusLost => return S::focus(false),
    };
    message.map(S::ui)
}

/// Draws the model; rows the terminal may have drawn differently from us are drawn again
/// whole (then the frame once more, which changes nothing but puts the cursor back).
fn draw(
    terminal: &mut DefaultTerminal,
    screen: &impl Screen,
    shown: &mut Option<Buffer>,
) -> io::Result<()> {
    let frame = terminal.draw(|frame| screen.render(frame))?;
    let current = frame.buffer.clone();
    let rows =
        shown.as_ref().map(|previous| rows_to_repaint(previous, &current)).unwrap_or_default();
    if !rows.is_empty() {
        repaint(terminal, &current, &rows)?;
        terminal.draw(|frame| screen.render(frame))?;
    }
    *shown = Some(current);
    Ok(())
}

/// Runs the full-screen chat or messenger until /quit, Ctrl-C, an ending signal or
/// `shutdown`.
pub async fn run<S: Screen>(mut chat: S, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::enter()?;
    // NO_COLOR (no-color.org): present and not empty.
    chat.set_colour(std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()));
    let size = guard.terminal.size()?;
    chat.apply(S::ui(Message::Resize(size.width, size.height)));
    let mut events = EventStream::new();
    let mut tick = interval(UI_TICK);
    let mut ending = EndingSignals::new()?;
    let mut stop = signal(SignalKind::from_raw(signal_hook::consts::SIGTSTP))?;
    tokio::pin!(shutdown);
    let mut give_up_at: Option<Instant> = None;
    // The terminal went away (a hang-up): no more drawing or reading, only the goodbyes.
    let mut terminal_gone = false;
    // What the last step had to say (records that never reached the log): said after the
    // terminal is back, where it stays readable.
    let mut last_words = Vec::new();
    // What the screen shows, as we meant it.
    let mut shown: Option<Buffer> = None;
    loop {
        if chat.dirty(false) && !terminal_gone {
            if let Err(error) = draw(&mut guard.terminal, &chat, &mut shown) {
                tracing::warn!(%error, "the terminal cannot be drawn on any more; leaving");
                terminal_gone = true;
                chat.apply(S::ui(Message::Quit));
            }
            chat.dirty(true);
        }
        let mut suspend = false;
        let retry_at = chat.retry_at();
        let message = tokio::select! {
            event = events.next(), if !terminal_gone => match event {
                Some(Ok(event)) => translate::<S>(event),
                Some(Err(error)) => {
                    tracing::warn!(%error, "the terminal cannot be read any more; leaving");
                    terminal_gone = true;
                    Some(S::ui(Message::Quit))
                }
                None => Some(S::ui(Message::Quit)),
            },
            input = chat.next_input() => match input {
                Some(input) => Some(input),
                None => {
                    drop(guard);
                    return chat.network_outcome().await;
                }
            },
            _ = tick.tick() => Some(S::ui(Message::Tick(Local::now()))),
            // Work that waits on time (a confirmation the command channel had no room for).
            () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                Some(S::ui(Message::Tick(Local::now())))
            }
            () = ending.recv() => Some(S::ui(Message::Quit)),
            _ = stop.recv(), if !terminal_gone => {
                suspend = true;
                None
            }
            () = &mut shutdown => Some(S::ui(Message::Quit)),
            () = sleep_until(give_up_at.unwrap_or_else(Instant::now)), if give_up_at.is_some() => break,
        };
        if let Some(message) = message {
            let step = chat.apply(message);
            attend(&step);
            if step.exit {
                last_words = step.errors;
                break;
            }
            suspend |= step.suspend;
        }
        if suspend {
            guard.suspend()?;
            shown = None;
            let size = guard.terminal.size()?;
            chat.apply(S::ui(Message::Resize(size.width, size.height)));
        }
        if chat.quitting() && give_up_at.is_none() {
            give_up_at = Some(Instant::now() + QUIT_GRACE);
        }
    }
    drop(guard);
    for words in last_words {
        eprintln!("p2pchat: {words}");
    }
    Ok(())
}

/// Asks for the user's attention as the step says: the bell (BEL on the terminal, which
/// rings it, flashes it or marks the tab, as the user set it up) and desktop notifications.
fn attend(step: &Step) {
    if step.bell {
        let mut out = stdout();
        let _ = io::Write::write_all(&mut out, b"\x07").and_then(|()| io::Write::flush(&mut out));
    }
    for (title, body) in &step.desktop {
        crate::notify::desktop(title, body.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use ratatui::layout::Rect;

    use super::*;

    fn buffer(lines: &[&str]) -> Buffer {
        let mut b = Buffer::empty(Rect::new(0, 0, 12, u16::try_from(lines.len()).unwrap()));
        for (y, line) in lines.iter().enumerate() {
            b.set_string(0, u16::try_from(y).unwrap(), line, ratatui::style::Style::new());
        }
        b
    }

    #[test]
    fn rows_that_held_or_hold_a_grapheme_of_uncertain_width_are_repainted_when_they_change() {
        let before = buffer(&["x🇳🇱y", "plain", "a👍🏽", "é"]);
        let after = buffer(&["", "plain!", "a👍🏽", "e\u{301}"]);
        // Row 0 lost a flag; row 1 changed but holds none; row 2 is unchanged; row 3 gained
        // a combining sequence.
        assert_eq!(rows_to_repaint(&before, &after), vec![0, 3]);
        assert!(rows_to_repaint(&before, &before).is_empty());
        assert!(width_uncertain("👩\u{200d}💻") && width_uncertain("1\u{fe0f}\u{20e3}"));
        assert!(!width_uncertain("世") && !width_uncertain("a"));
    }
}
