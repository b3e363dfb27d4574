//! A conversation log with any bytes in it (torn lines, foreign JSON, huge lines, invalid
//! UTF-8), read as the chat reads it: its end, pages before and after, the messages not yet
//! confirmed, every record, and a search. It must never panic.

use p2pchat::history;

use super::scratch::Scratch;

/// One input: the first byte picks the search term's length, the rest is the file.
pub fn run(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let cut = usize::from(n % 8).min(rest.len());
    let (needle, file) = rest.split_at(cut);
    let scratch = Scratch::new("room-fuzz.jsonl");
    let path = &scratch.file;
    std::fs::write(path, file).expect("the scratch file is written");
    let _ = history::tail(path, 50);
    let _ = history::read_before(path, None, 50);
    let _ = history::read_before(path, Some(file.len() as u64 / 2), 10);
    let _ = history::read_after(path, file.len() as u64 / 3, 10);
    let _ = history::unfinished(path, 50);
    let _ = history::read_each(path, |_| {});
    let _ = history::search(path, &String::from_utf8_lossy(needle));
}
