//! The Console's chat lines on their hot path: the lines of one mailbox turn collected for
//! one write (`ChatBatch`), and each peer's name and rendered `name (address)` kept so that a
//! chat line needs no formatting or allocation (`KnownNames`). Plain structs, no actor.

use std::collections::HashMap;

use super::look::{push_wrapped, Look};
use super::render;
use crate::peer::PeerAddr;

/// Chat lines waiting to be printed at the end of the Console's mailbox turn (one `write` for
/// them all), and what makes a line without allocating: the time stamp formatted once per
/// second, each sender's `name (address)` formatted once.
#[derive(Default)]
pub(super) struct ChatBatch {
    /// Lines joined by `\n`, without the last line end.
    pub(super) lines: String,
    /// One line before wrapping (a terminal's width).
    line: String,
    /// The flush of `lines` is scheduled in this turn.
    pub(super) scheduled: bool,
    /// The screen's width, asked once per batch.
    pub(super) width: Option<usize>,
    /// The Unix second `stamp` is for, and the stamp.
    second: u64,
    stamp: String,
    /// The last line's sender, its name and `name (address)`: a stream from one peer skips
    /// the lookup in [`KnownNames`].
    last: Option<PeerAddr>,
    last_name: String,
    last_sender: String,
}

/// Peers remembered by [`KnownNames`]; past this the memory starts again.
const SENDERS_KEPT: usize = 4096;

/// Per peer, its name as last heard and, once a chat from it was shown under that name, its
/// `name (address)` as a chat line shows it: one map and one allocation per peer (the name
/// and the line prefix in one string), as a chat from a new peer is on the hot path.
#[derive(Default)]
pub(super) struct KnownNames {
    peers: HashMap<PeerAddr, KnownName>,
    /// The peer and name `note` wrote last, while `peers` holds them: a stream of chats
    /// from one peer skips the lookup. Cleared by any other write to `peers`.
    last_noted: Option<(PeerAddr, String)>,
}

/// A name, followed in the same string by its `name (address)` once rendered.
struct KnownName {
    text: Box<str>,
    name_len: usize,
}

impl KnownName {
    fn name(&self) -> &str {
        &self.text[..self.name_len]
    }

    /// Empty until a chat line needed it.
    fn shown(&self) -> &str {
        &self.text[self.name_len..]
    }
}

impl KnownNames {
    /// The name last heard for `peer`.
    pub(super) fn get(&self, peer: &PeerAddr) -> Option<&str> {
        self.peers.get(peer).map(KnownName::name)
    }

    /// A name heard from `peer` (an empty one is not noted). Checked first: a stream of
    /// chats from one peer must not hash or allocate per chat.
    pub(super) fn note(&mut self, peer: &PeerAddr, name: &str) {
        if name.is_empty() || matches!(&self.last_noted, Some((p, n)) if p == peer && n == name) {
            return;
        }
        self.insert(*peer, name);
        match &mut self.last_noted {
            Some((p, n)) => {
                *p = *peer;
                n.clear();
                n.push_str(name);
            }
            None => self.last_noted = Some((*peer, name.to_string())),
        }
    }

    /// `peer` is called `name` now (its rendered line goes if the name changed).
    pub(super) fn insert(&mut self, peer: PeerAddr, name: &str) {
        if self.get(&peer) == Some(name) {
            return;
        }
        self.last_noted = None;
        if self.peers.len() >= SENDERS_KEPT && !self.peers.contains_key(&peer) {
            self.peers.clear();
        }
        let known = KnownName {
            text: name.into(),
            name_len: name.len(),
        };
        self.peers.insert(peer, known);
    }

    pub(super) fn remove(&mut self, peer: &PeerAddr) {
        self.last_noted = None;
        self.peers.remove(peer);
    }

    /// Puts `name (address)` for a chat of `peer` under `name` into `out`, rendered once per
    /// peer and name. A chat under another name than the one known (an empty name, which the
    /// Console does not note) is rendered each time and not kept.
    fn push_sender(&mut self, peer: &PeerAddr, name: &str, look: &Look, out: &mut String) {
        if !self.peers.contains_key(peer) {
            self.insert(*peer, name);
        }
        match self.peers.get_mut(peer) {
            Some(known) if known.name() == name => {
                if known.shown().is_empty() {
                    let mut text = String::from(name);
                    text.push_str(&render::sender(name, peer, look));
                    known.text = text.into_boxed_str();
                }
                out.push_str(known.shown());
            }
            _ => out.push_str(&render::sender(name, peer, look)),
        }
    }
}

