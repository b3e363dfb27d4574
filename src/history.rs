//! The conversation log: one append-only JSON-lines file per conversation under the data dir.
//! Every record carries a format version; each append is one `write` of a whole line, flushed,
//! so a crash leaves at most a torn last line, which reading skips and the next append ends
//! first. An append that returns `Ok` is in the file; one that fails is never reported kept. Reading starts from the end
//! of the file, so opening a long conversation costs what the last screens cost.
//! The data directory is private (created 0700, logs 0600) and held by one process at a time
//! (a lock file), so two chats never append to, and resend from, the same logs.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Local};
use serde::{Deserialize, Serialize};

use crate::consts::DEDUP_CAPACITY;
use crate::proto::{MsgId, NetEvent, Pending};

/// The record format written by this version.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes read per step when reading backwards.
const TAIL_CHUNK_BYTES: u64 = 64 * 1024;

/// Matches a search keeps (the newest): enough to page through, bounded for a one-letter search.
pub const MAX_SEARCH_MATCHES: usize = 100_000;

/// Bytes read per step when scanning forwards.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

/// Bytes read at a time by a search (a searcher runs over a whole block at once).
const SEARCH_BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version (1).
    pub v: u32,
    /// When this process recorded it (RFC 3339 with the local offset).
    pub at: DateTime<FixedOffset>,
    /// What happened.
    #[serde(flatten)]
    pub entry: Entry,
}

/// Direction of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a peer.
    In,
    /// From us.
    Out,
}

/// What became of one of our messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Sent to the online peers; not yet confirmed.
    Sent,
    /// A peer confirmed it is in its log.
    Delivered,
    /// Waiting for a peer to come online.
    Queued,
    /// Could not be sent (see the record's `reason`).
    Unsent,
}

/// The kinds of record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A chat message, either way.
    Message {
        /// In or out.
        dir: Direction,
        /// Sender's name.
        from: String,
        /// The text, as sent.
        text: String,
        /// The sender's own timestamp, as sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_at: Option<String>,
        /// Message id, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// For our messages: what became of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<Delivery>,
        /// For unsent messages: why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A peer confirmed one of our messages (the message's own record says the rest).
    Delivered {
        /// The message's id.
        id: String,
    },
    /// A peer came online or went offline.
    Presence {
        /// The peer's name.
        peer: String,
        /// Online now?
        online: bool,
        /// The endpoint in use, when online.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
        /// Why it went offline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Record {
    /// The record a network event leaves in the log, if it leaves one. `me` names our messages.
    pub fn from_event(event: &NetEvent, at: DateTime<Local>, me: &str) -> Option<Self> {
        let ours =
            |text: &str, id: Option<String>, sent_at: Option<&str>, state, reason| Entry::Message {
                dir: Direction::Out,
                from: me.to_owned(),
                text: text.to_owned(),
                sent_at: sent_at.map(str::to_owned),
                id,
                state: Some(state),
                reason,
            };
        let entry = match event {
            NetEvent::Delivered { id } => Entry::Delivered { id: id.0.clone() },
            NetEvent::Message { from, text, timestamp, id, .. } => Entry::Message {
                dir: Direction::In,
                from: from.clone(),
                text: text.clone(),
                sent_at: Some(timestamp.clone()),
                id: id.as_ref().map(|id| id.0.clone()),
                state: None,
                reason: None,
            },
            NetEvent::Sent { id, text, timestamp } => {
                ours(text, Some(id.0.clone()), Some(timestamp), Delivery::Sent, None)
            }
            NetEvent::Queued { id, text, timestamp } => {
                ours(text, Some(id.0.clone()), Some(timestamp), Delivery::Queued, None)
            }
            // A text refused for its length is not written out whole: its start names it (the
            // whole stays in the input box).
            NetEvent::NotSent { text, reason } if text.len() > crate::consts::MAX_MESSAGE_BYTES => {
                let start = crate::text::start_of(text, UNSENT_QUOTED_CHARS);
                ours(&start, None, None, Delivery::Unsent, Some(reason.clone()))
            }
            NetEvent::NotSent { text, reason } => {
                ours(text, None, None, Delivery::Unsent, Some(reason.clone()))
            }
            NetEvent::PeerOnline { name, addr, .. } => Entry::Presence {
                peer: name.clone(),
                online: true,
                addr: Some(addr.to_string()),
                reason: None,
            },
            NetEvent::PeerOffline { name, reason, .. } => Entry::Presence {
                peer: name.clone(),
                online: false,
                addr: None,
                reason: Some(reason.as_str().to_owned()),
            },
            _ => return None,
        };
        Some(Self { v: FORMAT_VERSION, at: at.fixed_offset(), entry })
    }
}

/// The fields of a record that say what the next run must finish, read without copying
/// what it does not need.
#[derive(Deserialize)]
struct Brief<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    dir: Option<Direction>,
    #[serde(default, borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    state: Option<Delivery>,
}

/// What the end of a log says the next run must finish.
#[derive(Debug, Default)]
pub struct Unfinished {
    /// Our messages no peer confirmed, to send again, oldest first.
    pub pending: Vec<Pending>,
    /// The (sender, id) of every message shown, never to be shown twice.
    pub seen: Vec<(String, String)>,
}

