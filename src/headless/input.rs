//! Headless mode's stdin, line by line, whatever arrives: a line that is not clean text
//! (not UTF-8, a NUL byte, longer than a message may be) is reported and skipped, and reading
//! goes on with the next one. CRLF endings and a last line without a newline are lines like any
//! other. Memory is bounded by the longest message, however long a line is. No output here:
//! the caller says what happened.

use std::collections::VecDeque;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::consts::MAX_MESSAGE_BYTES;

/// What was wrong with an input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    /// Not UTF-8: the first bad byte and the column (in characters, from 1) it sits at.
    NotUtf8 {
        /// The byte.
        byte: u8,
        /// Where.
        column: usize,
    },
    /// A NUL byte, at this column (in characters, from 1): not text.
    Nul {
        /// Where.
        column: usize,
    },
    /// Longer than a message may be; how it starts (for a notice that does not quote it all).
    TooLong {
        /// Its first characters, with "…".
        start: String,
    },
}

/// Characters of an over-long line kept to name it.
const START_CHARS: usize = 40;

/// How `bytes` start, for naming a line without quoting it.
fn start_of(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(START_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    format!("{}…", text.chars().take(START_CHARS).collect::<String>())
}

/// One step of reading.
#[derive(Debug)]
pub enum Input {
    /// A line of text, without its line ending.
    Line(String),
    /// Input line `line` (counted from 1) was skipped.
    Skipped {
        /// Its number.
        line: u64,
        /// Why.
        flaw: Flaw,
    },
    /// No more input; with the reason when reading failed rather than ended.
    End(Option<std::io::Error>),
}

/// Splits bytes into lines, checking each (no IO: fed chunks, drained of lines).
#[derive(Debug, Default)]
pub struct Splitter {
    line: Vec<u8>,
    /// The line being read outgrew the limit: the rest of it is dropped, its start kept.
    overflow: Option<String>,
    number: u64,
    ready: VecDeque<Input>,
}

impl Splitter {
    /// Takes in the next bytes of input.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (part, newline) = match memchr::memchr(b'\n', bytes) {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len() + usize::from(newline)..];
            if self.overflow.is_none() {
                self.line.extend_from_slice(part);
                // One more byte than a message: room for the '\r' of a CRLF ending.
                if self.line.len() > MAX_MESSAGE_BYTES + 1 {
                    self.overflow = Some(start_of(&self.line));
                    self.line = Vec::new();
                }
            }
            if newline {
                self.end_line();
            }
        }
    }

    /// End of input: a last line without a newline is still a line.
    pub fn finish(&mut self) {
        if !self.line.is_empty() || self.overflow.is_some() {
            self.end_line();
        }
    }

    /// The next line (or skipped line) read so far.
    pub fn pop(&mut self) -> Option<Input> {
        self.ready.pop_front()
    }

    fn end_line(&mut self) {
        self.number += 1;
        let mut bytes = std::mem::take(&mut self.line);
        let overflow = self.overflow.take();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let checked = match overflow {
            Some(start) => Err(Flaw::TooLong { start }),
            None if bytes.len() > MAX_MESSAGE_BYTES => {
                Err(Flaw::TooLong { start: start_of(&bytes) })
            }
            None => check(bytes),
        };
        self.ready.push_back(match checked {
            Ok(text) => Input::Line(text),
            Err(flaw) => Input::Skipped { line: self.number, flaw },
        });
    }
}

/// The line as text, if it is clean text.
fn check(bytes: Vec<u8>) -> Result<String, Flaw> {
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let column = String::from_utf8_lossy(&bytes[..good]).chars().count() + 1;
        Flaw::NotUtf8 { byte: bytes[good], column }
    })?;
    match text.find('\0') {
        Some(at) => Err(Flaw::Nul { column: text[..at].chars().count() + 1 }),
        None => Ok(text),
    }
}

/// Stdin for headless mode: a pipe (as scripts and bots give it) is read on the runtime's own
/// poller (`PipeStdin`); anything else (a terminal, a file, a socket) by a thread of its own
/// (`ThreadStdin`).
pub fn stdin() -> Box<dyn AsyncBufRead + Unpin + Send> {
    match PipeStdin::open() {
        Some(pipe) => Box::new(pipe),
        None => Box::new(ThreadStdin::spawn()),
    }
}

