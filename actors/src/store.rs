//! Store: the files a node keeps in its data directory (`--data-dir`), so that a message typed
//! before a crash is still delivered after it and a message shown before a crash is not shown
//! again. Not an actor: it is owned by the Registry, which alone writes it.
//!
//! Files (JSON Lines, one record per line, documented in docs/storage.md):
//! - `static_key` and `lock`: the node's identity and the lock that keeps a second node off
//!   the directory, kept by [`crate::identity`];
//! - `outbox.jsonl`: `{"queued":{..}}` when a chat is accepted, `{"done":{..}}` when it is
//!   delivered or given up;
//! - `history.jsonl` (and `history.1.jsonl`, the one before it): every chat shown or sent, in
//!   order; the received ones are also the record of what was already shown.
//!
//! The directory is private (0700, files 0600, owned by whoever runs the node) and nothing in it
//! is followed if it is a link. Every file has a budget ([`StoreLimits`]). A line that cannot be
//! read is reported and skipped; a file that cannot be read or written is reported and the store
//! runs degraded (see [`Store::degraded`]) rather than keep the node from starting. Every write
//! that fails returns its error: nothing is ever taken as saved that was not.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::libc;
use serde::{Deserialize, Serialize};

use crate::key::PeerKey;
use crate::peer::{MessageId, PeerAddr};

const OUTBOX_FILE: &str = "outbox.jsonl";
const OUTBOX_TEMP: &str = "outbox.jsonl.new";
const HISTORY_FILE: &str = "history.jsonl";
const HISTORY_OLD: &str = "history.1.jsonl";

/// The longest line read from a file: a chat of `MAX_TEXT_BYTES` escaped as JSON (at worst six
/// bytes per byte) fits. Longer lines are skipped without being held in memory.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The outbox file is compacted while the node runs once it holds this much more than its
/// pending chats (plus as much again): delivered chats do not pile up in it between starts.
const OUTBOX_COMPACT_SLACK: u64 = 1024 * 1024;

/// Less free space than this on the data directory's disk (not even a page) is a full disk:
/// the store opens degraded and says so.
const FULL_BELOW_BYTES: u64 = 4096;

/// The largest chat id the outbox holds. Ids come from the clock (ms × 1000, about 2^51 today),
/// so one above this is corrupt; keeping them under it means the next id never wraps to 0.
pub const MAX_MESSAGE_ID: MessageId = u64::MAX / 2;

/// Budgets for the data directory's files. [`Default`] is what a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// `history.jsonl` is renamed to `history.1.jsonl` (replacing it) before a write would take
    /// it past this size, so the history takes at most twice this on disk.
    pub history_file_bytes: u64,
    /// At start, at most this many bytes are read from the end of the history.
    pub history_tail_bytes: u64,
    /// At start, at most this many history entries (the last ones) are kept.
    pub history_tail_entries: usize,
    /// At most this many chats wait for their ack; more are refused ([`OutboxFull`]).
    pub outbox_chats: usize,
    /// At most this many bytes of records of waiting chats; more are refused ([`OutboxFull`]).
    pub outbox_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            history_file_bytes: 16 * 1024 * 1024,
            history_tail_bytes: 4 * 1024 * 1024,
            // What the Registry keeps in memory (HISTORY_IN_MEMORY).
            history_tail_entries: 1000,
            outbox_chats: 10_000,
            outbox_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A chat refused because the outbox is at its budget ([`StoreLimits::outbox_chats`],
/// [`StoreLimits::outbox_bytes`]). Carried inside the `io::Error` that [`Store::queued`]
/// returns (kind `QuotaExceeded`); [`OutboxFull::in_error`] finds it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxFull {
    /// Chats waiting for their ack.
    pub chats: usize,
    /// Bytes of their records.
    pub bytes: u64,
    /// The budget.
    pub limits: StoreLimits,
}

impl OutboxFull {
    /// The `OutboxFull` inside an error from [`Store::queued`], if that is why it failed.
    pub fn in_error(err: &io::Error) -> Option<&OutboxFull> {
        err.get_ref()?.downcast_ref::<OutboxFull>()
    }
}

impl fmt::Display for OutboxFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the outbox is full ({} chats, {} bytes waiting; at most {} chats or {} bytes): \
             no new chat is accepted until some are delivered or given up",
            self.chats, self.bytes, self.limits.outbox_chats, self.limits.outbox_bytes
        )
    }
}

impl std::error::Error for OutboxFull {}