/// What the last `n` records of the log at `path` say about the next run: our messages no
/// peer confirmed (any of the `n`) and the newest `DEDUP_CAPACITY` ids shown (the session
/// remembers no more). Read newest first, and only the records that can matter are parsed: a
/// line holds none of the quoted words `"in"`, `"out"` and `"delivered"` unless it is an
/// incoming message, one of ours or a confirmation — whatever the spacing of its JSON — so the
/// rest (presence, and ours already confirmed) cost a byte search, not a parse.
pub fn unfinished(path: &Path, n: usize) -> Result<Unfinished, HistoryError> {
    let Some(raw) = raw_before(path, None, n)? else { return Ok(Unfinished::default()) };
    let lines: Vec<&[u8]> = raw.bytes.split(|&b| b == b'\n').collect();
    let lines = &lines[lines.len().saturating_sub(n + 1)..];
    let word = |w: &'static str| memchr::memmem::Finder::new(w);
    let (incoming, outgoing, confirmation) =
        (word("\"in\""), word("\"out\""), word("\"delivered\""));
    let (queued, sent) = (word("\"queued\""), word("\"sent\""));
    let exact = Exact::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut seen = Vec::new();
    // Confirmations newer than the message being read.
    let mut confirmed: HashSet<String> = HashSet::new();
    for line in lines.iter().rev() {
        let maybe_in = seen.len() < DEDUP_CAPACITY && incoming.find(line).is_some();
        let maybe_ours = outgoing.find(line).is_some()
            && (queued.find(line).is_some() || sent.find(line).is_some());
        if !maybe_in && !maybe_ours && confirmation.find(line).is_none() {
            continue;
        }
        // Records as we write them are read straight from their bytes: a confirmation's id,
        // the id of one of ours (a confirmed one needs nothing more), a peer's sender and id.
        match exact.read(line) {
            Some(Fast::Confirmation(id)) => {
                confirmed.insert(id.to_owned());
                continue;
            }
            Some(Fast::Ours(id)) if confirmed.contains(id) => continue,
            Some(Fast::Incoming { from, id }) if maybe_in => {
                seen.push((from.to_owned(), id.to_owned()));
                continue;
            }
            _ => {}
        }
        let Ok(brief) = serde_json::from_slice::<Brief<'_>>(line) else { continue };
        match (brief.kind.as_ref(), brief.dir, brief.id) {
            ("message", Some(Direction::Out), Some(id))
                if matches!(brief.state, Some(Delivery::Queued | Delivery::Sent))
                    && !confirmed.contains(id.as_ref())
                    && !pending.iter().any(|p| p.id.0 == *id) =>
            {
                pending.push(Pending {
                    id: MsgId(id.into_owned()),
                    text: brief.text.unwrap_or_default().into_owned(),
                    timestamp: brief.sent_at.unwrap_or_default().into_owned(),
                });
            }
            ("message", Some(Direction::In), Some(id)) if seen.len() < DEDUP_CAPACITY => {
                seen.push((brief.from.unwrap_or_default().into_owned(), id.into_owned()));
            }
            ("delivered", _, Some(id)) => {
                confirmed.insert(id.into_owned());
            }
            _ => {}
        }
    }
    // Oldest first, as they were written (and as the session's memory of ids evicts).
    pending.reverse();
    seen.reverse();
    Ok(Unfinished { pending, seen })
}

/// What a record written by `Record`'s serializer is, read from its bytes alone.
enum Fast<'l> {
    /// A peer confirmed our message with this id.
    Confirmation(&'l str),
    /// One of our messages, with this id.
    Ours(&'l str),
    /// A peer's message.
    Incoming {
        /// Its sender.
        from: &'l str,
        /// Its id.
        id: &'l str,
    },
}

/// The byte patterns of records as `Record`'s serializer writes them (no spaces, keys quoted).
/// Inside a JSON string a quote is escaped, so none of them can come from a message's text; a
/// value holding an escape is left to the parser.
struct Exact {
    message: memchr::memmem::Finder<'static>,
    delivered: memchr::memmem::Finder<'static>,
    dir_in: memchr::memmem::Finder<'static>,
    dir_out: memchr::memmem::Finder<'static>,
    from: memchr::memmem::Finder<'static>,
    id: memchr::memmem::Finder<'static>,
}

impl Exact {
    fn new() -> Self {
        let finder = |needle: &'static str| memchr::memmem::Finder::new(needle);
        Self {
            message: finder(r#""kind":"message""#),
            delivered: finder(r#""kind":"delivered""#),
            dir_in: finder(r#""dir":"in""#),
            dir_out: finder(r#""dir":"out""#),
            from: finder(r#""from":""#),
            id: finder(r#""id":""#),
        }
    }

    /// The string value after `key` in `line`, when it holds no escape.
    fn value<'l>(line: &'l [u8], key: &memchr::memmem::Finder<'_>) -> Option<&'l str> {
        let start = key.find(line)? + key.needle().len();
        let len = memchr::memchr(b'"', &line[start..])?;
        let value = &line[start..start + len];
        if value.contains(&b'\\') {
            return None;
        }
        std::str::from_utf8(value).ok()
    }

    fn read<'l>(&self, line: &'l [u8]) -> Option<Fast<'l>> {
        let id = Self::value(line, &self.id)?;
        if self.delivered.find(line).is_some() {
            return Some(Fast::Confirmation(id));
        }
        self.message.find(line)?;
        if self.dir_out.find(line).is_some() {
            return Some(Fast::Ours(id));
        }
        self.dir_in.find(line)?;
        Some(Fast::Incoming { from: Self::value(line, &self.from)?, id })
    }
}

/// Why the log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file or its directory could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// An open conversation log, appending.
pub struct History {
    path: PathBuf,
    /// The open file; `None` after a failed write, so the next append opens the path afresh
    /// (the file or its directory may have been removed, or the disk replaced meanwhile).
    file: Option<File>,
    /// The file's length after our last complete append, while only we have written since
    /// (see `append_line`).
    clean_end: Option<u64>,
}

/// The file holding a conversation. Names are escaped so any room or address is a safe file name.
pub fn conversation_path(data_dir: &Path, conversation: &str) -> PathBuf {
    let mut name = String::new();
    for c in conversation.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            name.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                name.push_str(&format!("%{b:02X}"));
            }
        }
    }
    data_dir.join("conversations").join(format!("{name}.jsonl"))
}

/// Creates `dir` and its missing parents readable by the user only (0700); an existing
/// directory is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The lock file in the data directory.
const LOCK_FILE: &str = "lock";

/// The data directory, held by this process while it lives (an advisory `flock` on a file in
/// it: the kernel lets it go when the process ends, however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _held: File,
}

/// The data directory could not be held.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another p2pchat is running with the data directory {} (it holds the lock file in it): \
         use that one, or give this one its own --data-dir",
        .0.display()
    )]
    Held(PathBuf),
    /// It could not be created or its lock file opened.
    #[error(transparent)]
    Io(#[from] HistoryError),
}

impl DataDirLock {
    /// Creates the directory if needed (0700) and takes its lock, or says who has it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LockError::Io(HistoryError::Io { path, source })
        };
        create_private_dir(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let file = private_file().write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _held: file }),
            Err(fs::TryLockError::WouldBlock) => Err(LockError::Held(dir.to_owned())),
            Err(fs::TryLockError::Error(source)) => Err(io(&path)(source)),
        }
    }
}

/// Options that create a file readable by the user only (0600).
fn private_file() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.create(true).mode(0o600);
    options
}

