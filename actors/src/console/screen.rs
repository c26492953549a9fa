//! The Console's device: a [`Screen`] to print to and ask on (the plain line protocol here,
//! the binary's line editor on a terminal) and standard input as a stream of lines.

use std::future::Future;
use std::io::{self, BufRead, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, Stream};

use super::InputLine;

/// The user's lines, as the Console receives them.
pub type InputStream = Pin<Box<dyn Stream<Item = InputLine>>>;

/// Resolves once everything printed before it was asked for is written out.
pub type Written = Pin<Box<dyn Future<Output = ()>>>;

/// The Console's output. The Console decides what to print and when it is ready for the next
/// line; a Screen decides how that looks on its device.
pub trait Screen {
    /// Prints `text` (one line, or several joined by `\n`) above the line being typed.
    fn print(&mut self, text: &str);
    /// The Console is ready for the next input line, the answer to `prompt`. Called again
    /// after each print while the same question is open.
    fn prompt(&mut self, prompt: &str);
    /// Prints `text` like [`Screen::print`], then shows `prompt` if any, as one piece of output
    /// (a batch of chat lines is one `write` on a pipe).
    fn print_lines(&mut self, text: &str, prompt: Option<&str>) {
        self.print(text);
        if let Some(prompt) = prompt {
            self.prompt(prompt);
        }
    }
    /// A line arrived: the open question is answered.
    fn answered(&mut self);
    /// A short note shown beside the line being typed while it is open (chats from others
    /// in a conversation: `2 unread: carol`), replacing the last one; no form clears it. It
    /// comes in `forms`, fullest first (`2 unread: carol`, `2 unread`): the screen shows the
    /// first that fits beside what is typed. Only a screen that redraws its line shows it:
    /// the plain line protocol ignores it.
    fn note(&mut self, forms: &[String]) {
        let _ = forms;
    }
    /// The Console is quitting: no more questions; what is printed now ends the session.
    fn close(&mut self) {}
    /// Columns to wrap long lines at; `None` keeps every line whole, for scripts.
    fn width(&self) -> Option<usize> {
        None
    }
    /// A person at a terminal: the status line comes with the menu.
    fn interactive(&self) -> bool {
        false
    }
    /// Resolves once everything printed so far is out on the device: a chat is acked only
    /// then (console flow control). At once for a screen that writes as it is told.
    fn written(&mut self) -> Written {
        Box::pin(std::future::ready(()))
    }
}

/// What a [`PlainScreen`] hands its writing thread.
enum ToWriter {
    Bytes(Vec<u8>),
    /// Everything before this is written: say so.
    Mark(oneshot::Sender<()>),
}

/// Where a [`PlainScreen`] writes.
enum Out {
    /// Straight to the writer, in the Console's turn (a file, a test's buffer).
    Direct(Box<dyn Write>),
    /// To a thread that writes to stdout: a pipe nobody reads blocks that thread, never the
    /// actors' thread, so pings, other sessions and handshakes go on. Its queue is not
    /// bounded here but by flow control: a chat is acked only once this thread has written
    /// it, and each Session stops reading its peer at `max_unacked_chats` (or bytes) not
    /// yet acked, so at most that much per peer waits here.
    Thread {
        to_thread: std_mpsc::Sender<ToWriter>,
        /// The same output for writes that never wait (a regular file, or a pipe opened
        /// non-blocking): used in the Console's turn while the thread has nothing queued,
        /// which spares two thread hand-offs per batch (the write, and the answer that it
        /// is written) on the path of every ack.
        now: Option<Box<dyn Write>>,
        /// Writes handed to the thread and not yet done.
        behind: Arc<AtomicUsize>,
    },
}

/// The plain line protocol for pipes and scripts: every prompt is written as text, and a
/// line printed while a prompt is open starts on a line of its own. Each call is one
/// `write_all` and one flush of what it assembled (give it an unbuffered writer).
pub struct PlainScreen {
    out: Out,
    /// A prompt is out without its line end: the next print must end that line first.
    prompt_open: bool,
    /// What one call writes, kept for the next call.
    buf: Vec<u8>,
}

/// Room kept in `PlainScreen::buf` between writes; a bigger batch's buffer is let go.
const KEEP_BYTES: usize = 256 * 1024;

