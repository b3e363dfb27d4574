//! The messenger's app (`p2pchat open`): a model of conversations — every contact and room at
//! once — over the single chat's `Model` and `update`, which each conversation keeps as its
//! own (history, peers, input draft, search). This module owns what is between them: which
//! conversation is shown, unread counts and the "unread since you left" line, attention (bell,
//! desktop notification), the commands that open or start conversations, and quitting all of
//! them at once. Pure like `update`: no IO, no clock; the runner does what `Do` asks.

use chrono::{DateTime, Local};

use super::commands::{self, Command};
use super::keymap::Action;
use super::message::{Effect, Message};
use super::model::{Entry, EntryKind, Model};
use super::scrollback;
use super::texts;
use crate::proto::{NetCommand, NetEvent};
use crate::text::fold_str;

/// Messages in one conversation closer together than this ask for attention once (a bell,
/// a notification), so a burst does not ring for each.
pub const ATTENTION_QUIET: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Where `forward` and `tell` send what is for the home screen (no conversation is on it).
const HOME: usize = usize::MAX;

/// What a conversation is with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum With {
    /// A contact, by the name saved with it.
    Contact(String),
    /// A room joined with a shared key, by its name.
    Room(String),
}

impl With {
    /// The name commands and headless output use: the contact's, or `room:NAME`.
    pub fn label(&self) -> String {
        match self {
            Self::Contact(name) => name.clone(),
            Self::Room(name) => format!("room:{name}"),
        }
    }

    /// Whether `name` (as typed after `/open` or `/to`) means this conversation: a contact
    /// by its name, a room as `room:NAME` (or its bare name when no contact has it), ignoring
    /// case (in any script: "/open ÅSA" finds åsa).
    fn answers_to(&self, name: &str) -> bool {
        let name = name.trim_start_matches('@');
        let same = |a: &str, b: &str| fold_str(a) == fold_str(b);
        match self {
            Self::Contact(contact) => same(contact, name),
            Self::Room(room) => same(
                name.strip_prefix("room:").or_else(|| name.strip_prefix('#')).unwrap_or(name),
                room,
            ),
        }
    }
}

/// One conversation: the single chat's model, and what the messenger knows of it.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// With whom.
    pub with: With,
    /// Its history, peers, input draft and search, as a single chat keeps them (boxed: a
    /// conversation moves through `Event::Added`, which stays small beside the others).
    pub model: Box<Model>,
    /// Messages from others since the user last looked at it.
    pub unread: usize,
    /// When a message last came or went.
    pub last_activity: Option<DateTime<Local>>,
    /// Its network said it closed.
    pub closed: bool,
    /// When the last message here asked for attention (a burst rings once).
    pub last_attention: Option<DateTime<Local>>,
    /// The user left it (`/leave`, or a room joined again with another key): gone from the
    /// pane and from every command; its log stays.
    pub left: bool,
}

impl Conversation {
    /// A conversation with `with`, showing `model`.
    pub fn new(with: With, model: Model) -> Self {
        let last_activity = model.entries.iter().rev().find_map(|e| match e.kind {
            EntryKind::Chat { .. } => Some(e.at),
            _ => None,
        });
        Self {
            with,
            model: Box::new(model),
            unread: 0,
            last_activity,
            closed: false,
            left: false,
            last_attention: None,
        }
    }

    /// Peers online now, and peers known.
    pub fn presence(&self) -> (usize, usize) {
        (self.model.peers.iter().filter(|p| p.online).count(), self.model.peers.len())
    }
}

/// How a message in a conversation the user is not looking at asks for attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    /// Ring the terminal's bell.
    pub bell: bool,
    /// Send a desktop notification.
    pub desktop: bool,
    /// Show the message's text in the notification (false: only who wrote).
    pub content: bool,
}

impl Default for Notify {
    fn default() -> Self {
        Self { bell: true, desktop: false, content: true }
    }
}