/// Opens (creating if needed) the log file at `path` for appending.
fn open_log(path: &Path) -> Result<File, HistoryError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)
            .map_err(|source| HistoryError::Io { path: dir.to_owned(), source })?;
    }
    private_file()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|source| HistoryError::Io { path: path.to_owned(), source })
}

/// Writes `line` (ending in a newline) at the end of `file` in one `write`, and makes sure it
/// went to a file that is still in the directory (a write to a removed file succeeds and is
/// lost with it). A torn last line — a crash, a full disk or a short write mid-record — is
/// ended first, or a record appended to it would be glued to it and unreadable; and a write
/// of ours that fails part-way is cut off again where possible, so a record that was never
/// confirmed does not come back as a line of its own. `clean_end` is the file's length after
/// our last complete write, when nothing has written since: a file still that long ends in our
/// newline and its last byte need not be read. Returns the new such length, or `None` when
/// another writer added to the file meanwhile.
fn append_line(
    file: &mut File,
    line: &mut Vec<u8>,
    clean_end: Option<u64>,
) -> io::Result<Option<u64>> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let len = file.metadata()?.len();
    if len > 0 && clean_end != Some(len) {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    if let Err(error) = file.write_all(line).and_then(|()| file.flush()) {
        let _ = file.set_len(len);
        return Err(error);
    }
    let after = file.metadata()?;
    if after.nlink() == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, "the log file was removed"));
    }
    let end = len.checked_add(line.len() as u64);
    Ok(end.filter(|&end| end == after.len()))
}

impl History {
    /// Opens (creating if needed) the log for `conversation` under `data_dir`.
    pub fn open(data_dir: &Path, conversation: &str) -> Result<Self, HistoryError> {
        let path = conversation_path(data_dir, conversation);
        let file = open_log(&path)?;
        Ok(Self { path, file: Some(file), clean_end: None })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line, in one write, and flushes it (to the OS: no fsync).
    /// A torn last line (a crash, a full disk) is ended first, so this record stays readable.
    /// `Ok` means the line is in the file; after an error nothing about this record is
    /// promised, and the next append opens the file afresh.
    pub fn append(&mut self, record: &Record) -> Result<(), HistoryError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| HistoryError::Io { path: self.path.clone(), source: e.into() })?;
        line.push(b'\n');
        let (mut file, clean_end) = match self.file.take() {
            Some(file) => (file, self.clean_end.take()),
            None => (open_log(&self.path)?, None),
        };
        self.clean_end = append_line(&mut file, &mut line, clean_end)
            .map_err(|source| HistoryError::Io { path: self.path.clone(), source })?;
        self.file = Some(file);
        Ok(())
    }
}

/// A run of consecutive records of the log and where they lie in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// (byte offset of the record's line, record), oldest first.
    pub records: Vec<(u64, Record)>,
    /// Offset of the first line the page covers.
    pub start: u64,
    /// Offset just past the last line it covers.
    pub end: u64,
    /// The file's length when it was read (`end < len`: newer records exist).
    pub len: u64,
    /// Offsets of the lines in the covered range that could not be read (torn or corrupt).
    pub unreadable: Vec<u64>,
}