/// Stdin when it is a pipe, read where the network is read: the runtime's poller says when a
/// line is there and the task reading it wakes on the worker already running the chat, with no
/// other thread woken and no hand-over between threads (measured: a round trip through two
/// headless peers 153-166 us with `ThreadStdin`, 112-119 us with this). Reading a pipe this way
/// needs it non-blocking, a flag of the pipe's end that every process holding that end shares
/// (a shell reading the same pipe after us, say); the flags it had are given back when this is
/// dropped, as headless mode ends.
pub struct PipeStdin {
    reader: tokio::io::BufReader<tokio::net::unix::pipe::Receiver>,
    /// The flags stdin had, when we changed them.
    restore: Option<rustix::fs::OFlags>,
}

impl PipeStdin {
    /// Stdin as a pipe read on the poller; `None` when it is not a pipe (or cannot be used as
    /// one).
    fn open() -> Option<Self> {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin();
        let flags = rustix::fs::fcntl_getfl(stdin.as_fd()).ok()?;
        let file = std::fs::File::from(stdin.as_fd().try_clone_to_owned().ok()?);
        // Refuses anything that is not a pipe, before it changes a flag.
        let pipe = tokio::net::unix::pipe::Receiver::from_file(file).ok()?;
        let restore = (!flags.contains(rustix::fs::OFlags::NONBLOCK)).then_some(flags);
        let reader = tokio::io::BufReader::with_capacity(STDIN_CHUNK_BYTES, pipe);
        Some(Self { reader, restore })
    }
}

impl Drop for PipeStdin {
    fn drop(&mut self) {
        if let Some(flags) = self.restore {
            use std::os::fd::AsFd;
            let _ = rustix::fs::fcntl_setfl(std::io::stdin().as_fd(), flags);
        }
    }
}

impl tokio::io::AsyncRead for PipeStdin {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncBufRead for PipeStdin {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        std::pin::Pin::new(&mut self.get_mut().reader).poll_fill_buf(cx)
    }

    fn consume(self: std::pin::Pin<&mut Self>, amt: usize) {
        std::pin::Pin::new(&mut self.get_mut().reader).consume(amt);
    }
}

/// Stdin, read by a thread of its own that blocks in `read` and hands each chunk over as it
/// comes (at most `STDIN_CHUNKS_AHEAD` ahead of the reader, so memory stays bounded). Unlike
/// tokio's `Stdin`, which hands every read to its blocking pool and back, a line costs one
/// wake-up between threads. The thread ends at the end of input, or with the process.
pub struct ThreadStdin {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    taken: usize,
}

/// Chunks the stdin thread may read ahead.
const STDIN_CHUNKS_AHEAD: usize = 4;

/// The most one read of stdin takes.
const STDIN_CHUNK_BYTES: usize = 64 * 1024;

impl ThreadStdin {
    /// Starts reading stdin (needs a tokio runtime for the handing over, not for the thread).
    pub fn spawn() -> Self {
        let (tx, chunks) = tokio::sync::mpsc::channel(STDIN_CHUNKS_AHEAD);
        let reader = move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            // One buffer for every read; what each read brought is handed over in a copy its
            // size (a line, usually), not in a fresh 64 KiB.
            let mut buffer = vec![0; STDIN_CHUNK_BYTES];
            loop {
                let read = match stdin.read(&mut buffer) {
                    Ok(0) => return, // the end: the channel closes
                    Ok(read) => read,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                if tx.blocking_send(Ok(buffer[..read].to_vec())).is_err() {
                    return; // nobody reads any more
                }
            }
        };
        if let Err(error) = std::thread::Builder::new().name("stdin".into()).spawn(reader) {
            // Without the thread there is no input: said as the end, with why.
            let (tx, chunks) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Err(error));
            return Self { chunks, current: Vec::new(), taken: 0 };
        }
        Self { chunks, current: Vec::new(), taken: 0 }
    }
}

impl tokio::io::AsyncRead for ThreadStdin {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let available = match std::pin::Pin::new(&mut *self).poll_fill_buf(cx) {
            std::task::Poll::Ready(Ok(available)) => available,
            std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        };
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        std::pin::Pin::new(&mut *self).consume(n);
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for ThreadStdin {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.taken == this.current.len() {
            match this.chunks.poll_recv(cx) {
                std::task::Poll::Ready(Some(Ok(chunk))) => {
                    this.current = chunk;
                    this.taken = 0;
                }
                std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(&[])),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
        std::task::Poll::Ready(Ok(&this.current[this.taken..]))
    }

    fn consume(self: std::pin::Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.taken = (this.taken + amt).min(this.current.len());
    }
}

/// Lines from a reader (stdin), checked.
pub struct Lines<R> {
    reader: R,
    splitter: Splitter,
    ended: bool,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    /// Reads lines from `reader`.
    pub fn new(reader: R) -> Self {
        Self { reader, splitter: Splitter::default(), ended: false }
    }