/// The messenger's state.
#[derive(Debug, Clone)]
pub struct Messenger {
    /// Every conversation, in the order they were opened (ids for the runner).
    pub conversations: Vec<Conversation>,
    /// The one shown, an index into `conversations`.
    pub selected: usize,
    /// The user hid the conversations pane (Ctrl-B).
    pub pane_hidden: bool,
    /// The terminal has focus (FocusGained / FocusLost; true where the terminal never says).
    pub focused: bool,
    /// How to ask for attention.
    pub notify: Notify,
    /// `/room NAME` without a key: the next line typed is its key, not a message.
    pub asking_key_for: Option<String>,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// `/quit` was given: every conversation says goodbye.
    pub quitting: bool,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    /// What the screen shows while there is no conversation yet: the input (for /pair,
    /// /join, /room) and the messenger's answers. None: the screen says how to start.
    pub home: Option<Box<Model>>,
    /// Our contacts as saved, for `/contacts`.
    pub contacts: Vec<crate::identity::Contact>,
}

/// What the messenger asks the runner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Do {
    /// An effect of conversation `index`'s own `update` (its log, its network commands).
    In(usize, Effect),
    /// Say goodbye in every conversation at once (the endpoint's shutdown).
    Shutdown,
    /// Every conversation has closed: stop.
    Exit,
    /// Stop until the shell resumes us (Ctrl-Z).
    Suspend,
    /// Ring the terminal's bell.
    Bell,
    /// A desktop notification.
    Desktop {
        /// Who wrote, and where.
        title: String,
        /// What (none when the user hides content).
        body: Option<String>,
    },
    /// `/pair`: ask the server for a code and wait for a friend to use it.
    Pair,
    /// `/join CODE`: pair with a friend's code.
    Join(String),
    /// A line the messenger showed (headless mode prints it; the screen has it already).
    Said(String),
    /// `/leave`: conversation `index` (a room) is left; forget its key and close its session.
    Leave(usize),
    /// `/room NAME KEY`: join and keep a room.
    Room {
        /// Its name.
        name: String,
        /// Its key, as typed (the runner checks it).
        key: String,
    },
}

/// Input to the messenger's `update`.
#[derive(Debug, Clone)]
pub enum Event {
    /// From the terminal or stdin: goes to the conversation shown, unless the messenger
    /// takes it (moving between conversations, its commands, quitting).
    Ui(Message),
    /// For conversation `index`: its network's events, its pages and searches.
    To(usize, Message),
    /// The terminal gained (true) or lost focus.
    Focus(bool),
    /// A conversation the runner opened (`/pair`, `/join`, `/room`): shown at once.
    Added(Conversation),
    /// Worth telling the user about work of the messenger's own (a code to read out, a
    /// pairing that failed): shown in the conversation on screen.
    Notice(String),
}

impl Messenger {
    /// A messenger over `conversations` (at least one is shown; none is allowed while
    /// waiting for a first contact), showing the first.
    pub fn new(conversations: Vec<Conversation>, notify: Notify) -> Self {
        let mut messenger = Self {
            conversations,
            selected: 0,
            pane_hidden: false,
            focused: true,
            notify,
            asking_key_for: None,
            size: (80, 24),
            quitting: false,
            dirty: true,
            home: None,
            contacts: Vec::new(),
        };
        let order = messenger.order();
        messenger.selected = order.first().copied().unwrap_or(0);
        messenger
    }

    /// The conversation shown.
    pub fn shown(&self) -> Option<&Conversation> {
        self.conversations.get(self.selected).filter(|c| !c.left)
    }

    /// The index of the conversation on screen, or `HOME` for the home screen (none shown,
    /// or the one selected was left).
    pub fn on_screen(&self) -> usize {
        if self.shown().is_some() { self.selected } else { HOME }
    }

    /// The model on screen: the conversation shown's, else the home screen's.
    pub fn screen(&self) -> Option<&Model> {
        self.shown().map(|c| &*c.model).or(self.home.as_deref())
    }

