//! The only owner of the terminal: raw mode, alternate screen, mouse and bracketed paste on
//! entry; restored on every way out (normal return, error, Ctrl-C, SIGTERM, panic). Turns
//! terminal events into `Message`s and draws only when the model changed.

use std::future::Future;
use std::io::{self, stdout};
use std::time::Duration;

use chrono::Local;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyboardEnhancementFlags, MouseEventKind, PopKeyboardEnhancementFlags,
    PushKeyboardEnhancementFlags,
};
use crossterm::execute;
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, interval, sleep_until};

use crate::app::{Message, keymap};
use crate::chat::Chat;
use crate::consts::UI_TICK;
use crate::ui;

/// Rows per mouse-wheel notch.
const WHEEL_ROWS: i32 = 3;

/// How long to wait for the goodbyes to go out after /quit.
const QUIT_GRACE: Duration = Duration::from_secs(2);

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
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
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
        execute!(stdout(), EnableMouseCapture, EnableBracketedPaste)?;
        if enhanced {
            let flags = KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES;
            execute!(stdout(), PushKeyboardEnhancementFlags(flags))?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        leave_modes(self.enhanced);
        ratatui::restore();
    }
}

fn translate(event: Event) -> Option<Message> {
    match event {
        Event::Key(key) => keymap::map_key(key).map(Message::Key),
        Event::Paste(text) => Some(Message::Paste(text)),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Some(Message::Scroll(WHEEL_ROWS)),
            MouseEventKind::ScrollDown => Some(Message::Scroll(-WHEEL_ROWS)),
            _ => None,
        },
        Event::Resize(cols, rows) => Some(Message::Resize(cols, rows)),
        _ => None,
    }
}

/// Runs the full-screen chat until /quit, Ctrl-C, SIGTERM or `shutdown`.
pub async fn run(mut chat: Chat, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::enter()?;
    let size = guard.terminal.size()?;
    chat.apply(Message::Resize(size.width, size.height));
    let mut events = EventStream::new();
    let mut tick = interval(UI_TICK);
    let mut sigterm = signal(SignalKind::terminate())?;
    tokio::pin!(shutdown);
    let mut give_up_at: Option<Instant> = None;
    loop {
        if chat.model.dirty {
            guard.terminal.draw(|frame| ui::render(&chat.model, frame))?;
            chat.model.dirty = false;
        }
        let message = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => translate(event),
                Some(Err(error)) => return Err(error.into()),
                None => Some(Message::Quit),
            },
            event = chat.net.events.recv() => match event {
                Some(event) => Some(Message::Net(event, Local::now())),
                None => {
                    drop(guard);
                    return chat.network_outcome().await;
                }
            },
            _ = tick.tick() => Some(Message::Tick(Local::now())),
            _ = sigterm.recv() => Some(Message::Quit),
            () = &mut shutdown => Some(Message::Quit),
            () = sleep_until(give_up_at.unwrap_or_else(Instant::now)), if give_up_at.is_some() => break,
        };
        if let Some(message) = message
            && chat.apply(message).exit
        {
            break;
        }
        if chat.model.quitting && give_up_at.is_none() {
            give_up_at = Some(Instant::now() + QUIT_GRACE);
        }
    }
    drop(guard);
    Ok(())
}
