//! Slash commands, parsed in this one place for the TUI and headless mode alike.

/// What a submitted line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing (an empty or blank line).
    Empty,
    /// A chat message.
    Say(String),
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// `/who`.
    Who,
    /// `/search TEXT` (the text; empty when none was given).
    Search(String),
    /// `/verify`.
    Verify,
    /// `/contacts`.
    Contacts,
    /// `/to NAME TEXT`: a message for another conversation (the messenger).
    To {
        /// The conversation: a contact's name, or `room:NAME`.
        name: String,
        /// The message.
        text: String,
    },
    /// `/open NAME`: show that conversation (the messenger).
    Open(String),
    /// `/pair`: a new code to read out to a friend (the messenger).
    Pair,
    /// `/join CODE`: pair with the code a friend read out (the messenger).
    Join(String),
    /// `/room NAME [KEY]`: join a room with a shared key, and keep it (the messenger).
    Room {
        /// The room's name.
        name: String,
        /// Its key, when given on the line.
        key: Option<String>,
    },
    /// `/leave [NAME]`: leave a room (the one shown, or NAME) and forget its key (the
    /// messenger).
    Leave(String),
    /// A slash command we do not know (the word after the slash).
    Unknown(String),
}

impl Command {
    /// Only the messenger (`p2pchat open`) can run it.
    pub fn is_messenger_only(&self) -> bool {
        matches!(
            self,
            Self::To { .. }
                | Self::Open(_)
                | Self::Pair
                | Self::Join(_)
                | Self::Room { .. }
                | Self::Leave(_)
        )
    }
}

/// The commands and what they do, for `/help` and the README.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/help", "commands and keys"),
    ("/who", "peers: online or offline, endpoint and path, NAT type, round trip, last seen"),
    (
        "/search TEXT",
        "find TEXT in the whole history (also Ctrl-F); n/Enter older, N newer, Esc ends",
    ),
    ("/verify", "the safety number to compare with your peer's (paired chats)"),
    ("/contacts", "the people you paired with, and how to reach them again"),
    ("/quit", "say goodbye to peers and leave (also Ctrl-C)"),
    ("//text", "send a message that starts with a slash"),
];

/// The messenger's own commands (`p2pchat open`), for its `/help` and the README.
pub const MESSENGER_COMMANDS: &[(&str, &str)] = &[
    ("/open NAME", "show the conversation with a contact, or room:NAME"),
    ("/to NAME TEXT", "send TEXT in another conversation without switching"),
    ("/pair", "a code to read out to a new friend; they run /join CODE"),
    ("/join CODE", "pair with the code a friend read out"),
    ("/room NAME [KEY]", "join a room with its shared key (asked for when not given); kept"),
    ("/leave [NAME]", "leave a room (the one shown, or room:NAME) and forget its key"),
];

/// Parses one submitted line.
pub fn parse(line: &str) -> Command {
    if line.trim().is_empty() {
        return Command::Empty;
    }
    if let Some(escaped) = line.strip_prefix("//") {
        return Command::Say(format!("/{escaped}"));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line.to_owned());
    };
    let word = rest.split_whitespace().next().unwrap_or("");
    // Commands in any case: "/Quit" and "/WHO" are what they look like.
    match word.to_lowercase().as_str() {
        "help" | "h" | "?" => Command::Help,
        "quit" | "q" | "exit" => Command::Quit,
        "who" => Command::Who,
        "verify" => Command::Verify,
        "contacts" => Command::Contacts,
        "search" | "find" => Command::Search(after(rest, word).trim().to_owned()),
        "to" => {
            let rest = after(rest, word).trim_start();
            match rest.split_once(char::is_whitespace) {
                Some((name, text)) if !text.trim().is_empty() => {
                    Command::To { name: name.to_owned(), text: text.to_owned() }
                }
                _ => Command::To { name: rest.trim().to_owned(), text: String::new() },
            }
        }
        "open" => Command::Open(after(rest, word).trim().to_owned()),
        "pair" => Command::Pair,
        "leave" | "part" => Command::Leave(after(rest, word).trim().to_owned()),
        "join" => Command::Join(after(rest, word).trim().to_owned()),
        "room" => {
            let mut words = after(rest, word).split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            Command::Room { name, key: words.next().map(str::to_owned) }
        }
        _ => Command::Unknown(word.to_owned()),
    }
}

/// What follows the command word in `rest` (the line after its slash).
fn after<'l>(rest: &'l str, word: &str) -> &'l str {
    rest.trim_start().strip_prefix(word).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_messages() {
        assert_eq!(parse("  "), Command::Empty);
        assert_eq!(parse("hello"), Command::Say("hello".into()));
        assert_eq!(parse(" /who"), Command::Say(" /who".into()));
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/quit now"), Command::Quit);
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/search  old news "), Command::Search("old news".into()));
        assert_eq!(parse("/search"), Command::Search(String::new()));
        assert_eq!(parse("/verify"), Command::Verify);
        assert_eq!(parse("/Verify"), Command::Verify);
        assert_eq!(parse("/QUIT"), Command::Quit);
        assert_eq!(parse("/Search ΟΔΟΣ"), Command::Search("ΟΔΟΣ".into()));
        assert_eq!(parse("/Bogus"), Command::Unknown("Bogus".into()));
        assert_eq!(parse("/contacts"), Command::Contacts);
        assert_eq!(parse("/frobnicate x"), Command::Unknown("frobnicate".into()));
        assert_eq!(parse("/"), Command::Unknown(String::new()));
        assert_eq!(parse("//etc/passwd"), Command::Say("/etc/passwd".into()));
    }

    #[test]
    fn parses_the_messengers_commands() {
        let to = |name: &str, text: &str| Command::To { name: name.into(), text: text.into() };
        assert_eq!(parse("/to bob  hi there "), to("bob", " hi there "));
        assert_eq!(parse("/to room:lobby hi"), to("room:lobby", "hi"));
        assert_eq!(parse("/to bob"), to("bob", ""));
        assert_eq!(parse("/to bob   "), to("bob", ""));
        assert_eq!(parse("/open room:lobby"), Command::Open("room:lobby".into()));
        assert_eq!(parse("/pair"), Command::Pair);
        assert_eq!(parse("/join 7-apple-banjo"), Command::Join("7-apple-banjo".into()));
        assert_eq!(parse("/room lobby"), Command::Room { name: "lobby".into(), key: None });
        assert_eq!(
            parse("/room lobby K3y="),
            Command::Room { name: "lobby".into(), key: Some("K3y=".into()) }
        );
        assert!(parse("/pair").is_messenger_only() && !parse("/who").is_messenger_only());
        assert_eq!(parse("/leave"), Command::Leave(String::new()));
        assert_eq!(parse("/leave room:club"), Command::Leave("room:club".into()));
    }
}