    /// The model on screen, to change it.
    fn screen_mut(&mut self) -> Option<&mut Model> {
        match self.conversations.get_mut(self.selected).filter(|c| !c.left) {
            Some(shown) => Some(&mut shown.model),
            None => self.home.as_deref_mut(),
        }
    }

    /// The conversations in the pane's order: the most recent activity first (those that
    /// never had any last), then by name. Alt-1…9 and Ctrl-N/P follow it.
    pub fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> =
            (0..self.conversations.len()).filter(|&i| !self.conversations[i].left).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.conversations[a], &self.conversations[b]);
            b.last_activity.cmp(&a.last_activity).then_with(|| a.with.label().cmp(&b.with.label()))
        });
        order
    }

    /// The conversation `name` means (`/open`, `/to`): a contact first, then a room.
    pub fn find(&self, name: &str) -> Option<usize> {
        let by = |contact: bool| {
            self.conversations.iter().position(|c| {
                !c.left && matches!(c.with, With::Contact(_)) == contact && c.with.answers_to(name)
            })
        };
        by(true).or_else(|| by(false))
    }

    /// Whom `/to NAME TEXT` means, and the message: NAME, else — for a name with spaces —
    /// the longest run of NAME and TEXT's first words that names a conversation.
    fn addressee(&self, name: &str, text: &str) -> Option<(usize, String)> {
        let mut found = self.find(name).map(|index| (index, text.to_owned()));
        let mut candidate = name.to_owned();
        let mut rest = text;
        while let Some(word) = rest.split_whitespace().next() {
            candidate = format!("{candidate} {word}");
            rest = rest.trim_start().strip_prefix(word).unwrap_or_default();
            if let Some(index) = self.find(&candidate) {
                found = Some((index, rest.strip_prefix(' ').unwrap_or(rest).to_owned()));
            }
        }
        found
    }

    /// Conversation labels, for a sentence that lists them.
    fn labels(&self) -> String {
        let labels: Vec<String> =
            self.order().iter().map(|&i| self.conversations[i].with.label()).collect();
        if labels.is_empty() { "none yet".to_owned() } else { labels.join(", ") }
    }

    /// Sets every conversation's model to the size its history is drawn at: the terminal
    /// less the conversations pane.
    fn resize_models(&mut self, effects: &mut Vec<Do>) {
        let columns = self.size.0.saturating_sub(crate::ui::conversations_width(self));
        if let Some(home) = self.home.as_mut() {
            home.size = (columns, self.size.1);
        }
        for index in 0..self.conversations.len() {
            let model = &mut self.conversations[index].model;
            model.size = (columns, self.size.1);
            let mut own = Vec::new();
            scrollback::scroll_by(model, 0, &mut own);
            effects.extend(own.into_iter().map(|e| Do::In(index, e)));
        }
    }

    /// Shows conversation `index`: it is read now, and the line marking what was unread
    /// moves there from the one left.
    fn select(&mut self, index: usize) {
        if index >= self.conversations.len() {
            return;
        }
        if index != self.selected {
            // A room's key asked for in one conversation is not typed in another.
            self.asking_key_for = None;
        }
        if index != self.selected
            && let Some(left) = self.conversations.get_mut(self.selected)
        {
            remove_unread_line(&mut left.model);
        }
        self.selected = index;
        let shown = &mut self.conversations[index];
        let unread = std::mem::take(&mut shown.unread);
        if unread > 0 {
            open_at_unread_line(&mut shown.model, unread);
        }
        shown.model.dirty = true;
        self.dirty = true;
    }

    /// The user is looking at conversation `index` now.
    fn looking_at(&self, index: usize) -> bool {
        index == self.selected && self.focused
    }
}