impl ChatBatch {
    /// The `[HH:MM:SS]` for now, formatted only when the second changed.
    pub(super) fn refresh_stamp(&mut self, look: &Look) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.second || self.stamp.is_empty() {
            self.second = now;
            let time = chrono::Local::now().format("%H:%M:%S").to_string();
            self.stamp = render::stamp(&time, look);
        }
    }

    /// Adds a chat's line (the first of a batch also sets the batch's width and time).
    pub(super) fn add(
        &mut self,
        names: &mut KnownNames,
        from: &PeerAddr,
        name: &str,
        text: &str,
        look: &Look,
    ) {
        if self.last != Some(*from) || self.last_name != name {
            self.last = Some(*from);
            self.last_name.clear();
            self.last_name.push_str(name);
            self.last_sender.clear();
            names.push_sender(from, name, look, &mut self.last_sender);
        }
        self.line.clear();
        render::push_chat_line(&mut self.line, &self.stamp, &self.last_sender, text);
        if !self.lines.is_empty() {
            self.lines.push('\n');
        }
        push_wrapped(&mut self.lines, &self.line, self.width);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NodeEvent;

    /// One map holds both a peer's name (for prompts) and its rendered chat prefix: a new
    /// name renders anew, and a chat under an empty name leaves the known name alone.
    #[test]
    fn known_names_keep_the_name_and_render_the_prefix_per_name() {
        let look = Look::plain();
        let peer: PeerAddr = "127.0.0.1:9000".parse().unwrap();
        let mut names = KnownNames::default();
        let mut out = String::new();
        names.insert(peer, "bob");
        names.push_sender(&peer, "bob", &look, &mut out);
        assert_eq!(out, render::sender("bob", &peer, &look));
        assert_eq!(names.get(&peer), Some("bob"));
        out.clear();
        names.push_sender(&peer, "", &look, &mut out);
        assert_eq!(out, render::sender("", &peer, &look));
        assert_eq!(names.get(&peer), Some("bob"), "an empty name is not noted");
        names.insert(peer, "rob");
        out.clear();
        names.push_sender(&peer, "rob", &look, &mut out);
        assert_eq!(out, render::sender("rob", &peer, &look));
        names.remove(&peer);
        assert_eq!(names.get(&peer), None);
        // A noted name stays noted: a later write (here the map starting again when full)
        // ends the shortcut that skips the lookup.
        names.note(&peer, "bob");
        for n in 0..SENDERS_KEPT as u16 {
            let other = PeerAddr::from(std::net::SocketAddr::from(([127, 0, 0, 2], n)));
            names.push_sender(&other, "", &look, &mut out);
        }
        assert_eq!(names.get(&peer), None, "the map started again");
        names.note(&peer, "bob");
        assert_eq!(names.get(&peer), Some("bob"));
    }

    /// The batched hot path prints exactly what `render::event` prints for a chat.
    #[test]
    fn batched_chat_lines_are_the_event_lines() {
        for look in [Look::plain(), Look::coloured()] {
            let mut batch = ChatBatch::default();
            let mut names = KnownNames::default();
            batch.refresh_stamp(&look);
            let from: PeerAddr = "127.0.0.1:9000".parse().unwrap();
            let other: PeerAddr = "127.0.0.1:9001".parse().unwrap();
            batch.add(&mut names, &from, "bob", "hi \u{1b}[2J", &look);
            batch.add(&mut names, &other, "bоb", "two", &look);
            // A renamed sender is shown under its new name, in a row or not.
            batch.add(&mut names, &from, "robert", "three", &look);
            batch.add(&mut names, &from, "robert", "four", &look);
            batch.add(&mut names, &from, "rob", "five", &look);
            let time = chrono::DateTime::from_timestamp(batch.second as i64, 0)
                .unwrap()
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string();
            let expected: Vec<String> = [
                (from, "bob", "hi \u{1b}[2J"),
                (other, "bоb", "two"),
                (from, "robert", "three"),
                (from, "robert", "four"),
                (from, "rob", "five"),
            ]
            .into_iter()
            .map(|(from, name, text)| {
                let event = NodeEvent::ChatReceived {
                    from,
                    name: name.into(),
                    id: 1,
                    text: text.into(),
                    sent_at_ms: 0,
                };
                render::event(&event, &look, &time)
            })
            .collect();
            assert_eq!(batch.lines, expected.join("\n"));
            assert!(batch.lines.contains("\\u{1b}[2J"));
        }
    }
}