fn open_for_reading(path: &Path) -> Result<Option<(File, u64)>, HistoryError> {
    let io_err = |source| HistoryError::Io { path: path.to_owned(), source };
    match File::open(path) {
        Ok(mut file) => {
            let len = file.seek(SeekFrom::End(0)).map_err(io_err)?;
            Ok(Some((file, len)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Parses one line; blank lines are `Ok(None)`, unreadable ones `Err(())`.
fn parse_line(line: &[u8]) -> Result<Option<Record>, ()> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(line).map(Some).map_err(|_| ())
}

/// The last `n` readable records of the log at `path` that end at or before byte `end` (the
/// end of the file when `None`; otherwise a line boundary from an earlier page). A missing
/// file is an empty history.
pub fn read_before(path: &Path, end: Option<u64>, n: usize) -> Result<Page, HistoryError> {
    let Some(Raw { start, bytes: buf, end, len }) = raw_before(path, end, n)? else {
        return Ok(Page::default());
    };
    let mut lines: Vec<(u64, &[u8])> = Vec::new();
    let mut offset = start;
    for line in buf.split(|&b| b == b'\n') {
        lines.push((offset, line));
        offset += line.len() as u64 + 1;
    }
    let mut page = Page { start: end, end, len, ..Page::default() };
    for (offset, line) in lines.into_iter().rev() {
        if page.records.len() == n {
            break;
        }
        match parse_line(line) {
            Ok(Some(record)) => page.records.push((offset, record)),
            Ok(None) => {}
            Err(()) => page.unreadable.push(offset),
        }
        page.start = offset;
    }
    page.records.reverse();
    Ok(page)
}

/// Lines of the log as bytes, from a line boundary.
struct Raw {
    /// Offset of the first byte.
    start: u64,
    /// The lines.
    bytes: Vec<u8>,
    /// Offset just past the last byte.
    end: u64,
    /// The file's length when read.
    len: u64,
}

/// At least the last `n` lines before byte `end` (or all there are).
fn raw_before(path: &Path, end: Option<u64>, n: usize) -> Result<Option<Raw>, HistoryError> {
    let io_err = |source| HistoryError::Io { path: path.to_owned(), source };
    let Some((mut file, len)) = open_for_reading(path)? else { return Ok(None) };
    let end = end.map_or(len, |e| e.min(len));
    let mut start = end;
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0;
    // Read backwards until there are n complete lines (n + 1 newlines) or the file start: a
    // chunk first, then what the lines read so far say the rest will take (an eighth more),
    // read in front of them in one piece, so the bytes are copied about once, and memory stays
    // within an eighth of what the lines take.
    while start > 0 && newlines <= n {
        // Few lines yet (a long one at the end): no estimate, twice as much again.
        let estimate = match newlines {
            0..16 => buf.len(),
            _ => {
                let estimate = (buf.len() / newlines).saturating_mul(n + 1 - newlines);
                estimate.saturating_add(estimate / 8)
            }
        };
        let step = u64::try_from(estimate).unwrap_or(u64::MAX).max(TAIL_CHUNK_BYTES).min(start);
        start -= step;
        let step = usize::try_from(step).unwrap_or(0);
        let mut older = Vec::with_capacity(step + buf.len());
        older.resize(step, 0);
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        file.read_exact(&mut older).map_err(io_err)?;
        newlines += memchr::memchr_iter(b'\n', &older).count();
        older.extend_from_slice(&buf);
        buf = older;
    }
    if start > 0 {
        // A partial first line: it began before the part we read.
        let cut = memchr::memchr(b'\n', &buf).map_or(buf.len(), |i| i + 1);
        buf.drain(..cut);
        start += cut as u64;
    }
    Ok(Some(Raw { start, bytes: buf, end, len }))
}

/// The last `n` readable records of the log (see `read_before`).
pub fn tail(path: &Path, n: usize) -> Result<Page, HistoryError> {
    read_before(path, None, n)
}

/// Calls `each(offset, line)` for every line from byte `start` on, oldest first, in bounded
/// memory, until it returns `Break` (for a line it does not take). Returns where the scan
/// stopped (just past the last line taken) and the file's length. An unterminated last line
/// (torn by a crash) is handed over too.
fn scan_lines(
    path: &Path,
    start: u64,
    mut each: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(u64, u64), HistoryError> {
    let io_err = |source| HistoryError::Io { path: path.to_owned(), source };
    let Some((mut file, len)) = open_for_reading(path)? else { return Ok((0, 0)) };
    let mut offset = start.min(len);
    file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; SCAN_CHUNK_BYTES];
    loop {
        let read = file.read(&mut chunk).map_err(io_err)?;
        let at_end = read == 0 || offset + (buf.len() + read) as u64 >= len;
        buf.extend_from_slice(&chunk[..read]);
        let mut consumed = 0;
        for newline in memchr::memchr_iter(b'\n', &buf) {
            if each(offset, &buf[consumed..newline]).is_break() {
                return Ok((offset, len));
            }
            offset += (newline + 1 - consumed) as u64;
            consumed = newline + 1;
        }
        buf.drain(..consumed);
        if at_end {
            if !buf.is_empty() {
                let _ = each(offset, &buf);
                offset += buf.len() as u64;
            }
            return Ok((offset, len));
        }
    }
}

/// Calls `each` for every readable record of the log, oldest first, in bounded memory;
/// returns how many lines were unreadable.
pub fn read_each(path: &Path, mut each: impl FnMut(Record)) -> Result<usize, HistoryError> {
    let mut skipped = 0;
    scan_lines(path, 0, |_, line| {
        match parse_line(line) {
            Ok(Some(record)) => each(record),
            Ok(None) => {}
            Err(()) => skipped += 1,
        }
        ControlFlow::Continue(())
    })?;
    Ok(skipped)
}

/// The first `n` readable records from byte `start` (a line boundary) on.
pub fn read_after(path: &Path, start: u64, n: usize) -> Result<Page, HistoryError> {
    let mut page = Page { start, ..Page::default() };
    let (end, len) = scan_lines(path, start, |offset, line| {
        if page.records.len() == n {
            return ControlFlow::Break(());
        }
        match parse_line(line) {
            Ok(Some(record)) => page.records.push((offset, record)),
            Ok(None) => {}
            Err(()) => page.unreadable.push(offset),
        }
        ControlFlow::Continue(())
    })?;
    page.end = end;
    page.len = len;
    Ok(page)
}
/// Characters of a text refused for its length that its log record keeps.
const UNSENT_QUOTED_CHARS: usize = 80;

/// What a search of the whole log found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Offsets of the matching records' lines, oldest first (at most `MAX_SEARCH_MATCHES`).
    pub offsets: Vec<u64>,
    /// More matched than were kept (the oldest ones were let go).
    pub truncated: bool,
}

/// Every chat message in the log whose text contains `needle`, ignoring case (see
/// `search_each`). The newest `MAX_SEARCH_MATCHES` are kept.
pub fn search(path: &Path, needle: &str) -> Result<Found, HistoryError> {
    let mut offsets = VecDeque::new();
    let mut truncated = false;
    search_each(path, needle, |offset, _| {
        if offsets.len() == MAX_SEARCH_MATCHES {
            offsets.pop_front();
            truncated = true;
        }
        offsets.push_back(offset);
    })?;
    Ok(Found { offsets: offsets.into(), truncated })
}

/// Calls `each(offset, record)` for every chat message in the log whose text contains
/// `needle`, ignoring case (Unicode case folding), oldest first. Reads the file once, front to
/// back, in bounded memory: a line is parsed only when its raw bytes could hold the match.
pub fn search_each(
    path: &Path,
    needle: &str,
    mut each: impl FnMut(u64, Record),
) -> Result<(), HistoryError> {
    if needle.is_empty() {
        return Ok(());
    }
    let prefilter = Prefilter::new(needle);
    if let Some(candidates) = prefilter.ascii_candidates() {
        return search_blocks(path, &candidates, |offset, line, exact| {
            // A candidate line either holds the needle in ASCII (ignoring ASCII case) or a
            // character that folds into ASCII: then only the full fold can say.
            let may = exact || prefilter.may_match(line, &mut Vec::new());
            if may
                && let Ok(Some(record)) = parse_line(line)
                && let Entry::Message { text, .. } = &record.entry
                && crate::text::find_ignoring_case(text, needle).is_some()
            {
                each(offset, record);
            }
        });
    }
    let mut folded = Vec::new();
    scan_lines(path, 0, |offset, line| {
        if prefilter.may_match(line, &mut folded)
            && let Ok(Some(record)) = parse_line(line)
            && let Entry::Message { text, .. } = &record.entry
            && crate::text::find_ignoring_case(text, needle).is_some()
        {
            each(offset, record);
        }
        ControlFlow::Continue(())
    })?;
    Ok(())
}

/// Calls `each(offset, line, exact)` for every line of the log that holds the needle of
/// `candidates` (`exact`) or a character that folds into ASCII, oldest first, once per line. The file is read a block at a time and the searcher
/// runs over the whole block (SIMD, as ripgrep's does), so a line without a pattern costs no
/// work of its own. Memory: a block and the part of a line that straddles two.
fn search_blocks(
    path: &Path,
    candidates: &Candidates,
    mut each: impl FnMut(u64, &[u8], bool),
) -> Result<(), HistoryError> {
    let io_err = |source| HistoryError::Io { path: path.to_owned(), source };
    let Some((mut file, _)) = open_for_reading(path)? else { return Ok(()) };
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    // One thread reads the next blocks while this one searches the last: the copy out of the
    // page cache and the search overlap. Three blocks in all, handed back and forth.
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(2);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..3 {
        let _ = free_tx.send(vec![0; SEARCH_BLOCK_BYTES]);
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Ok(mut block) = free_rx.recv() {
                let filled = read_full(&mut file, &mut block);
                let end = matches!(filled, Ok(0) | Err(_));
                if full_tx.send(filled.map(|n| (block, n))).is_err() || end {
                    return;
                }
            }
        });
        // The line that straddles the last block and the next, and where it starts.
        let mut carry: Vec<u8> = Vec::new();
        let mut carry_at: u64 = 0;
        let mut offset: u64 = 0;
        let line_of = |at: u64, line: &[u8], each: &mut dyn FnMut(u64, &[u8], bool)| {
            let exact = candidates.needle.is_match(line);
            if exact || candidates.folds.is_match(line) {
                each(at, line, exact);
            }
        };
        loop {
            let (block, n) = match full_rx.recv() {
                Ok(Ok(received)) => received,
                Ok(Err(error)) => return Err(io_err(error)),
                Err(_) => (Vec::new(), 0),
            };
            if n == 0 {
                // The end: a last line without a newline (a torn last write) is a line too.
                if !carry.is_empty() {
                    line_of(carry_at, &carry, &mut each);
                }
                return Ok(());
            }
            let data = &block[..n];
            let Some(first) = memchr::memchr(b'\n', data) else {
                carry.extend_from_slice(data); // a line longer than a block
                offset += n as u64;
                let _ = free_tx.send(block);
                continue;
            };
            carry.extend_from_slice(&data[..first]);
            line_of(carry_at, &carry, &mut each);
            carry.clear();
            let last = memchr::memrchr(b'\n', data).unwrap_or(first);
            search_lines(candidates, &data[first + 1..=last], offset + first as u64 + 1, &mut each);
            carry.extend_from_slice(&data[last + 1..]);
            carry_at = offset + last as u64 + 1;
            offset += n as u64;
            let _ = free_tx.send(block);
        }
    })
}