/// Shows a conversation with `unread` messages from its "unread since you left" line on,
/// at the top of the view, when they do not all fit: the first of them is what the user has
/// not read; "↓ N new" counts them, and End (or reading down) reaches the newest.
fn open_at_unread_line(model: &mut Model, unread: usize) {
    let Some(at) = model.entries.iter().rposition(|e| e.kind == EntryKind::Unread) else {
        return;
    };
    let below: usize =
        model.entries[at..].iter().map(|e| crate::ui::history::entry_rows(e, model)).sum();
    let height = usize::from(crate::ui::history_height(model));
    if below > height && model.scroll == 0 {
        model.scroll = below - height;
        // "↓ N new" counts the messages below the view (those under the line that fit are
        // on screen already).
        let mut rows = 0;
        let mut hidden = 0;
        for entry in model.entries.iter().rev() {
            rows += crate::ui::history::entry_rows(entry, model);
            if rows > model.scroll {
                break;
            }
            hidden += usize::from(matches!(entry.kind, EntryKind::Chat { own: false, .. }));
        }
        model.unread = hidden.min(unread);
    }
}

/// Takes the "unread since you left" line out of `model` (shown, or parked while the window
/// is away from the newest items), keeping a scrolled-back view on the same rows: when the
/// line was below the view, the view is a line's rows nearer the bottom now.
fn remove_unread_line(model: &mut Model) {
    model.paging.parked.retain(|e| e.kind != EntryKind::Unread);
    let Some(at) = model.entries.iter().position(|e| e.kind == EntryKind::Unread) else {
        return;
    };
    if model.scroll > 0 {
        let rows = |e: &Entry| crate::ui::history::entry_rows(e, model);
        let below: usize = model.entries[at + 1..].iter().map(rows).sum();
        let own = rows(&model.entries[at]);
        if below + own <= model.scroll {
            model.scroll -= own;
        }
    }
    model.entries.remove(at);
    model.dirty = true;
}

/// Applies one event to the messenger.
pub fn update(messenger: &mut Messenger, event: Event) -> Vec<Do> {
    let mut effects = Vec::new();
    match event {
        Event::Ui(message) => on_ui(messenger, message, &mut effects),
        Event::To(index, message) => on_conversation(messenger, index, message, &mut effects),
        Event::Focus(focused) => {
            messenger.focused = focused;
            if focused && let Some(shown) = messenger.conversations.get_mut(messenger.selected) {
                shown.unread = 0;
                messenger.dirty = true;
            }
        }
        Event::Added(mut conversation) => {
            let at = conversation.model.now;
            let colour =
                messenger.conversations.first().map(|c| &*c.model).or(messenger.home.as_deref());
            conversation.model.colour = colour.is_none_or(|m| m.colour);
            messenger.conversations.push(conversation);
            let index = messenger.conversations.len() - 1;
            messenger.resize_models(&mut effects);
            messenger.select(index);
            let label = messenger.conversations[index].with.label();
            tell(messenger, texts::conversation_opened(&label), at, &mut effects);
        }
        Event::Notice(text) => {
            let at = messenger.shown().map_or_else(Local::now, |c| c.model.now);
            tell(messenger, text, at, &mut effects);
        }
    }
    if messenger.conversations.iter().any(|c| c.model.dirty)
        || messenger.home.as_ref().is_some_and(|h| h.dirty)
    {
        messenger.dirty = true;
    }
    effects
}

/// Shows a line in the conversation on screen, at its newest end, where the view goes (as
/// a single chat's answers do: scrolled back, the line would land out of sight).
fn tell(messenger: &mut Messenger, text: String, at: DateTime<Local>, effects: &mut Vec<Do>) {
    let index = messenger.on_screen();
    if let Some(shown) = messenger.conversations.get_mut(index) {
        let mut own = Vec::new();
        scrollback::to_newest(&mut shown.model, &mut own);
        effects.extend(own.into_iter().map(|e| Do::In(index, e)));
        scrollback::push(&mut shown.model, Entry::system(at, text.clone()));
    } else if let Some(home) = messenger.home.as_mut() {
        scrollback::push(home, Entry::system(at, text.clone()));
    }
    effects.push(Do::Said(text));
    messenger.dirty = true;
}