    /// The next line, skipped line or the end. Cancel-safe (for `select!`): bytes are taken
    /// from the reader only once they are in the splitter.
    pub async fn next(&mut self) -> Input {
        loop {
            if let Some(input) = self.splitter.pop() {
                return input;
            }
            if self.ended {
                return Input::End(None);
            }
            let chunk = match self.reader.fill_buf().await {
                Ok(chunk) => chunk,
                Err(error) => {
                    self.ended = true;
                    return Input::End(Some(error));
                }
            };
            if chunk.is_empty() {
                self.ended = true;
                self.splitter.finish();
                continue;
            }
            let len = chunk.len();
            self.splitter.push(chunk);
            self.reader.consume(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `chunks` make, in order: lines as `Ok`, skipped lines as `Err`.
    fn split(chunks: &[&[u8]]) -> Vec<Result<String, (u64, Flaw)>> {
        let mut splitter = Splitter::default();
        for chunk in chunks {
            splitter.push(chunk);
        }
        splitter.finish();
        std::iter::from_fn(|| splitter.pop())
            .map(|input| match input {
                Input::Line(text) => Ok(text),
                Input::Skipped { line, flaw } => Err((line, flaw)),
                Input::End(_) => unreachable!("the splitter never ends"),
            })
            .collect()
    }

    #[test]
    fn a_line_that_is_not_utf8_is_skipped_and_the_next_ones_are_read() {
        let got = split(&[b"one\ncaf\xe9\nthree\n"]);
        let flaw = Flaw::NotUtf8 { byte: 0xe9, column: 4 };
        assert_eq!(got, vec![Ok("one".into()), Err((2, flaw)), Ok("three".into())]);
        // A truncated sequence, an overlong encoding, a lone continuation byte, a surrogate.
        for bad in [&b"\xe2\x82"[..], b"\xc0\xaf", b"\x80", b"\xed\xa0\x80", b"ok \xff"] {
            let got = split(&[bad, b"\nafter\n"]);
            assert!(matches!(got[0], Err((1, Flaw::NotUtf8 { .. }))), "{bad:?}: {got:?}");
            assert_eq!(got[1], Ok("after".into()));
        }
        // A character split across two reads is whole.
        assert_eq!(split(&[b"caf\xc3", b"\xa9\n"]), vec![Ok("café".into())]);
    }

    #[test]
    fn nul_bytes_crlf_and_a_last_line_without_newline() {
        let got = split(&[b"a\0b\nhi\r\n\r\nlast"]);
        assert_eq!(
            got,
            vec![
                Err((1, Flaw::Nul { column: 2 })),
                Ok("hi".into()),
                Ok(String::new()),
                Ok("last".into())
            ]
        );
        // Only the CR of the ending goes; one inside the line is the line's.
        assert_eq!(split(&[b"a\rb\r", b"\n"]), vec![Ok("a\rb".into())]);
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn an_over_long_line_is_skipped_without_holding_it() {
        let longest = "é".repeat(MAX_MESSAGE_BYTES / 2);
        let mut splitter = Splitter::default();
        splitter.push(longest.as_bytes());
        splitter.push(b"\r\n");
        for _ in 0..40 {
            splitter.push(&[b'x'; 8192]);
            assert!(splitter.line.len() <= MAX_MESSAGE_BYTES + 1, "memory stays bounded");
        }
        splitter.push(b"\nafter\n");
        splitter.push(&vec![b'y'; MAX_MESSAGE_BYTES + 1]);
        splitter.finish();
        assert!(matches!(splitter.pop(), Some(Input::Line(l)) if l == longest));
        let Some(Input::Skipped { line: 2, flaw: Flaw::TooLong { start } }) = splitter.pop() else {
            panic!("line 2 is too long");
        };
        assert_eq!(start, format!("{}…", "x".repeat(START_CHARS)));
        assert!(matches!(splitter.pop(), Some(Input::Line(l)) if l == "after"));
        assert!(matches!(
            splitter.pop(),
            Some(Input::Skipped { line: 4, flaw: Flaw::TooLong { .. } })
        ));
        assert!(splitter.pop().is_none());
    }

    #[tokio::test]
    async fn lines_read_through_to_the_end() {
        let bytes: &[u8] = b"one\ncaf\xe9\nthree";
        let mut lines = Lines::new(tokio::io::BufReader::with_capacity(2, bytes));
        assert!(matches!(lines.next().await, Input::Line(l) if l == "one"));
        assert!(matches!(lines.next().await, Input::Skipped { line: 2, .. }));
        assert!(matches!(lines.next().await, Input::Line(l) if l == "three"));
        assert!(matches!(lines.next().await, Input::End(None)));
        assert!(matches!(lines.next().await, Input::End(None)));
    }
}