/// One chat waiting for its ack, as written to `outbox.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedChat {
    /// The chat's id on the wire.
    pub id: MessageId,
    /// `IP:PORT` of the recipient.
    pub to: String,
    /// Its text.
    pub text: String,
    /// When it was typed (ms since the Unix epoch).
    pub sent_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutboxRecord {
    Queued(QueuedChat),
    Done { id: MessageId, outcome: String },
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "dir", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// A chat we showed.
    In {
        /// When it was shown (ms since the Unix epoch).
        at_ms: u64,
        /// The sender's address.
        from: PeerAddr,
        /// The sender's name.
        name: String,
        /// The sender's static key: the seen-chat record is per key. Absent in lines written
        /// before protocol v2 (their senders had no key), which then mark nothing as seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<PeerKey>,
        /// The sender's id for the chat.
        id: MessageId,
        /// Its text.
        text: String,
    },
    /// A chat we sent, recorded when its ack came.
    Out {
        /// When its ack came (ms since the Unix epoch).
        at_ms: u64,
        /// The recipient's address.
        to: PeerAddr,
        /// Our id for the chat.
        id: MessageId,
        /// Its text.
        text: String,
    },
}

/// What a store held when opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Chats still waiting for their ack, oldest first. Every id is at most
    /// [`MAX_MESSAGE_ID`].
    pub outbox: Vec<QueuedChat>,
    /// The end of the conversation, oldest first: at most
    /// [`StoreLimits::history_tail_entries`] entries.
    pub history: Vec<HistoryEntry>,
    /// What the user should know: lines skipped, files moved aside, modes tightened, and why
    /// the store runs degraded, if it does. Each is one sentence saying what to do.
    pub warnings: Vec<String>,
}

/// The data directory's files (see the module docs); owned by the Registry.
pub struct Store {
    dir: PathBuf,
    limits: StoreLimits,
    outbox: Appender,
    history: Appender,
    /// Waiting chats: id → bytes of its `queued` record.
    pending: HashMap<MessageId, u64>,
    pending_bytes: u64,
    /// The outbox could not be read at start: what it holds is unknown, so it is never
    /// rewritten (that would lose it) and its budget counts only this run's chats.
    outbox_unread: bool,
    /// Why the store runs degraded, if it does.
    degraded: Option<String>,
}

impl Store {
    /// [`Store::open_with`] with the default [`StoreLimits`].
    pub fn open(dir: &Path) -> io::Result<(Store, Recovered)> {
        Store::open_with(dir, StoreLimits::default())
    }