/// Runs `message` through conversation `index`'s own `update`, keeping its effects for the
/// runner. The messenger quits all conversations at once, so a conversation's own goodbye
/// is not passed on (the endpoint's shutdown says it), and its exit only counts.
fn forward(messenger: &mut Messenger, index: usize, message: Message, effects: &mut Vec<Do>) {
    let Some(conversation) = messenger.conversations.get_mut(index).filter(|_| index != HOME)
    else {
        // No conversation yet: the home screen edits its line; it has no network or log.
        if let Some(home) = messenger.home.as_mut() {
            let own = super::update(home, message);
            effects.extend(own.into_iter().filter(|e| *e == Effect::Suspend).map(|_| Do::Suspend));
        }
        return;
    };
    let was_closed = conversation.closed;
    for effect in super::update(&mut conversation.model, message) {
        match effect {
            Effect::Net(NetCommand::Shutdown) => {}
            Effect::Exit => conversation.closed = true,
            Effect::Suspend => effects.push(Do::Suspend),
            effect => effects.push(Do::In(index, effect)),
        }
    }
    // Exit once: when the last conversation closes (a tick or a late echo after that asks
    // nothing more).
    let closed_now = !was_closed && messenger.conversations[index].closed;
    if closed_now && messenger.quitting && messenger.conversations.iter().all(|c| c.closed) {
        effects.push(Do::Exit);
    }
}

fn on_ui(messenger: &mut Messenger, message: Message, effects: &mut Vec<Do>) {
    match message {
        Message::Key(action) => on_key(messenger, action, effects),
        Message::Submit(line) => submit(messenger, line, effects),
        Message::Resize(columns, rows) => {
            messenger.size = (columns, rows);
            messenger.resize_models(effects);
            messenger.dirty = true;
        }
        Message::Tick(now) => {
            // Every conversation's clock, and the home screen's when it is shown.
            for index in 0..messenger.conversations.len() {
                forward(messenger, index, Message::Tick(now), effects);
            }
            if messenger.shown().is_none() {
                forward(messenger, HOME, Message::Tick(now), effects);
            }
        }
        Message::Quit => quit(messenger, effects),
        message => forward(messenger, messenger.on_screen(), message, effects),
    }
}

fn on_key(messenger: &mut Messenger, action: Action, effects: &mut Vec<Do>) {
    let order = messenger.order();
    let place = order.iter().position(|&i| i == messenger.selected).unwrap_or(0);
    let step = |by: usize| order.get((place + by) % order.len().max(1)).copied();
    match action {
        Action::NextConversation => {
            if let Some(index) = step(1) {
                messenger.select(index);
            }
        }
        Action::PreviousConversation => {
            if let Some(index) = step(order.len().saturating_sub(1)) {
                messenger.select(index);
            }
        }
        Action::Conversation(n) => {
            if let Some(&index) = order.get(usize::from(n).saturating_sub(1)) {
                messenger.select(index);
            }
        }
        Action::TogglePane => {
            messenger.pane_hidden = !messenger.pane_hidden;
            messenger.resize_models(effects);
            messenger.dirty = true;
        }
        Action::Quit => quit(messenger, effects),
        Action::Submit
            if messenger.search_idle()
                && let Some(screen) = messenger.screen() =>
        {
            let line = screen.input.text().to_owned();
            submit(messenger, line, effects);
        }
        action => forward(messenger, messenger.on_screen(), Message::Key(action), effects),
    }
}

impl Messenger {
    /// Enter submits the line: not while a search of the shown conversation takes Enter to
    /// step through matches (an empty line there).
    fn search_idle(&self) -> bool {
        self.shown().is_none_or(|c| c.model.search.is_none() || !c.model.input.text().is_empty())
    }
}

