//! Store: the files a node keeps in its data directory (`--data-dir`), so that a message typed
//! before a crash is still delivered after it and a message shown before a crash is not shown
//! again. Not an actor: it is owned by the Registry, which alone writes it.
//!
//! Files (JSON Lines, one record per line, documented in docs/storage.md):
//! - `node.json`: this node's id, kept across restarts so peers can de-duplicate our resends;
//! - `outbox.jsonl`: `{"queued":{..}}` when a chat is accepted, `{"done":{..}}` when it is
//!   delivered or given up;
//! - `history.jsonl`: every chat shown or sent, in order; the received ones are also the
//!   record of what was already shown.
//!
//! A line that cannot be read (a torn last line after a crash, a hand edit) is reported and
//! skipped; the rest of the file is kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::peer::{MessageId, NodeId, PeerAddr};

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
        /// The sender's node id.
        node_id: NodeId,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeFile {
    node_id: NodeId,
}

/// What a store held when opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// `None` for a new data directory.
    pub node_id: Option<NodeId>,
    /// Chats still waiting for their ack, oldest first.
    pub outbox: Vec<QueuedChat>,
    /// The conversation, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Lines that could not be read, as "file:line: why".
    pub warnings: Vec<String>,
}

/// The data directory's files (see the module docs); owned by the Registry.
pub struct Store {
    dir: PathBuf,
    outbox: File,
    history: File,
}