    /// Opens (creating if needed, 0700) a data directory and reads what it holds. Fails only
    /// when the directory itself must not be used: it cannot be created, is not a directory,
    /// belongs to another user or can be written by group or others (the error says what to
    /// do). Anything else wrong (a full disk, a corrupt or foreign file) is reported in
    /// [`Recovered::warnings`] and the store opens degraded. The outbox is rewritten with only
    /// the pending chats, so it does not grow without end.
    pub fn open_with(dir: &Path, limits: StoreLimits) -> io::Result<(Store, Recovered)> {
        let mut recovered = Recovered::default();
        prepare_dir(dir, &mut recovered.warnings)?;
        let mut degraded: Vec<String> = Vec::new();

        let outbox_path = dir.join(OUTBOX_FILE);
        let mut pending = HashMap::new();
        let mut pending_bytes = 0;
        let mut outbox_unread = false;
        let mut outbox_file = None;
        match load_outbox(&outbox_path, &mut recovered.warnings) {
            Ok(loaded) => {
                for chat in &loaded.pending {
                    let bytes = record_len(&OutboxRecord::Queued(chat.clone()));
                    pending.insert(chat.id, bytes);
                    pending_bytes += bytes;
                }
                if loaded.file_bytes != pending_bytes || loaded.renumbered {
                    // Rewrite with only the pending chats: new file, then rename over.
                    let written = replace_file(dir, OUTBOX_TEMP, OUTBOX_FILE, |out| {
                        for chat in &loaded.pending {
                            write_record(out, &OutboxRecord::Queued(chat.clone()))?;
                        }
                        Ok(())
                    });
                    match written {
                        Ok(file) => outbox_file = Some((file, pending_bytes)),
                        Err(err) => degraded.push(format!(
                            "cannot compact {} ({err}); it is kept as it is",
                            outbox_path.display()
                        )),
                    }
                }
                recovered.outbox = loaded.pending;
            }
            Err(err) => {
                outbox_unread = true;
                degraded.push(format!(
                    "cannot read {} ({err}); the chats waiting in it are not sent",
                    outbox_path.display()
                ));
            }
        }
        let outbox = match outbox_file {
            Some((file, len)) => Appender::from_file(outbox_path, file, len),
            None => Appender::open(outbox_path),
        };

        let history_dir = dir.to_path_buf();
        recovered.history = read_history_tail(&history_dir, &limits, &mut recovered.warnings);
        let history = Appender::open(dir.join(HISTORY_FILE));

        for appender in [&outbox, &history] {
            if let Some(why) = &appender.unusable {
                degraded.push(why.clone());
            }
        }
        if let Some(free) = free_bytes(dir).filter(|free| *free < FULL_BELOW_BYTES) {
            degraded.push(format!("the disk holding it is full ({free} bytes free)"));
        }
        let degraded = (!degraded.is_empty()).then(|| degraded.join("; "));
        if let Some(why) = &degraded {
            recovered.warnings.push(format!(
                "data directory {} runs degraded: {why}. Chats that cannot be written are \
                 reported as not saved; free space or fix the file, then restart",
                dir.display()
            ));
        }
        let store = Store {
            dir: dir.to_path_buf(),
            limits,
            outbox,
            history,
            pending,
            pending_bytes,
            outbox_unread,
            degraded,
        };
        Ok((store, recovered))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The budgets this store keeps to.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Why the store runs degraded (a file could not be read or opened at start), if it does.
    /// It still tries every write, and each one that fails returns its error.
    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    /// Whether a chat fits in the outbox's budget, before accepting it.
    pub fn room_for(&self, chat: &QueuedChat) -> Result<(), OutboxFull> {
        let bytes = record_len(&OutboxRecord::Queued(chat.clone()));
        if self.pending.len() >= self.limits.outbox_chats
            || self.pending_bytes.saturating_add(bytes) > self.limits.outbox_bytes
        {
            return Err(OutboxFull {
                chats: self.pending.len(),
                bytes: self.pending_bytes,
                limits: self.limits,
            });
        }
        Ok(())
    }

    /// Whether all of these chats fit in the outbox's budget together (a `SendChats` takes all
    /// or none).
    pub fn room_for_all(&self, chats: &[QueuedChat]) -> Result<(), OutboxFull> {
        let bytes: u64 = chats
            .iter()
            .map(|chat| record_len(&OutboxRecord::Queued(chat.clone())))
            .sum();
        if self.pending.len().saturating_add(chats.len()) > self.limits.outbox_chats
            || self.pending_bytes.saturating_add(bytes) > self.limits.outbox_bytes
        {
            return Err(OutboxFull {
                chats: self.pending.len(),
                bytes: self.pending_bytes,
                limits: self.limits,
            });
        }
        Ok(())
    }

    /// Records a chat accepted for sending. Fails (and nothing is recorded) if the outbox is
    /// full ([`OutboxFull::in_error`] finds it), if the id is above [`MAX_MESSAGE_ID`], or if
    /// the write fails: then the chat is not saved and must not be reported as kept.
    pub fn queued(&mut self, chat: &QueuedChat) -> io::Result<()> {
        if chat.id > MAX_MESSAGE_ID {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("chat id {} is above {MAX_MESSAGE_ID}", chat.id),
            ));
        }
        self.room_for(chat)
            .map_err(|full| io::Error::new(io::ErrorKind::QuotaExceeded, full))?;
        let line = to_line(&OutboxRecord::Queued(chat.clone()))?;
        self.outbox.append(&line)?;
        let bytes = line.len() as u64;
        if let Some(old) = self.pending.insert(chat.id, bytes) {
            self.pending_bytes -= old;
        }
        self.pending_bytes += bytes;
        Ok(())
    }

    /// Records a chat's end: `delivered` or `failed: why`. The chat no longer counts towards
    /// the outbox's budget even if the write fails (the next compaction drops it then; until
    /// then a restart would send it again, and the peer de-duplicates it).
    pub fn done(&mut self, id: MessageId, outcome: &str) -> io::Result<()> {
        if let Some(bytes) = self.pending.remove(&id) {
            self.pending_bytes -= bytes;
        }
        let record = OutboxRecord::Done {
            id,
            outcome: outcome.to_string(),
        };
        self.outbox.append(&to_line(&record)?)?;
        self.compact_outbox_if_due();
        Ok(())
    }

    /// Appends a chat to the history, first rotating `history.jsonl` to `history.1.jsonl` if
    /// the entry would take it past [`StoreLimits::history_file_bytes`]. Fails if the entry
    /// could not be written (or the rotation failed: the file is not let grow past its cap).
    pub fn history(&mut self, entry: &HistoryEntry) -> io::Result<()> {
        let line = to_line(entry)?;
        if self.history.len > 0
            && self.history.len + line.len() as u64 > self.limits.history_file_bytes
        {
            self.rotate_history()?;
        }
        self.history.append(&line)
    }

    fn rotate_history(&mut self) -> io::Result<()> {
        let current = self.dir.join(HISTORY_FILE);
        let old = self.dir.join(HISTORY_OLD);
        if let Ok(meta) = fs::symlink_metadata(&old) {
            if !meta.is_file() {
                return Err(not_ours(&old, &meta));
            }
        }
        fs::rename(&current, &old).map_err(|err| in_file(&current, err))?;
        self.history = Appender::open(current);
        match &self.history.unusable {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }

    /// Rewrites the outbox with only the waiting chats once delivered ones take most of it.
    /// A failure only leaves the longer file: nothing is lost.
    fn compact_outbox_if_due(&mut self) {
        let due = self.outbox.len
            > self
                .pending_bytes
                .saturating_mul(2)
                .saturating_add(OUTBOX_COMPACT_SLACK);
        if self.outbox_unread || !due {
            return;
        }
        let path = self.dir.join(OUTBOX_FILE);
        let pending = &self.pending;
        let mut kept = 0u64;
        let written = replace_file(&self.dir, OUTBOX_TEMP, OUTBOX_FILE, |out| {
            let source = open_private(&path, OpenOptions::new().read(true))?;
            for_each_line(source, |_, line| {
                if let Ok(OutboxRecord::Queued(chat)) = serde_json::from_slice(line) {
                    if pending.contains_key(&chat.id) {
                        out.write_all(line)?;
                        out.write_all(b"\n")?;
                        kept += line.len() as u64 + 1;
                    }
                }
                Ok(())
            })
        });
        match written {
            Ok(file) => self.outbox = Appender::from_file(path, file, kept),
            Err(err) => tracing::warn!("cannot compact {}: {err}", path.display()),
        }
    }
}