fn quit(messenger: &mut Messenger, effects: &mut Vec<Do>) {
    if messenger.quitting {
        return;
    }
    messenger.quitting = true;
    for conversation in &mut messenger.conversations {
        conversation.model.quitting = true;
    }
    effects.push(Do::Shutdown);
    if messenger.conversations.iter().all(|c| c.closed) {
        effects.push(Do::Exit);
    }
}

/// A submitted line: the messenger's commands here, the rest to the conversation shown.
fn submit(messenger: &mut Messenger, line: String, effects: &mut Vec<Do>) {
    if let Some(room) = messenger.asking_key_for.take() {
        // A key never starts with a slash (URL-safe base64): such a line is a command, and
        // the question is dropped; so is an empty line.
        if !line.trim_start().starts_with('/') {
            forget_input(messenger);
            if !line.trim().is_empty() {
                effects.push(Do::Room { name: room, key: line.trim().to_owned() });
            }
            return;
        }
    }
    let command = match commands::parse(&line) {
        // "room:club" is how the pane names the room club.
        Command::Room { name, key } => {
            let name = name.strip_prefix("room:").map(str::to_owned).unwrap_or(name);
            Command::Room { name, key }
        }
        command => command,
    };
    match command {
        Command::Quit => {
            clear_input(messenger);
            quit(messenger, effects);
        }
        Command::Contacts => {
            for line in texts::contact_lines(&messenger.contacts, false) {
                answer(messenger, line, effects);
            }
        }
        Command::Help => {
            for line in texts::help(true) {
                answer(messenger, line, effects);
            }
        }
        Command::Open(name) => match messenger.find(&name) {
            Some(index) => {
                clear_input(messenger);
                messenger.select(index);
            }
            None => {
                let known = messenger.labels();
                answer(messenger, texts::no_conversation(&name, &known), effects);
            }
        },
        Command::To { name, text } => match messenger.addressee(&name, &text) {
            Some((_, text)) if text.trim().is_empty() => {
                answer(messenger, texts::TO_USAGE.to_owned(), effects)
            }
            Some((index, text)) => {
                clear_input(messenger);
                // TEXT is a message: "/to bob /quit" says "/quit" to bob (as "//quit" would),
                // it does not run a command in a conversation not on screen.
                let line = if text.starts_with('/') { format!("/{text}") } else { text };
                forward(messenger, index, Message::Submit(line), effects);
            }
            None => {
                let known = messenger.labels();
                answer(messenger, texts::no_conversation(&name, &known), effects);
            }
        },
        Command::Pair => {
            clear_input(messenger);
            effects.push(Do::Pair);
        }
        Command::Join(code) if code.is_empty() => {
            answer(messenger, texts::JOIN_USAGE.to_owned(), effects)
        }
        Command::Join(code) => {
            clear_input(messenger);
            effects.push(Do::Join(code));
        }
        Command::Leave(name) => {
            let target =
                if name.is_empty() { Some(messenger.selected) } else { messenger.find(&name) };
            match target.filter(|&i| messenger.conversations.get(i).is_some_and(|c| !c.left)) {
                Some(index) if matches!(messenger.conversations[index].with, With::Room(_)) => {
                    clear_input(messenger);
                    leave(messenger, index, effects);
                }
                Some(_) => answer(messenger, texts::LEAVE_ROOMS_ONLY.to_owned(), effects),
                None => {
                    let known = messenger.labels();
                    answer(messenger, texts::no_conversation(&name, &known), effects);
                }
            }
        }
        Command::Room { name, .. } if name.is_empty() => {
            answer(messenger, texts::ROOM_USAGE.to_owned(), effects);
        }
        Command::Room { name, key: Some(key) } => {
            forget_input(messenger);
            effects.push(Do::Room { name, key });
        }
        Command::Room { name, key: None } => {
            answer(messenger, texts::room_key_prompt(&name), effects);
            messenger.asking_key_for = Some(name);
        }
        _ if messenger.shown().is_none() => {
            answer(messenger, texts::NO_CONVERSATION_YET.to_owned(), effects)
        }
        _ => forward(messenger, messenger.on_screen(), Message::Submit(line), effects),
    }
}