impl PlainScreen {
    /// A plain screen writing to `out` (stdout in the binary).
    pub fn new(out: Box<dyn Write>) -> PlainScreen {
        PlainScreen {
            out: Out::Direct(out),
            prompt_open: false,
            buf: Vec::new(),
        }
    }

    /// A plain screen whose writes are made by a thread of their own (the binary's stdout,
    /// which may be a pipe nobody reads).
    pub fn on_thread(out: Box<dyn Write + Send>) -> io::Result<PlainScreen> {
        PlainScreen::on_thread_or_now(out, None)
    }

    /// Like [`PlainScreen::on_thread`], but written through `now` in the Console's turn
    /// whenever that takes no waiting: `now` must never block (a regular file, or a pipe
    /// opened non-blocking, whose `WouldBlock` or short write sends the rest to the thread).
    pub fn on_thread_or_now(
        mut out: Box<dyn Write + Send>,
        now: Option<Box<dyn Write>>,
    ) -> io::Result<PlainScreen> {
        let (tx, rx) = std_mpsc::channel::<ToWriter>();
        let behind = Arc::new(AtomicUsize::new(0));
        let done = behind.clone();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                for message in rx {
                    match message {
                        ToWriter::Bytes(bytes) => {
                            let _ = out.write_all(&bytes);
                            let _ = out.flush();
                            // Release: the Console writes on its own only after this write.
                            done.fetch_sub(1, Ordering::Release);
                        }
                        ToWriter::Mark(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(PlainScreen {
            out: Out::Thread {
                to_thread: tx,
                now,
                behind,
            },
            prompt_open: false,
            buf: Vec::new(),
        })
    }

    fn write_buf(&mut self) {
        match &mut self.out {
            Out::Direct(out) => {
                let _ = out.write_all(&self.buf);
                let _ = out.flush();
                self.buf.clear();
            }
            Out::Thread {
                to_thread,
                now,
                behind,
            } => {
                // In order: straight out only while the thread has nothing left to write.
                let mut written = 0;
                if let (Some(now), 0) = (now.as_mut(), behind.load(Ordering::Acquire)) {
                    written = write_without_waiting(now.as_mut(), &self.buf);
                }
                if written == self.buf.len() {
                    self.buf.clear();
                } else {
                    let rest = if written == 0 {
                        std::mem::take(&mut self.buf)
                    } else {
                        let rest = self.buf[written..].to_vec();
                        self.buf.clear();
                        rest
                    };
                    behind.fetch_add(1, Ordering::Relaxed);
                    if to_thread.send(ToWriter::Bytes(rest)).is_err() {
                        behind.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if self.buf.capacity() > KEEP_BYTES {
            self.buf = Vec::new();
        }
    }
}

impl Screen for PlainScreen {
    fn print(&mut self, text: &str) {
        self.print_lines(text, None);
    }

    fn print_lines(&mut self, text: &str, prompt: Option<&str>) {
        // One allocation of the right size: on a thread each write hands its buffer over, and
        // a batch of chat lines (tens of KiB) grown by doubling was a chain of copies.
        self.buf
            .reserve(text.len() + 2 + prompt.map_or(0, |p| p.len()));
        if self.prompt_open {
            self.buf.push(b'\n');
            self.prompt_open = false;
        }
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.push(b'\n');
        if let Some(prompt) = prompt {
            self.buf.extend_from_slice(prompt.as_bytes());
            self.prompt_open = true;
        }
        self.write_buf();
    }

    fn prompt(&mut self, prompt: &str) {
        self.buf.extend_from_slice(prompt.as_bytes());
        self.write_buf();
        self.prompt_open = true;
    }

    fn answered(&mut self) {
        // The user's Enter ended the prompt's line.
        self.prompt_open = false;
    }

    fn written(&mut self) -> Written {
        match &self.out {
            Out::Direct(_) => Box::pin(std::future::ready(())),
            Out::Thread { behind, .. } if behind.load(Ordering::Acquire) == 0 => {
                Box::pin(std::future::ready(()))
            }
            Out::Thread { to_thread, .. } => {
                let (done, written) = oneshot::channel();
                let _ = to_thread.send(ToWriter::Mark(done));
                // A thread gone (it cannot be, but) has nothing left to write.
                Box::pin(written.map(|_| ()))
            }
        }
    }
}

/// Writes what `out` takes without waiting: the bytes written (a short count or 0 when it
/// would block; 0 too on an error, which the thread then meets and ignores as before).
fn write_without_waiting(out: &mut dyn Write, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        match out.write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    written
}

/// Standard input as a stream of lines, read on a thread of its own (reading a terminal
/// blocks). Invalid UTF-8 is replaced, not fatal. The stream ends at end of input.
pub fn stdin_lines() -> mpsc::UnboundedReceiver<InputLine> {
    let (tx, rx) = mpsc::unbounded();
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut reader = stdin.lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        while matches!(buf.last(), Some(b'\n' | b'\r')) {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if tx.unbounded_send(InputLine(line)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!("cannot read standard input: {err}");
    }
    rx
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_printed_under_an_open_prompt_starts_a_line_of_its_own() {
        let out = Shared::default();
        let mut screen = PlainScreen::new(Box::new(out.clone()));
        screen.prompt("Choose an option: ");
        screen.print("[10:00:00] bob (127.0.0.1:9): hi");
        screen.prompt("Choose an option: ");
        screen.answered();
        screen.print("Known peers:");
        let text = String::from_utf8(out.0.borrow().clone()).unwrap();
        assert_eq!(
            text,
            "Choose an option: \n[10:00:00] bob (127.0.0.1:9): hi\n\
             Choose an option: Known peers:\n"
        );
    }

    #[test]
    fn a_pipe_shows_no_unread_note() {
        let out = Shared::default();
        let mut screen = PlainScreen::new(Box::new(out.clone()));
        screen.prompt("bob> ");
        screen.note(&["2 unread: carol".into(), "2 unread".into()]);
        screen.print_lines("[10:00:00] carol (127.0.0.1:9): hi", Some("bob> "));
        let text = String::from_utf8(out.0.borrow().clone()).unwrap();
        assert_eq!(text, "bob> \n[10:00:00] carol (127.0.0.1:9): hi\nbob> ");
    }

    /// A writer that counts the writes it gets.
    #[derive(Clone, Default)]
    struct Counted(Rc<RefCell<Vec<Vec<u8>>>>);

    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_of_lines_and_its_prompt_are_one_write() {
        let out = Counted::default();
        let mut screen = PlainScreen::new(Box::new(out.clone()));
        screen.prompt("Choose an option: ");
        screen.print_lines(
            "[10:00:00] a: 1\n[10:00:00] a: 2",
            Some("Choose an option: "),
        );
        let writes = out.0.borrow();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(
            writes[1],
            b"\n[10:00:00] a: 1\n[10:00:00] a: 2\nChoose an option: ".to_vec()
        );
    }

    /// A non-blocking output that takes `room` more bytes, then would block (a full pipe).
    #[derive(Clone, Default)]
    struct Pipe {
        taken: Rc<RefCell<Vec<u8>>>,
        room: Rc<RefCell<usize>>,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut room = self.room.borrow_mut();
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(*room);
            *room -= n;
            self.taken.borrow_mut().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What the stdout thread writes.
    #[derive(Clone, Default)]
    struct ThreadSide(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for ThreadSide {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Written at once while the output takes it; what it does not take (and everything
    /// after, until the thread has written it) goes to the thread: nothing lost, nothing
    /// twice, in order, and `written` waits for the thread only when it has work.
    #[test]
    fn what_cannot_be_written_at_once_goes_to_the_thread_in_order() {
        let pipe = Pipe::default();
        let thread = ThreadSide::default();
        let mut screen =
            PlainScreen::on_thread_or_now(Box::new(thread.clone()), Some(Box::new(pipe.clone())))
                .unwrap();
        *pipe.room.borrow_mut() = 8;
        screen.print("one"); // 4 bytes: at once
        futures::executor::block_on(screen.written());
        assert_eq!(pipe.taken.borrow().as_slice(), b"one\n");
        screen.print("two three"); // 4 of 10 at once, the rest to the thread
        screen.print("four"); // behind the thread's work: to the thread
        *pipe.room.borrow_mut() = 1000;
        futures::executor::block_on(screen.written());
        let mut all = pipe.taken.borrow().clone();
        all.extend_from_slice(&thread.0.lock().unwrap());
        assert_eq!(all, b"one\ntwo three\nfour\n");
        // The thread caught up: at once again.
        screen.print("five");
        futures::executor::block_on(screen.written());
        assert!(pipe.taken.borrow().ends_with(b"five\n"));
        assert_eq!(thread.0.lock().unwrap().as_slice(), b"three\nfour\n");
    }
}