/// A file written a whole line per `write`, whose length is known so that a failed write can
/// be cut back off (a full disk leaves no torn line for the next line to be glued to).
struct Appender {
    path: PathBuf,
    file: Option<File>,
    len: u64,
    /// Why it could not be opened, if so; every write tries again.
    unusable: Option<String>,
}

impl Appender {
    fn open(path: PathBuf) -> Appender {
        let mut appender = Appender {
            path,
            file: None,
            len: 0,
            unusable: None,
        };
        if let Err(err) = appender.reopen() {
            appender.unusable = Some(err.to_string());
        }
        appender
    }

    fn from_file(path: PathBuf, file: File, len: u64) -> Appender {
        Appender {
            path,
            file: Some(file),
            len,
            unusable: None,
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = open_private(&self.path, OpenOptions::new().append(true).create(true))?;
        self.len = file.metadata()?.len();
        self.unusable = None;
        self.file = Some(file);
        Ok(())
    }

    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("not open"));
        };
        match file.write_all(line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Part of the line may have gone out: cut it off again.
                let _ = file.set_len(self.len);
                Err(in_file(&self.path, err))
            }
        }
    }
}

/// What the user may write on the data directory's filesystem, if it can be told.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(dir).ok()?;
    // Both are u64 on Linux but narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (
        u64::from(stats.blocks_available()),
        u64::from(stats.fragment_size()),
    );
    Some(blocks.saturating_mul(size))
}

/// Creates the directory (0700) if needed and checks that it is private to this user.
fn prepare_dir(dir: &Path, warnings: &mut Vec<String>) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot create it: {err}")))?;
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it is not a directory: choose another --data-dir",
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to another user (uid {}, you are uid {me}); peerchat keeps your \
                 chats only in a directory of your own: choose another --data-dir",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and all other users",
            (true, false) => "its group",
            _ => "all other users",
        };
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it can be written by {who} (mode {mode:o}), who could read or replace your \
                 chats: run `chmod 700 {}` or choose another --data-dir",
                dir.display()
            ),
        ));
    }
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        warnings.push(format!(
            "{} could be read by other users (mode {mode:o}); it is now 700",
            dir.display()
        ));
    }
    Ok(())
}

/// Opens a file in the data directory without following a link, and only if it is a regular
/// file with no other name: new files are 0600, older ones are made 0600.
fn open_private(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    // O_NONBLOCK: a FIFO planted under our name must not block the open; it is refused below.
    let file = options
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| match fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_file() => not_ours(path, &meta),
            _ => in_file(path, err),
        })?;
    let meta = file.metadata().map_err(|err| in_file(path, err))?;
    if !meta.is_file() {
        return Err(not_ours(path, &meta));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::other(format!(
            "{} has {} names (hard links): peerchat writes only to files of its own; move it \
             away (the other names were not touched)",
            path.display(),
            meta.nlink()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|err| in_file(path, err))?;
    }
    Ok(file)
}

