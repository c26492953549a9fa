//! What the peer table tells others: the entries of a `peers` frame and menu 2's list, both
//! read from the plain `PeerTable`, which they do not change.

use super::{addresses, PeerTable, PEERS_PER_FRAME};
use crate::key::PeerKey;
use crate::peer::{PeerAddr, PeerInfo};
use crate::wire::PeerEntry;

impl<S> PeerTable<S> {
    /// What a `peers` frame to `recipient` (reached at `at`) lists: at most
    /// [`PEERS_PER_FRAME`] entries, connected peers first, each an address that worked
    /// (`addresses::worth_passing_on`). Bounded so that the frame always fits its 64 KiB
    /// limit and a node with thousands of peers does not send each newcomer all of them.
    pub(crate) fn known_peers_for(&self, recipient: &PeerKey, at: &PeerAddr) -> Vec<PeerEntry> {
        let connected = self.peers.iter().filter(|(_, r)| r.session.is_some());
        let others = self.peers.iter().filter(|(_, r)| r.session.is_none());
        connected
            .chain(others)
            .filter(|(key, record)| *key != recipient && !record.one_shot)
            .flat_map(|(key, record)| {
                let worth = record.addrs.iter();
                let worth = worth.filter(|known| addresses::worth_passing_on(known, at));
                worth.map(move |known| PeerEntry {
                    addr: known.addr.to_string(),
                    name: record.name.as_deref().unwrap_or_default().to_string(),
                    key: *key,
                })
            })
            .take(PEERS_PER_FRAME)
            .collect()
    }

    /// Menu 2: one line per key (its other addresses folded in) and one per address no
    /// handshake has answered yet, with how many chats wait for each. Online peers first,
    /// then the rest, each part by name (any case; unnamed last), then address: this is the
    /// ONE order every listing and every peer number (`/msg N`, menu 5) uses.
    pub(crate) fn list(&self, waiting: impl Fn(&PeerAddr) -> usize) -> Vec<PeerInfo> {
        let mut listed = Vec::new();
        for (key, record) in &self.peers {
            let shown = match self.session_of(key) {
                Some((_, live)) => Some(live.peer),
                None => addresses::best(&record.addrs),
            };
            let Some(addr) = shown else { continue };
            let also = record.addrs.iter().map(|known| known.addr);
            listed.push(PeerInfo {
                addr,
                name: record.name.as_deref().map(String::from),
                connected: record.session.is_some(),
                last_seen: self.last_seen(key, record),
                waiting: record.addrs.iter().map(|known| waiting(&known.addr)).sum(),
                key: Some(*key),
                also: also.filter(|other| *other != addr).collect(),
            });
        }
        listed.extend(self.unkeyed.iter().map(|addr| PeerInfo {
            addr: *addr,
            name: None,
            connected: false,
            last_seen: None,
            waiting: waiting(addr),
            key: None,
            also: Vec::new(),
        }));
        listed.sort_by_cached_key(|peer| {
            let name = peer.name.as_deref().map(str::to_lowercase);
            (!peer.connected, name.is_none(), name, peer.addr)
        });
        listed
    }
}
