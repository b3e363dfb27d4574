//! Keys as data: one table from key to action, read by `map_key` and printed by `/help`.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Type a character.
    Insert(char),
    /// Send the line (or run the command).
    Submit,
    /// Delete before the cursor.
    Backspace,
    /// Delete at the cursor.
    Delete,
    /// Cursor one grapheme left.
    Left,
    /// Cursor one grapheme right.
    Right,
    /// Cursor to line start.
    LineStart,
    /// Cursor to line end.
    LineEnd,
    /// Delete the previous word.
    DeleteWord,
    /// Clear the line.
    ClearLine,
    /// Previous sent line.
    RecallPrevious,
    /// Next sent line.
    RecallNext,
    /// Scroll history up a page.
    PageUp,
    /// Scroll history down a page.
    PageDown,
    /// Scroll to the oldest loaded message.
    Top,
    /// Scroll back to the newest message.
    Bottom,
    /// Start a search of the history.
    Find,
    /// End the search.
    Cancel,
    /// Leave.
    Quit,
    /// Stop until the shell resumes us (job control).
    Suspend,
    /// The messenger: the next conversation in the pane (wrapping round).
    NextConversation,
    /// The messenger: the previous conversation in the pane (wrapping round).
    PreviousConversation,
    /// The messenger: the conversation at this place in the pane (1 to 9).
    Conversation(u8),
    /// The messenger: hide or show the conversations pane.
    TogglePane,
}

struct Binding {
    code: KeyCode,
    modifiers: KeyModifiers,
    action: Action,
    keys: &'static str,
    help: &'static str,
}