/// The error for a name in the data directory that is not a regular file.
fn not_ours(path: &Path, meta: &fs::Metadata) -> io::Error {
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link (peerchat never follows links in its data directory; the link and \
         what it points to were left alone)"
    } else if kind.is_dir() {
        "a directory, not a file"
    } else if kind.is_fifo() || kind.is_socket() {
        "a pipe or socket, not a file"
    } else {
        "not a regular file"
    };
    io::Error::other(format!("{} is {what}: move it away", path.display()))
}

/// Puts the file's name in an error from the operating system.
fn in_file(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// Writes a file whole under a temporary name (created exclusively: never an existing file or
/// a link), flushes it to disk and renames it over `name`. Returns it open for appending.
fn replace_file(
    dir: &Path,
    temp: &str,
    name: &str,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<File> {
    let temp_path = dir.join(temp);
    let path = dir.join(name);
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if !meta.is_file() {
            return Err(not_ours(&path, &meta));
        }
    }
    // A temporary file left by a crash is ours to remove; anything else under its name is not.
    match fs::symlink_metadata(&temp_path) {
        Ok(meta) if meta.is_file() => {
            fs::remove_file(&temp_path).map_err(|err| in_file(&temp_path, err))?
        }
        Ok(meta) => return Err(not_ours(&temp_path, &meta)),
        Err(_) => {}
    }
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp_path)
        .map_err(|err| in_file(&temp_path, err))?;
    let written = (|| {
        let mut out = BufWriter::new(&file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        fs::rename(&temp_path, &path)
    })();
    match written {
        Ok(()) => Ok(file),
        Err(err) => {
            let _ = fs::remove_file(&temp_path);
            Err(in_file(&path, err))
        }
    }
}

struct LoadedOutbox {
    pending: Vec<QueuedChat>,
    /// Bytes of the file as read.
    file_bytes: u64,
    /// Some ids were out of range and given new ones: the file must be rewritten.
    renumbered: bool,
}

/// Reads the outbox line by line (never whole): the chats `queued` without a later `done`.
fn load_outbox(path: &Path, warnings: &mut Vec<String>) -> io::Result<LoadedOutbox> {
    let file = match open_private(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(LoadedOutbox {
                pending: Vec::new(),
                file_bytes: 0,
                renumbered: false,
            })
        }
        Err(err) => return Err(err),
    };
    let file_bytes = file.metadata()?.len();
    let mut chats: Vec<Option<QueuedChat>> = Vec::new();
    let mut index: HashMap<MessageId, usize> = HashMap::new();
    let mut highest_id: MessageId = 0;
    for_each_line(file, |line_no, line| {
        let record = std::str::from_utf8(line)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|text| {
                serde_json::from_str::<OutboxRecord>(text).map_err(|err| err.to_string())
            });
        match record {
            Ok(OutboxRecord::Queued(chat)) => {
                if chat.id <= MAX_MESSAGE_ID {
                    highest_id = highest_id.max(chat.id);
                }
                if let Some(old) = index.insert(chat.id, chats.len()) {
                    chats[old] = None; // Queued twice: the later record stands.
                }
                chats.push(Some(chat));
            }
            Ok(OutboxRecord::Done { id, .. }) => {
                if let Some(at) = index.remove(&id) {
                    chats[at] = None;
                }
            }
            Err(why) if line_no == usize::MAX => warnings.push(format!(
                "{}: a line over {MAX_LINE_BYTES} bytes skipped ({why})",
                path.display()
            )),
            Err(why) => warnings.push(format!(
                "{}:{line_no}: unreadable line skipped ({why})",
                path.display()
            )),
        }
        Ok(())
    })?;
    // Ids above the range are corrupt; they get new ones above every id used so far (the
    // clock's included), so the next id never wraps and no peer has seen the new one.
    let mut next_id = highest_id.max(now_ms().saturating_mul(1000));
    let mut renumbered = false;
    let mut pending: Vec<QueuedChat> = chats.into_iter().flatten().collect();
    for chat in pending.iter_mut().filter(|chat| chat.id > MAX_MESSAGE_ID) {
        next_id += 1;
        warnings.push(format!(
            "{}: chat id {} is out of range (corrupt?); it is sent as id {next_id}",
            path.display(),
            chat.id
        ));
        chat.id = next_id;
        renumbered = true;
    }
    Ok(LoadedOutbox {
        pending,
        file_bytes,
        renumbered,
    })
}

