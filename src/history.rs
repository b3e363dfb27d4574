//! The conversation log: one append-only JSON-lines file per conversation under the data dir.
//! Every record carries a format version; each append is one `write` of a whole line, flushed,
//! so a crash leaves at most a torn last line, which reading skips. Reading starts from the end
//! of the file, so opening a long conversation costs what the last screens cost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Local};
use serde::{Deserialize, Serialize};

use crate::proto::{MsgId, NetEvent, Pending};

/// The record format written by this version.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes read per step when reading backwards.
const TAIL_CHUNK_BYTES: u64 = 64 * 1024;

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

/// What a conversation's records say about the next run: our messages no peer confirmed
/// (to send again, oldest first) and the (sender, id) of every message shown (never twice).
pub fn unfinished(records: &[Record]) -> (Vec<Pending>, Vec<(String, String)>) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut seen = Vec::new();
    for record in records {
        match &record.entry {
            Entry::Message {
                dir: Direction::Out,
                text,
                sent_at,
                id: Some(id),
                state: Some(Delivery::Queued | Delivery::Sent),
                ..
            } if !pending.iter().any(|p| p.id.0 == *id) => {
                pending.push(Pending {
                    id: MsgId(id.clone()),
                    text: text.clone(),
                    timestamp: sent_at.clone().unwrap_or_default(),
                });
            }
            Entry::Message { dir: Direction::In, from, id: Some(id), .. } => {
                seen.push((from.clone(), id.clone()));
            }
            Entry::Delivered { id } => pending.retain(|p| p.id.0 != *id),
            _ => {}
        }
    }
    (pending, seen)
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
    file: File,
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

impl History {
    /// Opens (creating if needed) the log for `conversation` under `data_dir`.
    pub fn open(data_dir: &Path, conversation: &str) -> Result<Self, HistoryError> {
        let path = conversation_path(data_dir, conversation);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|source| HistoryError::Io { path: dir.to_owned(), source })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| HistoryError::Io { path: path.clone(), source })?;
        Ok(Self { path, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line, in one write, and flushes it.
    pub fn append(&mut self, record: &Record) -> Result<(), HistoryError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| HistoryError::Io { path: self.path.clone(), source: e.into() })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|source| HistoryError::Io { path: self.path.clone(), source })
    }
}

/// The last `n` readable records of the log at `path` (oldest first) and how many lines were
/// skipped as unreadable (torn or corrupt). A missing file is an empty history.
pub fn tail(path: &Path, n: usize) -> Result<(Vec<Record>, usize), HistoryError> {
    let io_err = |source| HistoryError::Io { path: path.to_owned(), source };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io_err(e)),
    };
    let len = file.seek(SeekFrom::End(0)).map_err(io_err)?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    // Read backwards until the buffer holds n complete lines (n + 1 newlines) or the file start.
    while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() <= n {
        let step = TAIL_CHUNK_BYTES.min(start);
        start -= step;
        let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(0)];
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        file.read_exact(&mut chunk).map_err(io_err)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // partial first line: it began before the part we read
    }
    let mut records = Vec::new();
    let mut skipped = 0;
    for line in lines.iter().filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => records.push(record),
            Err(_) => skipped += 1,
        }
    }
    let excess = records.len().saturating_sub(n);
    records.drain(..excess);
    Ok((records, skipped))
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

    #[test]
    fn appends_and_reads_back_the_tail_across_chunks() {
        let dir = temp_dir("tail");
        let mut h = History::open(&dir, "room-a/b c").unwrap();
        assert!(h.path().ends_with("conversations/room-a%2Fb%20c.jsonl"));
        for i in 0..3000 {
            let record = Record::from_event(&message(i), Local::now(), "me").unwrap();
            h.append(&record).unwrap();
        }
        let (records, skipped) = tail(h.path(), 10).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(records.len(), 10);
        let texts: Vec<_> = records
            .iter()
            .map(|r| match &r.entry {
                Entry::Message { text, .. } => text.clone(),
                Entry::Presence { .. } | Entry::Delivered { .. } => String::new(),
            })
            .collect();
        assert_eq!(texts.first().unwrap(), "message 2990");
        assert_eq!(texts.last().unwrap(), "message 2999");
        let (all, _) = tail(h.path(), 10_000).unwrap();
        assert_eq!(all.len(), 3000);
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
        let (records, skipped) = tail(h.path(), 100).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(skipped, 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_log_is_empty_and_records_round_trip() {
        let (records, skipped) = tail(Path::new("/nonexistent/p2pchat/x.jsonl"), 5).unwrap();
        assert!(records.is_empty() && skipped == 0);
        let rec = Record::from_event(&message(7), Local::now(), "me").unwrap();
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.contains("\"v\":1") && line.contains("\"kind\":\"message\""));
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), rec);
        // An older or newer writer's extra fields do not stop a record from being read.
        let extra = line.replacen('{', "{\"future_field\":[1,2],", 1);
        assert_eq!(serde_json::from_str::<Record>(&extra).unwrap(), rec);
    }
}