impl Store {
    /// Opens (creating if needed) a data directory and reads what it holds. The outbox is
    /// rewritten with only the pending chats, so it does not grow without end.
    pub fn open(dir: &Path) -> io::Result<(Store, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut recovered = Recovered::default();
        let node_path = dir.join("node.json");
        match fs::read_to_string(&node_path) {
            Ok(text) => match serde_json::from_str::<NodeFile>(&text) {
                Ok(node) => recovered.node_id = Some(node.node_id),
                Err(err) => recovered.warnings.push(format!(
                    "{}: {err}; a new node id is used",
                    node_path.display()
                )),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }

        let outbox_path = dir.join("outbox.jsonl");
        let mut pending: Vec<QueuedChat> = Vec::new();
        for (line_no, line) in read_lines(&outbox_path, &mut recovered.warnings)? {
            match serde_json::from_str::<OutboxRecord>(&line) {
                Ok(OutboxRecord::Queued(chat)) => pending.push(chat),
                Ok(OutboxRecord::Done { id, .. }) => pending.retain(|c| c.id != id),
                Err(err) => recovered.warnings.push(format!(
                    "{}:{line_no}: unreadable line skipped ({err})",
                    outbox_path.display()
                )),
            }
        }
        // Compact: write the pending chats to a new file, then replace the old one.
        let compact_path = dir.join("outbox.jsonl.new");
        {
            let mut compact = File::create(&compact_path)?;
            for chat in &pending {
                write_line(&mut compact, &OutboxRecord::Queued(chat.clone()))?;
            }
            compact.sync_all()?;
        }
        fs::rename(&compact_path, &outbox_path)?;
        recovered.outbox = pending;

        let history_path = dir.join("history.jsonl");
        for (line_no, line) in read_lines(&history_path, &mut recovered.warnings)? {
            match serde_json::from_str::<HistoryEntry>(&line) {
                Ok(entry) => recovered.history.push(entry),
                Err(err) => recovered.warnings.push(format!(
                    "{}:{line_no}: unreadable line skipped ({err})",
                    history_path.display()
                )),
            }
        }

        let store = Store {
            dir: dir.to_path_buf(),
            outbox: append(&outbox_path)?,
            history: append(&history_path)?,
        };
        Ok((store, recovered))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Remembers the node id for the next start.
    pub fn save_node_id(&self, node_id: NodeId) -> io::Result<()> {
        let path = self.dir.join("node.json");
        let tmp = self.dir.join("node.json.new");
        fs::write(&tmp, serde_json::to_vec(&NodeFile { node_id })?)?;
        fs::rename(tmp, path)
    }

    /// Records a chat accepted for sending.
    pub fn queued(&mut self, chat: &QueuedChat) -> io::Result<()> {
        write_line(&mut self.outbox, &OutboxRecord::Queued(chat.clone()))
    }

    /// Records a chat's end: `delivered` or `failed: why`.
    pub fn done(&mut self, id: MessageId, outcome: &str) -> io::Result<()> {
        let record = OutboxRecord::Done {
            id,
            outcome: outcome.to_string(),
        };
        write_line(&mut self.outbox, &record)
    }

    /// Appends a chat to the history.
    pub fn history(&mut self, entry: &HistoryEntry) -> io::Result<()> {
        write_line(&mut self.history, entry)
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// One whole line per write: a crash leaves at most one torn line, the last.
fn write_line(file: &mut File, record: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    file.write_all(&line)
}

/// The non-empty lines of a file (none if it does not exist), numbered from 1. Invalid
/// UTF-8 is reported and skipped like any unreadable line.
fn read_lines(path: &Path, warnings: &mut Vec<String>) -> io::Result<Vec<(usize, String)>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut lines = Vec::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        match String::from_utf8(buf.clone()) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => lines.push((line_no, text.trim_end().to_string())),
            Err(_) => warnings.push(format!(
                "{}:{line_no}: unreadable line skipped (not UTF-8)",
                path.display()
            )),
        }
    }
    Ok(lines)
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

    fn chat(id: u64) -> QueuedChat {
        QueuedChat {
            id,
            to: "127.0.0.1:9001".into(),
            text: format!("text {id}"),
            sent_at_ms: id,
        }
    }

    #[test]
    fn pending_chats_survive_a_reopen_and_done_ones_do_not() {
        let dir = temp_dir("reopen");
        {
            let (mut store, recovered) = Store::open(&dir).unwrap();
            assert!(recovered.outbox.is_empty() && recovered.node_id.is_none());
            store.save_node_id(77).unwrap();
            for id in 1..=5 {
                store.queued(&chat(id)).unwrap();
            }
            store.done(2, "delivered").unwrap();
            store.done(4, "failed").unwrap();
        }
        let (_, recovered) = Store::open(&dir).unwrap();
        assert_eq!(recovered.node_id, Some(77));
        assert_eq!(recovered.outbox, vec![chat(1), chat(3), chat(5)]);
        assert!(recovered.warnings.is_empty());
        // The outbox was compacted to the three pending chats.
        let text = fs::read_to_string(dir.join("outbox.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_or_corrupt_file_is_reported_and_the_readable_part_kept() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        let good = serde_json::to_string(&OutboxRecord::Queued(chat(1))).unwrap();
        let good2 = serde_json::to_string(&OutboxRecord::Queued(chat(2))).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(good.as_bytes());
        bytes.extend_from_slice(b"\n{\"queued\": garbage\n\xff\xfe\n");
        bytes.extend_from_slice(good2.as_bytes());
        bytes.extend_from_slice(b"\n{\"queued\":{\"id\":3,\"to\""); // torn last line
        fs::write(dir.join("outbox.jsonl"), bytes).unwrap();
        fs::write(dir.join("node.json"), "not json").unwrap();
        fs::write(dir.join("history.jsonl"), "{\"dir\":\"in\"}\n").unwrap();
        let (_, recovered) = Store::open(&dir).unwrap();
        assert_eq!(recovered.outbox, vec![chat(1), chat(2)]);
        assert_eq!(recovered.node_id, None);
        assert_eq!(recovered.warnings.len(), 5, "{:?}", recovered.warnings);
        assert!(recovered
            .warnings
            .iter()
            .any(|w| w.contains("outbox.jsonl:2")));
        assert!(recovered.warnings.iter().any(|w| w.contains("not UTF-8")));
        fs::remove_dir_all(dir).unwrap();
    }
}