/// The last entries of the history, reading at most `history_tail_bytes` from the end of
/// `history.jsonl` and, if that is shorter, of `history.1.jsonl` before it.
fn read_history_tail(
    dir: &Path,
    limits: &StoreLimits,
    warnings: &mut Vec<String>,
) -> Vec<HistoryEntry> {
    let mut budget = limits.history_tail_bytes;
    let mut chunks = Vec::new();
    for name in [HISTORY_FILE, HISTORY_OLD] {
        let path = dir.join(name);
        match read_tail(&path, budget) {
            Ok(None) => continue,
            Ok(Some(tail)) => {
                budget -= tail.bytes.len() as u64;
                let whole = tail.whole;
                chunks.push((path, tail));
                if !whole || budget == 0 {
                    break;
                }
            }
            Err(err) => {
                warnings.push(format!("{err}; the history in it is not shown"));
                break;
            }
        }
    }
    // Newest first: parse lines from the end until enough entries are found.
    let mut entries = Vec::new();
    'files: for (path, tail) in &chunks {
        let mut end = tail.bytes.len();
        let mut lines_after = 0;
        while end > 0 && entries.len() < limits.history_tail_entries {
            let start = tail.bytes[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            let line = &tail.bytes[start..end];
            end = start.saturating_sub(1);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            lines_after += 1;
            let parsed = std::str::from_utf8(line)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(|text| serde_json::from_str(text).map_err(|err| err.to_string()));
            match parsed {
                Ok(entry) => entries.push(entry),
                Err(why) => warnings.push(format!(
                    "{}: unreadable line skipped, {lines_after} from the end ({why})",
                    path.display()
                )),
            }
            if start == 0 {
                break;
            }
        }
        if entries.len() >= limits.history_tail_entries {
            break 'files;
        }
    }
    entries.reverse();
    entries
}

struct Tail {
    /// Whole lines only.
    bytes: Vec<u8>,
    /// The tail is the whole file.
    whole: bool,
}

/// The last at most `max_bytes` of a file, from the first line that starts in them.
fn read_tail(path: &Path, max_bytes: u64) -> io::Result<Option<Tail>> {
    let mut file = match open_private(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))
        .map_err(|err| in_file(path, err))?;
    let mut bytes = Vec::new();
    file.take(max_bytes)
        .read_to_end(&mut bytes)
        .map_err(|err| in_file(path, err))?;
    if start > 0 {
        // The first line began before the window: drop what is in it.
        let cut = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |at| at + 1);
        bytes.drain(..cut);
    }
    Ok(Some(Tail {
        bytes,
        whole: start == 0,
    }))
}