/// Fills `block` from `file` as far as it goes; the bytes read (fewer only at the end).
fn read_full(file: &mut File, block: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match file.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `search_blocks` over whole lines `block` (each ending with a newline), which start at
/// `offset` in the file: each searcher runs over a stretch once.
fn search_lines(
    candidates: &Candidates,
    block: &[u8],
    offset: u64,
    each: &mut dyn FnMut(u64, &[u8], bool),
) {
    let complete = block.len();
    let next_needle = |from: usize| candidates.needle.find_at(block, from).map(|m| m.start());
    let next_fold = |from: usize| {
        let input = aho_corasick::Input::new(block).span(from..complete);
        candidates.folds.find(input).map(|m| m.start())
    };
    let (mut exact, mut fold) = (next_needle(0), next_fold(0));
    while let Some(at) = exact.into_iter().chain(fold).min() {
        let start = memchr::memrchr(b'\n', &block[..at]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &block[at..]).map_or(complete, |i| at + i);
        // A line with a character that folds into ASCII and not the needle as it stands may
        // still match: `each` settles that with the full fold.
        let holds_needle = exact.is_some_and(|e| e < end);
        each(offset + start as u64, &block[start..end], holds_needle);
        let from = (end + 1).min(complete);
        if exact.is_some_and(|e| e < from) {
            exact = next_needle(from);
        }
        if fold.is_some_and(|f| f < from) {
            fold = next_fold(from);
        }
    }
}

/// The searchers of `search_blocks` for a needle whose folding is ASCII.
struct Candidates {
    /// The needle as it stands in a log line (JSON-escaped, folded), ignoring ASCII case.
    needle: regex::bytes::Regex,
    /// The characters that fold into ASCII, as UTF-8.
    folds: aho_corasick::AhoCorasick,
}

/// A cheap test on a raw log line that never rejects a line whose text matches: the line,
/// case-folded as a whole, must contain the needle as it would stand in the line (JSON-escaped)
/// case-folded. Sound because folding and JSON escaping leave each other alone (no character
/// folds to a quote, a backslash or a control character; folding is idempotent), so a match
/// in the text is a match in the folded line. Folding a whole line is the slow way; most lines
/// are settled before it:
/// - an ASCII line folds by ASCII lowercasing, and cannot hold a needle whose folding is not
///   ASCII;
/// - a needle whose folding is ASCII matches where the ASCII-lowercased line holds it, and
///   nowhere else unless the line has one of the few characters that fold into ASCII ("ß").
struct Prefilter {
    finder: memchr::memmem::Finder<'static>,
    ascii: bool,
}

impl Prefilter {
    fn new(needle: &str) -> Self {
        let quoted = serde_json::to_string(needle).unwrap_or_default();
        let escaped = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default();
        let folded = crate::text::fold_str(escaped);
        let ascii = folded.is_ascii();
        Self { finder: memchr::memmem::Finder::new(folded.as_bytes()).into_owned(), ascii }
    }

    /// For a needle whose folding is ASCII: searchers for it as it stands in the line
    /// (ignoring ASCII case) and for the characters that fold into ASCII (the lines only the
    /// full fold can settle). `None` for other needles.
    fn ascii_candidates(&self) -> Option<Candidates> {
        if !self.ascii {
            return None;
        }
        // ripgrep's engine: it looks for the rarest bytes of the needle's case variants.
        let literal = std::str::from_utf8(self.finder.needle()).ok()?;
        let needle = regex::bytes::RegexBuilder::new(&regex::escape(literal))
            .case_insensitive(true)
            .unicode(false)
            .build()
            .ok()?;
        let mut utf8 = [0u8; 4];
        let folds: Vec<Vec<u8>> = crate::text::into_ascii()
            .iter()
            .map(|c| c.encode_utf8(&mut utf8).as_bytes().to_vec())
            .collect();
        // Leftmost semantics let the searcher use its SIMD prefilter (Teddy) on the patterns'
        // first bytes together, not on each lead byte alone (common in emoji and symbols).
        let folds = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(folds)
            .ok()?;
        Some(Candidates { needle, folds })
    }

    fn may_match(&self, line: &[u8], folded: &mut Vec<u8>) -> bool {
        folded.clear();
        if self.ascii {
            folded.extend(line.iter().map(u8::to_ascii_lowercase));
            if self.finder.find(folded).is_some() {
                return true;
            }
            if !crate::text::has_folds_to_ascii(line) {
                return false;
            }
        } else if line.is_ascii() {
            return false;
        }
        let Ok(line) = std::str::from_utf8(line) else { return true };
        folded.clear();
        crate::text::fold_into(line, folded);
        self.finder.find(folded).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("p2pchat-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn message(i: usize) -> NetEvent {
        NetEvent::Message {
            from: "bob".into(),
            text: format!("message {i}"),
            timestamp: "2026-01-01T00:00:00Z".into(),
            id: Some(MsgId(format!("{i:016x}"))),
            receipt: None,
        }
    }

    fn texts(page: &Page) -> Vec<String> {
        page.records
            .iter()
            .map(|(_, r)| match &r.entry {
                Entry::Message { text, .. } => text.clone(),
                Entry::Presence { .. } | Entry::Delivered { .. } => String::new(),
            })
            .collect()
    }

    fn log_of(name: &str, texts: impl IntoIterator<Item = String>) -> (PathBuf, History) {
        let dir = temp_dir(name);
        let mut h = History::open(&dir, "room-x").unwrap();
        for (i, text) in texts.into_iter().enumerate() {
            let event = NetEvent::Message {
                from: "bob".into(),
                text,
                timestamp: "2026-01-01T00:00:00Z".into(),
                id: Some(MsgId(format!("{i:016x}"))),
                receipt: None,
            };
            h.append(&Record::from_event(&event, Local::now(), "me").unwrap()).unwrap();
        }
        (dir, h)
    }

    #[test]
    fn unfinished_finds_our_unconfirmed_messages_and_the_newest_ids_shown() {
        let (dir, mut h) =
            log_of("unfinished", (0..DEDUP_CAPACITY + 10).map(|i| format!("in {i}")));
        let ours = |id: &str, text: &str, queued: bool| {
            let id = MsgId(id.into());
            let (text, timestamp) = (text.to_owned(), "2026-01-01T00:00:00Z".to_owned());
            let event = if queued {
                NetEvent::Queued { id, text, timestamp }
            } else {
                NetEvent::Sent { id, text, timestamp }
            };
            Record::from_event(&event, Local::now(), "me").unwrap()
        };
        h.append(&ours("a1", "confirmed later", false)).unwrap();
        h.append(&ours("a2", "never confirmed", true)).unwrap();
        let presence = NetEvent::PeerOffline {
            peer: crate::proto::PeerId(1),
            name: "bob".into(),
            reason: crate::proto::OfflineReason::Left,
        };
        h.append(&Record::from_event(&presence, Local::now(), "me").unwrap()).unwrap();
        let delivered = NetEvent::Delivered { id: MsgId("a1".into()) };
        h.append(&Record::from_event(&delivered, Local::now(), "me").unwrap()).unwrap();
        h.append(&ours("a3", "also pending", false)).unwrap();
        // A record written with other spacing is still read.
        let spaced = r#"{"v": 1, "at": "2026-01-01T00:00:00+00:00", "kind": "message", "dir": "out", "from": "me", "text": "spaced", "id": "a4", "state": "sent"}"#;
        let mut file = OpenOptions::new().append(true).open(h.path()).unwrap();
        writeln!(file, "{spaced}").unwrap();
        // A sender whose name needs escapes in JSON, and a text that looks like keys.
        let odd = NetEvent::Message {
            from: "bo\"b\\".into(),
            text: r#"x","dir":"in","from":"eve","id":"forged"#.into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            id: Some(MsgId("odd".into())),
            receipt: None,
        };
        h.append(&Record::from_event(&odd, Local::now(), "me").unwrap()).unwrap();
        let found = unfinished(h.path(), 100_000).unwrap();
        let pending: Vec<&str> = found.pending.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(pending, ["never confirmed", "also pending", "spaced"]);
        // The newest ids shown, as many as the session remembers, oldest first.
        assert_eq!(found.seen.len(), DEDUP_CAPACITY);
        assert_eq!(found.seen[0], ("bob".to_owned(), format!("{:016x}", 11)));
        let newest = &found.seen[DEDUP_CAPACITY - 2..];
        assert_eq!(newest[0].1, format!("{:016x}", DEDUP_CAPACITY + 9));
        assert_eq!(newest[1], ("bo\"b\\".to_owned(), "odd".to_owned()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_search_over_many_blocks_finds_every_match_once_across_their_seams() {
        // About 6 MB: more than one block, with matches on every side of the seams.
        let text = |i: usize| match i % 97 {
            0 => format!("{i} a Zebra-Striped umbrella {}", "x".repeat(i % 300)),
            1 => format!("{i} strasse with STRAßE in it {}", "y".repeat(i % 300)),
            _ => format!("{i} plain words, nothing to find here {}", "z".repeat(i % 300)),
        };
        let (dir, h) = log_of("blocks", (0..24_000).map(text));
        assert!(fs::metadata(h.path()).unwrap().len() > SEARCH_BLOCK_BYTES as u64 + 1);
        let found = |needle: &str| {
            let mut texts = Vec::new();
            search_each(h.path(), needle, |_, record| {
                if let Entry::Message { text, .. } = record.entry {
                    texts.push(text);
                }
            })
            .unwrap();
            texts
        };
        let zebras = found("zebra-striped UMBRELLA");
        assert_eq!(zebras.len(), (0..24_000).filter(|i| i % 97 == 0).count());
        assert!(zebras.iter().all(|t| t.contains("Zebra-Striped umbrella")));
        // "strasse" is in those lines as ASCII and as "STRAßE", which folds to it.
        assert_eq!(found("STRASSE").len(), (0..24_000).filter(|i| i % 97 == 1).count());
        assert_eq!(found("straße in").len(), (0..24_000).filter(|i| i % 97 == 1).count());
        assert!(found("nothing at all").is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pages_walk_the_whole_log_both_ways_without_gaps_or_repeats() {
        let (dir, h) = log_of("pages", (0..2500).map(|i| format!("message {i}")));
        let path = h.path();
        // Backwards from the end, 333 at a time.
        let mut seen = Vec::new();
        let mut end = None;
        loop {
            let page = read_before(path, end, 333).unwrap();
            let mut texts = texts(&page);
            texts.append(&mut seen);
            seen = texts;
            if page.start == 0 {
                break;
            }
            end = Some(page.start);
        }
        let want: Vec<String> = (0..2500).map(|i| format!("message {i}")).collect();
        assert_eq!(seen, want);
        // Forwards from the start, 333 at a time.
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let page = read_after(path, start, 333).unwrap();
            seen.extend(texts(&page));
            assert_eq!(page.records.first().map_or(page.start, |r| r.0), start);
            if page.end == page.len {
                break;
            }
            start = page.end;
        }
        assert_eq!(seen, want);
        // Around a record in the middle.
        let middle = read_after(path, 0, 1300).unwrap().records[1299].0;
        let before = read_before(path, Some(middle), 2).unwrap();
        let after = read_after(path, middle, 2).unwrap();
        assert_eq!(texts(&before), vec!["message 1297", "message 1298"]);
        assert_eq!(texts(&after), vec!["message 1299", "message 1300"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn search_finds_every_match_ignoring_case_and_nothing_else() {
        let texts = (0..5000).map(|i| match i % 1000 {
            7 => format!("The Needle number {i}"),
            8 => format!("a \"quoted\" needle\nover lines {i}"),
            9 => format!("ÜBER-needle {i}"),
            _ => format!("hay {i}"),
        });
        let (dir, h) = log_of("search", texts);
        let found = search(h.path(), "NEEDLE").unwrap();
        assert_eq!(found.offsets.len(), 15);
        assert!(!found.truncated);
        let found = search(h.path(), "über-NEEDLE").unwrap();
        let hits: Vec<String> = found.offsets.iter().map(|&o| texts_at(h.path(), o)).collect();
        assert_eq!(
            hits,
            (0..5).map(|k| format!("ÜBER-needle {}", k * 1000 + 9)).collect::<Vec<_>>()
        );
        assert_eq!(search(h.path(), "\"quoted\" needle\nover").unwrap().offsets.len(), 5);
        // Field names and other records' contents are not message text.
        assert!(search(h.path(), "bob").unwrap().offsets.is_empty());
        assert!(search(h.path(), "kind").unwrap().offsets.is_empty());
        assert!(search(h.path(), "").unwrap().offsets.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn search_folds_case_in_every_script_both_ways() {
        let texts = ["η οδος", "Η ΟΔΟΣ", "Straße", "STRASSE", "ﬀ", "ᏣᎳᎩ", "𐐷", "hay"];
        let (dir, h) = log_of("fold", texts.map(String::from));
        let hits = |needle: &str| -> Vec<String> {
            let found = search(h.path(), needle).unwrap();
            found.offsets.iter().map(|&o| texts_at(h.path(), o)).collect()
        };
        assert_eq!(hits("ΟΔΟΣ"), ["η οδος", "Η ΟΔΟΣ"]);
        assert_eq!(hits("οδος"), ["η οδος", "Η ΟΔΟΣ"]);
        assert_eq!(hits("strasse"), ["Straße", "STRASSE"]);
        assert_eq!(hits("STRAẞE"), ["Straße", "STRASSE"]);
        // ASCII needles that match only non-ASCII text: a prefilter on raw bytes misses these.
        assert_eq!(hits("FF"), ["ﬀ"]);
        assert_eq!(hits("ꮳꮃꭹ"), ["ᏣᎳᎩ"]);
        assert_eq!(hits("𐐏"), ["𐐷"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Texts made of pieces, each of which has several spellings that fold alike.
    const SPELLINGS: &[&[&str]] = &[
        &["s", "S", "ſ"],
        &["k", "K", "\u{212a}"],
        &["ss", "SS", "ß", "ẞ", "sS"],
        &["ff", "FF", "ﬀ"],
        &["st", "ST", "ﬆ", "ſt"],
        &["σ", "Σ", "ς"],
        &["i\u{307}", "İ", "I\u{307}"],
        &["å", "Å", "\u{212b}"],
        &["αι", "ΑΙ", "ᾳ", "ᾼ"],
        &["ꭰ", "Ꭰ"],
        &["𐐷", "𐐏"],
        &["a", "A"],
        &["é", "É"],
        &["ǆ", "ǅ", "Ǆ"],
        &["\"", "\""],
        &["\\", "\\"],
        &["\n", "\n"],
        &["\u{1b}", "\u{1b}"],
        &["/", "/"],
        &[" ", " "],
        &["😀", "😀"],
    ];

    proptest::proptest! {
        /// The prefilter never skips a line whose text matches: a needle spelt differently
        /// (any piece of the text, each part in any of its spellings) still finds it.
        #[test]
        fn the_prefilter_never_skips_a_match(
            pieces in proptest::collection::vec((0..SPELLINGS.len(), 0usize..5), 1..12),
            from in 0usize..12,
            len in 1usize..12,
        ) {
            let spell = |(piece, choice): (usize, usize), shift: usize| {
                let forms = SPELLINGS[piece];
                forms[(choice + shift) % forms.len()]
            };
            let text: String = pieces.iter().map(|&p| spell(p, 0)).collect();
            let from = from % pieces.len();
            let to = (from + len).min(pieces.len());
            let needle: String = pieces[from..to].iter().map(|&p| spell(p, 1)).collect();
            proptest::prop_assert!(crate::text::find_ignoring_case(&text, &needle).is_some());
            let event = NetEvent::Message {
                from: "bob".into(),
                text,
                timestamp: "2026-01-01T00:00:00Z".into(),
                id: Some(MsgId("1".into())),
                receipt: None,
            };
            let record = Record::from_event(&event, Local::now(), "me").unwrap();
            let line = serde_json::to_vec(&record).unwrap();
            proptest::prop_assert!(Prefilter::new(&needle).may_match(&line, &mut Vec::new()));
        }
    }

    #[test]
    fn the_prefilter_still_skips_lines_that_cannot_match() {
        let line = |text: &str| {
            let event = NetEvent::Message {
                from: "bob".into(),
                text: text.into(),
                timestamp: "2026-01-01T00:00:00Z".into(),
                id: None,
                receipt: None,
            };
            serde_json::to_vec(&Record::from_event(&event, Local::now(), "me").unwrap()).unwrap()
        };
        let skips = |needle: &str, text: &str| {
            !Prefilter::new(needle).may_match(&line(text), &mut Vec::new())
        };
        assert!(skips("zebra", "hay and more hay"));
        assert!(skips("ΟΔΟΣ", "plain ascii words"), "a non-ASCII folding cannot be in ASCII");
        assert!(skips("zebra", "Grüße aus Köln"));
        assert!(!skips("GRÜSSE", "Grüße aus Köln"));
        assert!(!skips("straSSe", "Straße"));
    }

    fn texts_at(path: &Path, offset: u64) -> String {
        texts(&read_after(path, offset, 1).unwrap()).remove(0)
    }

    #[test]
    fn appends_and_reads_back_the_tail_across_chunks() {
        let dir = temp_dir("tail");
        let mut h = History::open(&dir, "room-a/b c").unwrap();
        assert!(h.path().ends_with("conversations/room-a%2Fb%20c.jsonl"));
        for i in 0..3000 {
            let record = Record::from_event(&message(i), Local::now(), "me").unwrap();
            h.append(&record).unwrap();
        }
        let page = tail(h.path(), 10).unwrap();
        assert!(page.unreadable.is_empty());
        assert_eq!(texts(&page), (2990..3000).map(|i| format!("message {i}")).collect::<Vec<_>>());
        assert_eq!(page.end, page.len);
        assert_eq!(page.start, page.records[0].0);
        let all = tail(h.path(), 10_000).unwrap();
        assert_eq!(all.records.len(), 3000);
        assert_eq!(all.start, 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn torn_and_corrupt_lines_are_skipped_and_counted() {
        let dir = temp_dir("torn");
        let mut h = History::open(&dir, "peer-1.2.3.4:5").unwrap();
        h.append(&Record::from_event(&message(1), Local::now(), "me").unwrap()).unwrap();
        let mut raw = OpenOptions::new().append(true).open(h.path()).unwrap();
        raw.write_all(b"not json at all\n").unwrap();
        h.append(&Record::from_event(&message(2), Local::now(), "me").unwrap()).unwrap();
        raw.write_all(b"{\"v\":1,\"at\":\"2026-01-01T00:00:00Z\",\"kind\":\"mess").unwrap();
        let page = tail(h.path(), 100).unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.unreadable.len(), 2);
        // Reopening ends the torn line, so the next record is a line of its own and readable.
        drop(h);
        let mut h = History::open(&dir, "peer-1.2.3.4:5").unwrap();
        h.append(&Record::from_event(&message(3), Local::now(), "me").unwrap()).unwrap();
        let page = read_after(h.path(), 0, 100).unwrap();
        assert_eq!(texts(&page), vec!["message 1", "message 2", "message 3"]);
        assert_eq!((page.unreadable.len(), page.end), (2, page.len));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_record() {
        let dir = temp_dir("torn-open");
        let mut h = History::open(&dir, "room-x").unwrap();
        h.append(&Record::from_event(&message(1), Local::now(), "me").unwrap()).unwrap();
        // A write that stopped mid-record while the log was open (a full disk, a short write).
        let mut raw = OpenOptions::new().append(true).open(h.path()).unwrap();
        raw.write_all(b"{\"v\":1,\"at\":\"2026-01-01T00:00:00Z\",\"kind\":\"mess").unwrap();
        h.append(&Record::from_event(&message(2), Local::now(), "me").unwrap()).unwrap();
        h.append(&Record::from_event(&message(3), Local::now(), "me").unwrap()).unwrap();
        let page = read_after(h.path(), 0, 100).unwrap();
        assert_eq!(texts(&page), vec!["message 1", "message 2", "message 3"]);
        assert_eq!(page.unreadable.len(), 1, "only the torn line is lost");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_cut_short_by_someone_else_does_not_swallow_the_next_record() {
        let dir = temp_dir("cut-short");
        let mut h = History::open(&dir, "room-x").unwrap();
        h.append(&Record::from_event(&message(1), Local::now(), "me").unwrap()).unwrap();
        h.append(&Record::from_event(&message(2), Local::now(), "me").unwrap()).unwrap();
        // Cut mid-way through the second record while the log is open: shorter than our last
        // write left it, and ending in a torn line.
        let len = fs::metadata(h.path()).unwrap().len();
        OpenOptions::new().write(true).open(h.path()).unwrap().set_len(len - 10).unwrap();
        h.append(&Record::from_event(&message(3), Local::now(), "me").unwrap()).unwrap();
        let page = read_after(h.path(), 0, 100).unwrap();
        assert_eq!(texts(&page), vec!["message 1", "message 3"]);
        assert_eq!(page.unreadable.len(), 1, "only the cut line is lost");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_is_an_error_and_the_next_append_opens_the_file_afresh() {
        let dir = temp_dir("full");
        let path = conversation_path(&dir, "room-x");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Every write to /dev/full fails with ENOSPC: a full disk.
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let mut h = History::open(&dir, "room-x").unwrap();
        let record = |i| Record::from_event(&message(i), Local::now(), "me").unwrap();
        let error = h.append(&record(1)).unwrap_err();
        let HistoryError::Io { source, .. } = &error;
        assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {error}");
        assert!(h.append(&record(2)).is_err());
        // Space is back (here: a real file where the full one was).
        fs::remove_file(&path).unwrap();
        h.append(&record(3)).unwrap();
        assert_eq!(texts(&read_after(&path, 0, 10).unwrap()), vec!["message 3"]);
        // A removed log (or data dir) is not written into the void: the write is an error,
        // and the next one starts a new file where the user will look.
        fs::remove_dir_all(&dir).unwrap();
        assert!(h.append(&record(4)).is_err(), "the record went to a removed file");
        h.append(&record(5)).unwrap();
        assert_eq!(texts(&read_after(&path, 0, 10).unwrap()), vec!["message 5"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_log_is_empty_and_records_round_trip() {
        let page = tail(Path::new("/nonexistent/p2pchat/x.jsonl"), 5).unwrap();
        assert_eq!(page, Page::default());
        let found = search(Path::new("/nonexistent/p2pchat/x.jsonl"), "x").unwrap();
        assert_eq!(found, Found::default());
        let rec = Record::from_event(&message(7), Local::now(), "me").unwrap();
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.contains("\"v\":1") && line.contains("\"kind\":\"message\""));
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), rec);
        // An older or newer writer's extra fields do not stop a record from being read.
        let extra = line.replacen('{', "{\"future_field\":[1,2],", 1);
        assert_eq!(serde_json::from_str::<Record>(&extra).unwrap(), rec);
    }
}