const fn bind(
    code: KeyCode,
    modifiers: KeyModifiers,
    action: Action,
    keys: &'static str,
    help: &'static str,
) -> Binding {
    Binding { code, modifiers, action, keys, help }
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;
const ALT: KeyModifiers = KeyModifiers::ALT;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;

const BINDINGS: &[Binding] = &[
    bind(KeyCode::Enter, NONE, Action::Submit, "Enter", "send the message"),
    bind(KeyCode::Enter, ALT, Action::Insert('\n'), "Alt-Enter", "new line in the message"),
    bind(KeyCode::Enter, SHIFT, Action::Insert('\n'), "", ""),
    bind(KeyCode::Up, NONE, Action::RecallPrevious, "Up/Down", "recall sent lines"),
    bind(KeyCode::Down, NONE, Action::RecallNext, "", ""),
    bind(KeyCode::PageUp, NONE, Action::PageUp, "PgUp/PgDn", "scroll history (or the mouse wheel)"),
    bind(KeyCode::PageDown, NONE, Action::PageDown, "", ""),
    bind(KeyCode::Home, NONE, Action::Top, "Home/End", "first / newest message of the history"),
    bind(
        KeyCode::Char('f'),
        CTRL,
        Action::Find,
        "Ctrl-F",
        "search the history (n/Enter older, N newer)",
    ),
    bind(KeyCode::Esc, NONE, Action::Cancel, "Esc", "end the search"),
    bind(KeyCode::End, NONE, Action::Bottom, "", ""),
    bind(KeyCode::Left, NONE, Action::Left, "Left/Right", "move the cursor"),
    bind(KeyCode::Right, NONE, Action::Right, "", ""),
    bind(KeyCode::Char('a'), CTRL, Action::LineStart, "Ctrl-A/Ctrl-E", "start / end of the line"),
    bind(KeyCode::Char('e'), CTRL, Action::LineEnd, "", ""),
    bind(KeyCode::Backspace, NONE, Action::Backspace, "Backspace/Del", "delete a character"),
    bind(KeyCode::Delete, NONE, Action::Delete, "", ""),
    bind(KeyCode::Char('w'), CTRL, Action::DeleteWord, "Ctrl-W", "delete the previous word"),
    bind(KeyCode::Char('u'), CTRL, Action::ClearLine, "Ctrl-U", "clear the line"),
    bind(KeyCode::Char('c'), CTRL, Action::Quit, "Ctrl-C", "quit"),
    bind(KeyCode::Char('z'), CTRL, Action::Suspend, "Ctrl-Z", "suspend (the shell's fg resumes)"),
    bind(
        KeyCode::Down,
        ALT,
        Action::NextConversation,
        "Alt-Up/Down, Ctrl-P/N",
        "previous / next conversation (p2pchat open)",
    ),
    bind(KeyCode::Up, ALT, Action::PreviousConversation, "", ""),
    bind(KeyCode::Char('n'), CTRL, Action::NextConversation, "", ""),
    bind(KeyCode::Char('p'), CTRL, Action::PreviousConversation, "", ""),
    bind(
        KeyCode::Char('1'),
        ALT,
        Action::Conversation(1),
        "Alt-1…9",
        "the conversation at that place",
    ),
    bind(KeyCode::Char('2'), ALT, Action::Conversation(2), "", ""),
    bind(KeyCode::Char('3'), ALT, Action::Conversation(3), "", ""),
    bind(KeyCode::Char('4'), ALT, Action::Conversation(4), "", ""),
    bind(KeyCode::Char('5'), ALT, Action::Conversation(5), "", ""),
    bind(KeyCode::Char('6'), ALT, Action::Conversation(6), "", ""),
    bind(KeyCode::Char('7'), ALT, Action::Conversation(7), "", ""),
    bind(KeyCode::Char('8'), ALT, Action::Conversation(8), "", ""),
    bind(KeyCode::Char('9'), ALT, Action::Conversation(9), "", ""),
    bind(KeyCode::Char('b'), CTRL, Action::TogglePane, "Ctrl-B", "hide / show the conversations"),
];

/// The action for a key press, if any. Releases are ignored (terminals that report them would
/// otherwise type every key twice).
pub fn map_key(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if let Some(b) = BINDINGS.iter().find(|b| b.code == key.code && b.modifiers == key.modifiers) {
        return Some(b.action);
    }
    match key.code {
        KeyCode::Char(c) if !key.modifiers.intersects(CTRL | KeyModifiers::ALT) => {
            Some(Action::Insert(c))
        }
        _ => None,
    }
}

impl Action {
    /// Moves between conversations: the messenger's alone (a single chat ignores it).
    pub fn is_messenger_only(self) -> bool {
        matches!(
            self,
            Self::NextConversation
                | Self::PreviousConversation
                | Self::Conversation(_)
                | Self::TogglePane
        )
    }
}

/// (keys, what they do) for `/help`, one row per documented binding group; the keys that move
/// between conversations only for the messenger.
pub fn help_rows(messenger: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    BINDINGS
        .iter()
        .filter(move |b| !b.keys.is_empty() && (messenger || !b.action.is_messenger_only()))
        .map(|b| (b.keys, b.help))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn table_and_typing() {
        assert_eq!(map_key(key(KeyCode::Enter, NONE)), Some(Action::Submit));
        assert_eq!(map_key(key(KeyCode::Char('c'), CTRL)), Some(Action::Quit));
        assert_eq!(map_key(key(KeyCode::Char('x'), NONE)), Some(Action::Insert('x')));
        assert_eq!(
            map_key(key(KeyCode::Char('X'), KeyModifiers::SHIFT)),
            Some(Action::Insert('X'))
        );
        assert_eq!(map_key(key(KeyCode::Char('z'), CTRL)), Some(Action::Suspend));
        assert_eq!(map_key(key(KeyCode::Char('q'), CTRL)), None);
        assert_eq!(map_key(key(KeyCode::Enter, SHIFT)), Some(Action::Insert('\n')));
        assert_eq!(map_key(key(KeyCode::Char('f'), CTRL)), Some(Action::Find));
        assert_eq!(map_key(key(KeyCode::Esc, NONE)), Some(Action::Cancel));
        let mut release = key(KeyCode::Char('x'), NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(map_key(release), None);
        assert!(help_rows(false).any(|(k, _)| k == "PgUp/PgDn"));
    }
}