/// Calls `each` with every non-blank line (without its newline), numbered from 1. A line over
/// [`MAX_LINE_BYTES`] is not held in memory: `each` gets it empty, numbered `usize::MAX`.
fn for_each_line(
    file: File,
    mut each: impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut line_no = 0;
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let (part, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        if !too_long {
            if line.len() + part.len() > MAX_LINE_BYTES {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = part.len() + usize::from(ended);
        reader.consume(used);
        if ended {
            line_no += 1;
            finish_line(&mut line, &mut too_long, line_no, &mut each)?;
        }
    }
    if !line.is_empty() || too_long {
        finish_line(&mut line, &mut too_long, line_no + 1, &mut each)?;
    }
    Ok(())
}

fn finish_line(
    line: &mut Vec<u8>,
    too_long: &mut bool,
    line_no: usize,
    each: &mut impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    if *too_long {
        each(usize::MAX, &[])?;
    } else if !line.iter().all(u8::is_ascii_whitespace) {
        let end = line.len()
            - line
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        each(line_no, &line[..end])?;
    }
    line.clear();
    *too_long = false;
    Ok(())
}

/// A record as one line, newline included: written with one `write`, so a crash leaves at
/// most one torn line, the last.
fn to_line(record: &impl Serialize) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    Ok(line)
}

fn record_len(record: &impl Serialize) -> u64 {
    to_line(record).map_or(0, |line| line.len() as u64)
}

fn write_record(out: &mut impl Write, record: &impl Serialize) -> io::Result<()> {
    out.write_all(&to_line(record)?)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "peerchat-store-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A directory as a node would have made it (0700), for files planted before it opens.
    fn private_dir(tag: &str) -> PathBuf {
        let dir = temp_dir(tag);
        DirBuilder::new().mode(0o700).create(&dir).unwrap();
        dir
    }

    fn chat(id: u64) -> QueuedChat {
        QueuedChat {
            id,
            to: "127.0.0.1:9001".into(),
            text: format!("text {id}"),
            sent_at_ms: id,
        }
    }

    fn shown(id: u64) -> HistoryEntry {
        HistoryEntry::In {
            at_ms: id,
            from: "127.0.0.1:9001".parse().unwrap(),
            name: "bob".into(),
            key: Some(PeerKey::from_bytes([7; 32])),
            id,
            text: format!("line {id}"),
        }
    }

    #[test]
    fn pending_chats_survive_a_reopen_and_done_ones_do_not() {
        let dir = temp_dir("reopen");
        {
            let (mut store, recovered) = Store::open(&dir).unwrap();
            assert!(recovered.outbox.is_empty());
            for id in 1..=5 {
                store.queued(&chat(id)).unwrap();
            }
            store.done(2, "delivered").unwrap();
            store.done(4, "failed").unwrap();
        }
        let (_, recovered) = Store::open(&dir).unwrap();
        assert_eq!(recovered.outbox, vec![chat(1), chat(3), chat(5)]);
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
        // The outbox was compacted to the three pending chats.
        let text = fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_or_corrupt_file_is_reported_and_the_readable_part_kept() {
        let dir = private_dir("corrupt");
        let good = serde_json::to_string(&OutboxRecord::Queued(chat(1))).unwrap();
        let good2 = serde_json::to_string(&OutboxRecord::Queued(chat(2))).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(good.as_bytes());
        bytes.extend_from_slice(b"\n{\"queued\": garbage\n\xff\xfe\n");
        bytes.extend_from_slice(good2.as_bytes());
        bytes.extend_from_slice(b"\n{\"queued\":{\"id\":3,\"to\""); // torn last line
        fs::write(dir.join("outbox.jsonl"), bytes).unwrap();
        fs::write(dir.join("history.jsonl"), "{\"dir\":\"in\"}\n").unwrap();
        let (_, recovered) = Store::open(&dir).unwrap();
        assert_eq!(recovered.outbox, vec![chat(1), chat(2)]);
        assert_eq!(recovered.warnings.len(), 4, "{:?}", recovered.warnings);
        assert!(recovered
            .warnings
            .iter()
            .any(|w| w.contains("outbox.jsonl:2")));
        assert!(recovered.warnings.iter().any(|w| w.contains("not UTF-8")));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_outbox_id_at_the_top_of_the_range_is_renumbered_and_never_wraps() {
        let dir = private_dir("wrap");
        let mut huge = chat(u64::MAX);
        huge.text = "from a corrupt file".into();
        let lines = [
            serde_json::to_string(&OutboxRecord::Queued(chat(5))).unwrap(),
            serde_json::to_string(&OutboxRecord::Queued(huge)).unwrap(),
        ];
        fs::write(dir.join("outbox.jsonl"), lines.join("\n") + "\n").unwrap();
        let (mut store, recovered) = Store::open(&dir).unwrap();
        assert_eq!(recovered.outbox.len(), 2);
        assert_eq!(recovered.outbox[0], chat(5));
        let renumbered = &recovered.outbox[1];
        assert_eq!(renumbered.text, "from a corrupt file");
        assert!(renumbered.id <= MAX_MESSAGE_ID && renumbered.id > 5);
        // What a Registry does next cannot overflow.
        let highest = recovered.outbox.iter().map(|c| c.id).max().unwrap();
        assert!(highest.checked_add(1).is_some_and(|next| next > highest));
        assert!(recovered
            .warnings
            .iter()
            .any(|w| w.contains("out of range")));
        // And the store refuses to write an id above the range itself.
        let err = store.queued(&chat(u64::MAX)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The new id is what is on disk now.
        drop(store);
        let (_, again) = Store::open(&dir).unwrap();
        assert_eq!(again.outbox, recovered.outbox);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn history_rotates_at_its_cap_and_only_its_tail_is_loaded() {
        let dir = temp_dir("rotate");
        let limits = StoreLimits {
            history_file_bytes: 4096,
            history_tail_bytes: 2048,
            history_tail_entries: 10,
            ..StoreLimits::default()
        };
        let (mut store, _) = Store::open_with(&dir, limits).unwrap();
        for id in 1..=200 {
            store.history(&shown(id)).unwrap();
            let len = fs::metadata(dir.join("history.jsonl")).unwrap().len();
            assert!(len <= 4096, "history.jsonl is {len} bytes");
        }
        assert!(fs::metadata(dir.join("history.1.jsonl")).unwrap().len() <= 4096);
        drop(store);
        let (_, recovered) = Store::open_with(&dir, limits).unwrap();
        let ids: Vec<u64> = recovered
            .history
            .iter()
            .map(|e| match e {
                HistoryEntry::In { id, .. } | HistoryEntry::Out { id, .. } => *id,
            })
            .collect();
        assert_eq!(ids, (191..=200).collect::<Vec<_>>());
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_just_rotated_history_is_loaded_from_the_older_file_too() {
        let dir = temp_dir("rotated-tail");
        let limits = StoreLimits {
            history_file_bytes: 1000,
            history_tail_bytes: 100_000,
            history_tail_entries: 30,
            ..StoreLimits::default()
        };
        let (mut store, _) = Store::open_with(&dir, limits).unwrap();
        for id in 1..=20 {
            store.history(&shown(id)).unwrap();
        }
        drop(store);
        assert!(dir.join("history.1.jsonl").exists());
        let (_, recovered) = Store::open_with(&dir, limits).unwrap();
        let first = match &recovered.history[0] {
            HistoryEntry::In { id, .. } | HistoryEntry::Out { id, .. } => *id,
        };
        let on_disk = fs::read_to_string(dir.join("history.1.jsonl"))
            .unwrap()
            .lines()
            .count()
            + fs::read_to_string(dir.join("history.jsonl"))
                .unwrap()
                .lines()
                .count();
        assert_eq!(recovered.history.len(), on_disk);
        assert_eq!(first as usize, 21 - on_disk);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_outbox_refuses_chats_at_its_cap_and_takes_them_again_after_a_done() {
        let dir = temp_dir("outbox-cap");
        let limits = StoreLimits {
            outbox_chats: 3,
            ..StoreLimits::default()
        };
        let (mut store, _) = Store::open_with(&dir, limits).unwrap();
        for id in 1..=3 {
            store.queued(&chat(id)).unwrap();
        }
        assert!(store.room_for(&chat(4)).is_err());
        let err = store.queued(&chat(4)).unwrap_err();
        let full = OutboxFull::in_error(&err).expect("an OutboxFull");
        assert_eq!(full.chats, 3);
        assert!(err.to_string().contains("outbox is full"), "{err}");
        store.done(1, "delivered").unwrap();
        store.queued(&chat(4)).unwrap();
        drop(store);
        let (_, recovered) = Store::open_with(&dir, limits).unwrap();
        assert_eq!(recovered.outbox, vec![chat(2), chat(3), chat(4)]);

        // The byte budget too.
        let limits = StoreLimits {
            outbox_bytes: 300,
            ..StoreLimits::default()
        };
        let dir2 = temp_dir("outbox-bytes");
        let (mut store, _) = Store::open_with(&dir2, limits).unwrap();
        let mut big = chat(1);
        big.text = "x".repeat(400);
        assert!(OutboxFull::in_error(&store.queued(&big).unwrap_err()).is_some());
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(dir2).unwrap();
    }

    #[test]
    fn delivered_chats_are_compacted_away_while_the_node_runs() {
        let dir = temp_dir("compact");
        let (mut store, _) = Store::open(&dir).unwrap();
        let text = "y".repeat(1000);
        for id in 1..=3000 {
            let mut c = chat(id);
            c.text = text.clone();
            store.queued(&c).unwrap();
            if id > 2 {
                store.done(id, "delivered").unwrap();
            }
        }
        let len = fs::metadata(dir.join("outbox.jsonl")).unwrap().len();
        assert!(
            len < 2 * 1024 * 1024 + 10_000,
            "outbox.jsonl is {len} bytes"
        );
        drop(store);
        let (_, recovered) = Store::open(&dir).unwrap();
        let ids: Vec<u64> = recovered.outbox.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_over_long_line_is_skipped_without_being_read_into_memory() {
        let dir = private_dir("long-line");
        let mut bytes = vec![b'z'; MAX_LINE_BYTES * 3];
        bytes.push(b'\n');
        bytes.extend_from_slice(
            serde_json::to_string(&OutboxRecord::Queued(chat(9)))
                .unwrap()
                .as_bytes(),
        );
        fs::write(dir.join("outbox.jsonl"), bytes).unwrap();
        let (_, recovered) = Store::open(&dir).unwrap();
        assert_eq!(recovered.outbox, vec![chat(9)]);
        assert!(recovered.warnings.iter().any(|w| w.contains("over")));
        fs::remove_dir_all(dir).unwrap();
    }
}