/// Leaves conversation `index`: gone from the pane, the next one shown, the runner told.
pub fn leave(messenger: &mut Messenger, index: usize, effects: &mut Vec<Do>) {
    let Some(conversation) = messenger.conversations.get_mut(index) else { return };
    conversation.left = true;
    let label = conversation.with.label();
    effects.push(Do::Leave(index));
    if messenger.selected == index
        && let Some(&next) = messenger.order().first()
    {
        messenger.select(next);
    }
    let at = messenger.screen().map_or_else(Local::now, |m| m.now);
    tell(messenger, texts::conversation_left(&label), at, effects);
}

/// Shows a command's answer in the conversation on screen, its line cleared.
fn answer(messenger: &mut Messenger, text: String, effects: &mut Vec<Do>) {
    clear_input(messenger);
    let at = messenger.shown().map_or_else(Local::now, |c| c.model.now);
    tell(messenger, text, at, effects);
}

/// Empties the input on screen (the line was the messenger's to run) and keeps
/// the line for Up.
fn clear_input(messenger: &mut Messenger) {
    if let Some(model) = messenger.screen_mut() {
        let line = model.input.take();
        if !line.trim().is_empty() {
            model.recall.push(line);
        }
        model.dirty = true;
    }
    messenger.dirty = true;
}

/// Empties the input on screen without keeping the line for Up: it holds a
/// room's key, which anyone at the screen could read back.
fn forget_input(messenger: &mut Messenger) {
    if let Some(model) = messenger.screen_mut() {
        model.input.take();
        model.dirty = true;
    }
    messenger.dirty = true;
}

/// An event for conversation `index`: its model takes it; a message from someone else there
/// counts as unread and asks for attention unless the user is looking at it.
fn on_conversation(
    messenger: &mut Messenger,
    index: usize,
    message: Message,
    effects: &mut Vec<Do>,
) {
    if index >= messenger.conversations.len() {
        return;
    }
    let incoming = match &message {
        Message::Net(NetEvent::Message { from, text, .. }, at) => {
            Some((from.clone(), text.clone(), *at))
        }
        _ => None,
    };
    let outgoing = match &message {
        Message::Net(NetEvent::Sent { .. } | NetEvent::Queued { .. }, at) => Some(*at),
        _ => None,
    };
    let away = !messenger.looking_at(index);
    if let Some((_, _, at)) = &incoming
        && away
        && index != messenger.selected
        && messenger.conversations[index].unread == 0
    {
        let model = &mut messenger.conversations[index].model;
        remove_unread_line(model);
        scrollback::push(model, Entry::new(*at, EntryKind::Unread, super::model::Origin::Notice));
    }
    forward(messenger, index, message, effects);
    let conversation = &mut messenger.conversations[index];
    if let Some(at) = outgoing {
        conversation.last_activity = Some(at);
    }
    let Some((from, text, at)) = incoming else { return };
    conversation.last_activity = Some(at);
    if !away {
        return;
    }
    conversation.unread += 1;
    messenger.dirty = true;
    // A burst asks once: the first message, then one after `ATTENTION_QUIET` of quiet.
    let quiet = conversation.last_attention.is_none_or(|last| at - last >= ATTENTION_QUIET);
    conversation.last_attention = Some(at);
    if !quiet {
        return;
    }
    let notify = messenger.notify;
    if notify.bell {
        effects.push(Do::Bell);
    }
    if notify.desktop {
        let title = texts::notification_title(&from, &conversation.with);
        effects.push(Do::Desktop { title, body: notify.content.then_some(text) });
    }
}

#[cfg(test)]
mod tests;
