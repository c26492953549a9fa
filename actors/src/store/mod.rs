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

use nix::libc;
use serde::{Deserialize, Serialize};

use crate::helpers::now_ms;
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
        /// The sender's id for the chat (0 for a classic chat: that protocol numbers nothing).
        id: MessageId,
        /// Its text.
        text: String,
        /// From a classic peer (issue 15), with no key: `name` is its team name. Absent from
        /// the file when false, so lines written before it are peerchat chats.
        #[serde(default, skip_serializing_if = "is_false")]
        classic: bool,
        /// Only part of it was read (a classic sender sent more than 64 KiB, or went on past
        /// the connection's time limit): shown with that warning, as its live line was. Absent from the file when false, as `classic`.
        #[serde(default, skip_serializing_if = "is_false")]
        cut: bool,
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
        /// To a classic peer (issue 15): recorded when its last piece got the peer's `[ACK]`
        /// reply. Absent from the file when false, as for `In`.
        #[serde(default, skip_serializing_if = "is_false")]
        classic: bool,
    },
}

impl HistoryEntry {
    /// A chat with a classic peer, either way.
    pub fn is_classic(&self) -> bool {
        match self {
            HistoryEntry::In { classic, .. } | HistoryEntry::Out { classic, .. } => *classic,
        }
    }
}

/// For serde: a false flag is not written.
fn is_false(flag: &bool) -> bool {
    !*flag
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

        let OpenedOutbox {
            outbox,
            pending,
            pending_bytes,
            outbox_unread,
        } = open_outbox(dir, &mut recovered, &mut degraded);

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
        self.room_for_all(std::slice::from_ref(chat))
    }

    /// Whether all of these chats fit in the outbox's budget together (a `SendChats` takes all
    /// or none).
    pub fn room_for_all(&self, chats: &[QueuedChat]) -> Result<(), OutboxFull> {
        let bytes: u64 = chats
            .iter()
            .map(|chat| record_len(&OutboxRecord::Queued(chat.clone())))
            .sum();
        self.room_for_records(chats.len(), bytes)
    }

    /// Whether `chats` more records of `bytes` in all fit in the outbox's budget.
    fn room_for_records(&self, chats: usize, bytes: u64) -> Result<(), OutboxFull> {
        if self.pending.len().saturating_add(chats) > self.limits.outbox_chats
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
        // The line is made once: its length is what the budget counts.
        let line = to_line(&OutboxRecord::Queued(chat.clone()))?;
        self.room_for_records(1, line.len() as u64)
            .map_err(|full| io::Error::new(io::ErrorKind::QuotaExceeded, full))?;
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

/// The outbox as `open_with` finds it.
struct OpenedOutbox {
    outbox: Appender,
    /// Each pending chat's id, with the bytes of its line.
    pending: HashMap<MessageId, u64>,
    pending_bytes: u64,
    outbox_unread: bool,
}

/// Reads the outbox (its pending chats go to `recovered`), compacts it when it holds more than
/// those, and opens it for appending; what cannot be done goes to `degraded`.
fn open_outbox(dir: &Path, recovered: &mut Recovered, degraded: &mut Vec<String>) -> OpenedOutbox {
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
    OpenedOutbox {
        outbox,
        pending,
        pending_bytes,
        outbox_unread,
    }
}

mod files;
mod load;
#[cfg(test)]
mod tests;

use files::*;
use load::*;
