//! Reading the data directory at start-up: the outbox whole (it is capped), the history
//! from its tail only, every line checked and a bad one skipped with a warning.

use super::*;

pub(super) struct LoadedOutbox {
    pub(super) pending: Vec<QueuedChat>,
    /// Bytes of the file as read.
    pub(super) file_bytes: u64,
    /// Some ids were out of range and given new ones: the file must be rewritten.
    pub(super) renumbered: bool,
}

/// Reads the outbox line by line (never whole): the chats `queued` without a later `done`.
pub(super) fn load_outbox(path: &Path, warnings: &mut Vec<String>) -> io::Result<LoadedOutbox> {
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
    let mut replay = OutboxReplay::default();
    for_each_line(file, |line_no, line| {
        match outbox_record(line) {
            Ok(record) => replay.apply(record),
            Err(why) => warnings.push(skipped_line(path, line_no, &why)),
        }
        Ok(())
    })?;
    let highest_id = replay.highest_id;
    let mut pending = replay.pending();
    let renumbered = renumber_out_of_range(&mut pending, highest_id, path, warnings);
    Ok(LoadedOutbox {
        pending,
        file_bytes,
        renumbered,
    })
}

/// The outbox's records played in file order: what is left is what still waits.
#[derive(Default)]
struct OutboxReplay {
    /// In the order queued; `None` where a chat was done or queued again later.
    chats: Vec<Option<QueuedChat>>,
    /// Where each waiting chat sits in `chats`.
    index: HashMap<MessageId, usize>,
    /// The highest id in range seen, done or not: new ids must stay above it.
    highest_id: MessageId,
}

impl OutboxReplay {
    fn apply(&mut self, record: OutboxRecord) {
        match record {
            OutboxRecord::Queued(chat) => {
                if chat.id <= MAX_MESSAGE_ID {
                    self.highest_id = self.highest_id.max(chat.id);
                }
                if let Some(old) = self.index.insert(chat.id, self.chats.len()) {
                    self.chats[old] = None; // Queued twice: the later record stands.
                }
                self.chats.push(Some(chat));
            }
            OutboxRecord::Done { id, .. } => {
                if let Some(at) = self.index.remove(&id) {
                    self.chats[at] = None;
                }
            }
        }
    }

    /// The chats still waiting, in the order queued.
    fn pending(self) -> Vec<QueuedChat> {
        self.chats.into_iter().flatten().collect()
    }
}

/// One line of the outbox, or why it cannot be read.
fn outbox_record(line: &[u8]) -> Result<OutboxRecord, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    serde_json::from_str::<OutboxRecord>(text).map_err(|err| err.to_string())
}

/// The warning for a line skipped; `for_each_line` numbers an overlong line `usize::MAX`.
fn skipped_line(path: &Path, line_no: usize, why: &str) -> String {
    if line_no == usize::MAX {
        format!(
            "{}: a line over {MAX_LINE_BYTES} bytes skipped ({why})",
            path.display()
        )
    } else {
        format!(
            "{}:{line_no}: unreadable line skipped ({why})",
            path.display()
        )
    }
}

/// Gives each chat whose id is out of range a new one, and says whether any was renumbered.
fn renumber_out_of_range(
    pending: &mut [QueuedChat],
    highest_id: MessageId,
    path: &Path,
    warnings: &mut Vec<String>,
) -> bool {
    // Ids above the range are corrupt; they get new ones above every id used so far (the
    // clock's included), so the next id never wraps and no peer has seen the new one.
    let mut next_id = highest_id.max(now_ms().saturating_mul(1000));
    let mut renumbered = false;
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
    renumbered
}

/// The last entries of the history, reading at most `history_tail_bytes` from the end of
/// `history.jsonl` and, if that is shorter, of `history.1.jsonl` before it.
pub(super) fn read_history_tail(
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

pub(super) struct Tail {
    /// Whole lines only.
    pub(super) bytes: Vec<u8>,
    /// The tail is the whole file.
    pub(super) whole: bool,
}

/// The last at most `max_bytes` of a file, from the first line that starts in them.
pub(super) fn read_tail(path: &Path, max_bytes: u64) -> io::Result<Option<Tail>> {
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
pub(super) fn for_each_line(
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

pub(super) fn finish_line(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: MessageId, text: &str) -> OutboxRecord {
        OutboxRecord::Queued(QueuedChat {
            id,
            to: "127.0.0.1:9001".into(),
            text: text.into(),
            sent_at_ms: id,
        })
    }

    fn done(id: MessageId) -> OutboxRecord {
        OutboxRecord::Done {
            id,
            outcome: "delivered".into(),
        }
    }

    #[test]
    fn replay_keeps_waiting_chats_in_order_the_later_of_two_queued_and_the_highest_id() {
        let mut replay = OutboxReplay::default();
        for record in [
            queued(1, "one"),
            queued(2, "two"),
            queued(3, "three"),
            done(2),
            queued(1, "one again"),
            done(9),
            queued(MAX_MESSAGE_ID + 1, "out of range"),
        ] {
            replay.apply(record);
        }
        assert_eq!(replay.highest_id, 3);
        let waiting: Vec<(MessageId, String)> = replay
            .pending()
            .into_iter()
            .map(|chat| (chat.id, chat.text))
            .collect();
        assert_eq!(
            waiting,
            vec![
                (3, "three".to_string()),
                (1, "one again".to_string()),
                (MAX_MESSAGE_ID + 1, "out of range".to_string()),
            ]
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_or_not_a_record_says_why() {
        assert_eq!(outbox_record(&[0xff, 0xfe]), Err("not UTF-8".to_string()));
        assert!(outbox_record(b"{\"nonsense\":1}").is_err());
        assert_eq!(
            outbox_record(br#"{"done":{"id":7,"outcome":"x"}}"#),
            Ok(OutboxRecord::Done {
                id: 7,
                outcome: "x".into()
            })
        );
    }
}
