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
    /// A slash command we do not know (the word after the slash).
    Unknown(String),
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
        "search" | "find" => {
            let text = rest.trim_start().strip_prefix(word).unwrap_or_default();
            Command::Search(text.trim().to_owned())
        }
        _ => Command::Unknown(word.to_owned()),
    }
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
}
