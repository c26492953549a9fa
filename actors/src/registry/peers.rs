//! The peer table: every peer this node knows (its name, when it was last heard) and the
//! Session serving each connected one, with the rule that keeps one connection per pair of
//! nodes. A plain struct owned by the Registry; `S` is how a Session is reached
//! (`Addr<Session>` in the node, a number in the tests).
//!
//! Peers are keyed by [`TableKey`] alone: when peers become public keys with several
//! addresses (issue 12, stage B), that type and `LiveSession::peer` are what change. Sessions
//! already carry the key their peer proved ([`PeerKey`]): the one-connection rule, and knowing
//! ourselves, go by it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::SystemTime;

use crate::key::PeerKey;
use crate::peer::{PeerAddr, PeerInfo, SessionId};
use crate::session::Direction;
use crate::wire::PeerEntry;

/// What identifies a peer in the table, the outbox and the events: today its listening
/// address.
pub type TableKey = PeerAddr;

/// Most entries in one `peers` frame (docs/protocol.md, section 6.2).
pub const PEERS_PER_FRAME: usize = 256;

/// What the node knows of one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerRecord {
    pub(crate) name: Option<String>,
    /// The key its last session proved or, until one did, the key it was introduced with
    /// (a `peers` entry: a claim of the peer that sent it).
    pub(crate) key: Option<PeerKey>,
    /// It said it does not listen (a one-shot sender): never passed on in `peers`.
    pub(crate) one_shot: bool,
    /// The Session serving it, if connected.
    pub(crate) session: Option<SessionId>,
    pub(crate) last_seen: Option<SystemTime>,
}

/// A Session that has registered.
pub(crate) struct LiveSession<S> {
    pub(crate) handle: S,
    pub(crate) peer: TableKey,
    /// The key the peer proved in the handshake.
    pub(crate) key: PeerKey,
    pub(crate) direction: Direction,
    /// The peer said it does not listen (`listen_port` 0).
    pub(crate) one_shot: bool,
}

/// One connection as the duplicate rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Connection {
    /// The key the node at the other end proved.
    pub(crate) key: PeerKey,
    /// True if this node opened it.
    pub(crate) outbound: bool,
}

/// What becomes of a connection registered while another serves the same key or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The existing one stays; the newcomer is refused for this reason.
    KeepExisting(&'static str),
    /// The newcomer takes over; the existing one is closed for this reason.
    Replace(&'static str),
}

/// Refusal of a connection from another key at the address of a connected peer.
pub(crate) const ADDRESS_TAKEN: &str = "another key is connected from this address";

/// Two connections, the newcomer's and one already serving the same key or address
/// (docs/protocol.md, "One session per key"):
/// - another key never evicts anyone: the newcomer is refused, whatever it claims;
/// - the same key, opened by the same side: the peer restarted or lost its connection, so
///   the new one replaces the old;
/// - the same key, opened by opposite sides (both dialed at once): the connection dialed by
///   the node with the lower key survives. Both ends compute the same answer.
pub(crate) fn settle_duplicate(me: PeerKey, existing: Connection, newcomer: Connection) -> Verdict {
    if existing.key != newcomer.key {
        return Verdict::KeepExisting(ADDRESS_TAKEN);
    }
    if existing.outbound == newcomer.outbound {
        return Verdict::Replace("replaced by a new connection");
    }
    let opener = |c: Connection| if c.outbound { me } else { c.key };
    if opener(existing) <= opener(newcomer) {
        Verdict::KeepExisting("duplicate connection")
    } else {
        Verdict::Replace("duplicate connection")
    }
}

/// What registering a Session did.
pub(crate) enum Admission<S> {
    /// Refused, for this reason: the node already has its one connection to that key, or
    /// another key is connected from that address.
    Refused(&'static str),
    /// Registered. `replaced` is the Session it took over from, to close with the reason.
    Admitted {
        /// The peer had a Session already (this is no new connection to report).
        was_connected: bool,
        replaced: Option<(SessionId, LiveSession<S>, &'static str)>,
    },
}

/// Every known peer and the live Sessions (see the module docs).
pub(crate) struct PeerTable<S> {
    me: PeerKey,
    listen_port: u16,
    bind: IpAddr,
    peers: BTreeMap<TableKey, PeerRecord>,
    sessions: HashMap<SessionId, LiveSession<S>>,
    /// Sessions that were live when the Registry restarted and have not registered again.
    rejoining: HashMap<SessionId, LiveSession<S>>,
    /// IPs we were reached at: with our port, they are us.
    local_ips: HashSet<IpAddr>,
    /// Addresses that turned out to be ourselves.
    self_addrs: HashSet<PeerAddr>,
}

impl<S> PeerTable<S> {
    pub(crate) fn new(me: PeerKey, listen_port: u16, bind: IpAddr) -> Self {
        PeerTable {
            me,
            listen_port,
            bind,
            peers: BTreeMap::new(),
            sessions: HashMap::new(),
            rejoining: HashMap::new(),
            local_ips: HashSet::new(),
            self_addrs: HashSet::new(),
        }
    }

    pub(crate) fn is_self(&self, addr: &PeerAddr) -> bool {
        if self.self_addrs.contains(addr) {
            return true;
        }
        addr.port() == self.listen_port
            && (addr.ip().is_loopback()
                || addr.ip().is_unspecified()
                || addr.ip() == self.bind
                || self.local_ips.contains(&addr.ip()))
    }

    /// Our own IP on some connection: with our port, it is us.
    pub(crate) fn note_local_ip(&mut self, ip: IpAddr) {
        self.local_ips.insert(ip);
    }

    /// `addr` turned out to be this node: never a peer.
    pub(crate) fn mark_self(&mut self, addr: PeerAddr) {
        self.self_addrs.insert(addr);
        self.peers.remove(&addr);
    }

    /// Makes `peer` known (no name yet) if it is not.
    pub(crate) fn know(&mut self, peer: TableKey) {
        self.peers.entry(peer).or_default();
    }

    /// Peers from another peer's `peers` frame, each with the key it was introduced with;
    /// answers the ones new to us. A key already known for the address is kept.
    pub(crate) fn learn(&mut self, addr: TableKey, name: Option<String>, key: PeerKey) -> bool {
        match self.peers.get_mut(&addr) {
            Some(record) => {
                if record.name.is_none() {
                    record.name = name;
                }
                record.key.get_or_insert(key);
                false
            }
            None => {
                self.peers.insert(
                    addr,
                    PeerRecord {
                        name,
                        key: Some(key),
                        ..PeerRecord::default()
                    },
                );
                true
            }
        }
    }

    /// Something came from `peer` now.
    pub(crate) fn touch(&mut self, peer: &TableKey) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.last_seen = Some(SystemTime::now());
        }
    }

    pub(crate) fn name_of(&self, peer: &TableKey) -> String {
        self.peers
            .get(peer)
            .and_then(|record| record.name.clone())
            .unwrap_or_default()
    }

    /// Every known peer.
    pub(crate) fn keys(&self) -> Vec<TableKey> {
        self.peers.keys().copied().collect()
    }

    /// The peers a Session serves now.
    pub(crate) fn connected(&self) -> Vec<TableKey> {
        let connected = self.peers.iter().filter(|(_, r)| r.session.is_some());
        connected.map(|(peer, _)| *peer).collect()
    }

    /// The Session serving `peer`, if it is connected.
    pub(crate) fn session_for(&self, peer: &TableKey) -> Option<(SessionId, &LiveSession<S>)> {
        let id = self.peers.get(peer)?.session?;
        self.sessions.get(&id).map(|live| (id, live))
    }

    pub(crate) fn session(&self, id: SessionId) -> Option<&LiveSession<S>> {
        self.sessions.get(&id)
    }

    /// Registered and not ended (it may be lingering after a disconnect).
    pub(crate) fn is_live(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    pub(crate) fn has_sessions(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Every Session that may still talk to us: registered, or rejoining after a restart.
    pub(crate) fn all_sessions(&self) -> impl Iterator<Item = (&SessionId, &LiveSession<S>)> {
        self.sessions.iter().chain(self.rejoining.iter())
    }

    /// A Session of the old incarnation that has not registered again serves `peer`.
    pub(crate) fn is_rejoining(&self, peer: &TableKey) -> bool {
        self.rejoining.values().any(|live| live.peer == *peer)
    }

    /// The Session registers again after a restart: answers whether it was waited for.
    pub(crate) fn rejoined(&mut self, id: SessionId) -> bool {
        self.rejoining.remove(&id).is_some()
    }

    /// Registers Session `id` for `live.peer`, unless the duplicate rule keeps another one.
    pub(crate) fn admit(
        &mut self,
        id: SessionId,
        live: LiveSession<S>,
        name: String,
    ) -> Admission<S> {
        let mut replaced = None;
        if let Some((rival, existing)) = self.rival_of(&live) {
            match settle_duplicate(self.me, existing, connection(&live)) {
                Verdict::KeepExisting(reason) => return Admission::Refused(reason),
                Verdict::Replace(reason) => {
                    replaced = self.detach(rival).map(|old| (rival, old, reason));
                }
            }
        }
        let peer = live.peer;
        let (key, one_shot) = (live.key, live.one_shot);
        self.sessions.insert(id, live);
        let record = self.peers.entry(peer).or_default();
        let was_connected = record.session.is_some();
        record.session = Some(id);
        record.key = Some(key);
        record.one_shot = one_shot;
        record.name = Some(name);
        record.last_seen = Some(SystemTime::now());
        Admission::Admitted {
            was_connected,
            replaced,
        }
    }

    /// A current Session to the same key or the same address as `newcomer`.
    fn rival_of(&self, newcomer: &LiveSession<S>) -> Option<(SessionId, Connection)> {
        let serving = |id: SessionId, live: &LiveSession<S>| {
            self.peers
                .get(&live.peer)
                .is_some_and(|record| record.session == Some(id))
        };
        self.sessions
            .iter()
            .filter(|(_, live)| live.key == newcomer.key || live.peer == newcomer.peer)
            .find(|(id, live)| serving(**id, live))
            .map(|(id, live)| (*id, connection(live)))
    }

    /// Forgets Session `id`; its peer, if it served it, is disconnected.
    fn detach(&mut self, id: SessionId) -> Option<LiveSession<S>> {
        let live = self.sessions.remove(&id)?;
        if let Some(record) = self.peers.get_mut(&live.peer) {
            if record.session == Some(id) {
                record.session = None;
            }
        }
        Some(live)
    }

    /// `peer` is disconnected from now on (its Session is told to close by the caller, and
    /// stays live until it has). Answers that Session.
    pub(crate) fn disconnect(&mut self, peer: &TableKey) -> Option<SessionId> {
        self.peers.get_mut(peer)?.session.take()
    }

    /// Session `id` has ended. Answers it, if it had registered, and whether it served its
    /// peer until now (a lingering or replaced one did not).
    pub(crate) fn closed(&mut self, id: SessionId) -> Option<(LiveSession<S>, bool)> {
        if let Some(orphan) = self.rejoining.remove(&id) {
            // Connected before a Registry restart, ended before it could register again:
            // its peer was connected through it.
            if let Some(record) = self.peers.get_mut(&orphan.peer) {
                if record.session.is_none() {
                    record.session = Some(id);
                }
            }
            self.sessions.insert(id, orphan);
        }
        let live = self.sessions.remove(&id)?;
        let record = self.peers.get_mut(&live.peer);
        let current = match record {
            Some(record) if record.session == Some(id) => {
                record.session = None;
                true
            }
            _ => false,
        };
        Some((live, current))
    }

    /// The Registry restarted: every live Session must register again.
    pub(crate) fn restart(&mut self) {
        for record in self.peers.values_mut() {
            record.session = None;
        }
        self.rejoining.extend(self.sessions.drain());
    }

    /// What a `peers` frame to `for_peer` lists: at most [`PEERS_PER_FRAME`] peers,
    /// connected ones first. Bounded so that the frame always fits its 64 KiB limit and a
    /// node with thousands of peers does not send each newcomer all of them.
    pub(crate) fn known_peers_for(&self, for_peer: TableKey) -> Vec<PeerEntry> {
        // A loopback address means nothing to a peer on another host.
        let remote_peer = !for_peer.ip().is_loopback();
        let worth_telling =
            |addr: &PeerAddr| *addr != for_peer && !(remote_peer && addr.ip().is_loopback());
        let connected = self.peers.iter().filter(|(_, r)| r.session.is_some());
        let others = self.peers.iter().filter(|(_, r)| r.session.is_none());
        connected
            .chain(others)
            .filter(|(addr, record)| worth_telling(addr) && !record.one_shot)
            // Only peers whose key is known are passed on: an entry carries the key.
            .filter_map(|(addr, record)| record.key.map(|key| (addr, record, key)))
            .take(PEERS_PER_FRAME)
            .map(|(addr, record, key)| PeerEntry {
                addr: addr.to_string(),
                name: record.name.clone().unwrap_or_default(),
                key,
            })
            .collect()
    }

    /// Menu 2: every known peer, with how many chats wait for it.
    pub(crate) fn list(&self, waiting: impl Fn(&TableKey) -> usize) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|(addr, record)| PeerInfo {
                addr: *addr,
                name: record.name.clone(),
                connected: record.session.is_some(),
                last_seen: record.last_seen,
                waiting: waiting(addr),
            })
            .collect()
    }
}

fn connection<S>(live: &LiveSession<S>) -> Connection {
    Connection {
        key: live.key,
        outbound: matches!(live.direction, Direction::Outbound { .. }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: PeerKey = key(50);

    const fn key(n: u8) -> PeerKey {
        let mut bytes = [0u8; 32];
        bytes[0] = n;
        PeerKey::from_bytes(bytes)
    }

    fn addr(port: u16) -> PeerAddr {
        PeerAddr::from_ip_port([10, 0, 0, 1].into(), port)
    }

    fn ours(n: u8) -> Connection {
        Connection {
            key: key(n),
            outbound: true,
        }
    }

    fn theirs(n: u8) -> Connection {
        Connection {
            key: key(n),
            outbound: false,
        }
    }

    fn live(handle: u32, peer: PeerAddr, n: u8, outbound: bool) -> LiveSession<u32> {
        let direction = if outbound {
            Direction::Outbound { dialed: peer }
        } else {
            Direction::Inbound
        };
        LiveSession {
            handle,
            peer,
            key: key(n),
            direction,
            one_shot: false,
        }
    }

    fn table() -> PeerTable<u32> {
        PeerTable::new(ME, 9000, [0, 0, 0, 0].into())
    }

    #[test]
    fn the_connection_opened_by_the_lower_key_survives() {
        // The peer (key 70) is higher: ours (opened by 50) wins, whichever came first.
        assert_eq!(
            settle_duplicate(ME, ours(70), theirs(70)),
            Verdict::KeepExisting("duplicate connection")
        );
        assert_eq!(
            settle_duplicate(ME, theirs(70), ours(70)),
            Verdict::Replace("duplicate connection")
        );
        // The peer (key 20) is lower: its connection wins.
        assert_eq!(
            settle_duplicate(ME, theirs(20), ours(20)),
            Verdict::KeepExisting("duplicate connection")
        );
        assert_eq!(
            settle_duplicate(ME, ours(20), theirs(20)),
            Verdict::Replace("duplicate connection")
        );
    }

    #[test]
    fn both_ends_keep_the_same_connection() {
        // Seen from the peer (key 70), our outbound connection is its inbound one.
        for peer in [20, 70] {
            let here = settle_duplicate(ME, ours(peer), theirs(peer));
            let there = settle_duplicate(key(peer), theirs(50), ours(50));
            assert_eq!(here, there, "peer {peer}");
        }
    }

    #[test]
    fn the_same_key_from_the_same_opener_replaces_the_old_connection() {
        // The peer restarted, or lost its connection and opened a new one: it proved the
        // same key, so the new connection is the one to keep.
        for (old, new) in [(ours(70), ours(70)), (theirs(70), theirs(70))] {
            assert_eq!(
                settle_duplicate(ME, old, new),
                Verdict::Replace("replaced by a new connection")
            );
        }
    }

    #[test]
    fn another_key_never_evicts_a_connected_peer() {
        for (old, new) in [(ours(70), theirs(71)), (theirs(70), theirs(10))] {
            assert_eq!(
                settle_duplicate(ME, old, new),
                Verdict::KeepExisting(ADDRESS_TAKEN)
            );
        }
    }

    #[test]
    fn registering_connects_the_peer_and_a_duplicate_is_refused() {
        let mut table = table();
        let peer = addr(9001);
        let Admission::Admitted {
            was_connected,
            replaced,
        } = table.admit(1, live(1, peer, 70, true), "bob".into())
        else {
            panic!("first connection refused");
        };
        assert!(!was_connected && replaced.is_none());
        assert_eq!(table.session_for(&peer).map(|(id, _)| id), Some(1));
        assert_eq!(table.name_of(&peer), "bob");
        // Bob's own connection to us: ours (node 50 < 70) stays.
        assert!(matches!(
            table.admit(2, live(2, peer, 70, false), "bob".into()),
            Admission::Refused("duplicate connection")
        ));
        assert_eq!(table.session_for(&peer).map(|(id, _)| id), Some(1));
    }

    #[test]
    fn a_winning_newcomer_replaces_the_rival_session() {
        let mut table = table();
        let peer = addr(9001);
        table.admit(1, live(1, peer, 20, true), "carol".into());
        let Admission::Admitted {
            was_connected,
            replaced,
        } = table.admit(2, live(2, peer, 20, false), "carol".into())
        else {
            panic!("carol's connection should win");
        };
        // The replaced Session no longer served the peer when the newcomer took over.
        assert!(!was_connected);
        let (old_id, old, reason) = replaced.expect("a rival");
        assert_eq!((old_id, old.handle, reason), (1, 1, "duplicate connection"));
        assert!(!table.is_live(1));
        assert_eq!(table.session_for(&peer).map(|(id, _)| id), Some(2));
    }

    #[test]
    fn a_lingering_session_is_no_rival() {
        let mut table = table();
        let peer = addr(9001);
        table.admit(1, live(1, peer, 70, false), "bob".into());
        assert_eq!(table.disconnect(&peer), Some(1));
        assert!(table.is_live(1), "still reading acks after its bye");
        let admitted = table.admit(2, live(2, peer, 70, true), "bob".into());
        assert!(matches!(
            admitted,
            Admission::Admitted {
                replaced: None,
                was_connected: false
            }
        ));
        // The old one ends: the peer stays connected through the new one.
        let (_, current) = table.closed(1).expect("was registered");
        assert!(!current);
        assert_eq!(table.connected(), vec![peer]);
    }

    #[test]
    fn a_restart_keeps_the_peers_and_waits_for_the_sessions() {
        let mut table = table();
        let (bob, carol) = (addr(9001), addr(9002));
        table.admit(1, live(1, bob, 70, true), "bob".into());
        table.admit(2, live(2, carol, 71, true), "carol".into());
        table.restart();
        assert!(table.connected().is_empty());
        assert!(table.is_rejoining(&bob));
        assert_eq!(table.all_sessions().count(), 2);
        assert!(table.rejoined(1));
        table.admit(1, live(1, bob, 70, true), "bob".into());
        // Carol's Session ends before it could register again: it was her connection.
        let (live, current) = table.closed(2).expect("was rejoining");
        assert_eq!((live.peer, current), (carol, true));
        assert_eq!(table.connected(), vec![bob]);
        assert_eq!(table.keys(), vec![bob, carol]);
    }

    #[test]
    fn own_addresses_are_never_peers() {
        let mut table = table();
        assert!(table.is_self(&PeerAddr::from_ip_port([127, 0, 0, 1].into(), 9000)));
        assert!(!table.is_self(&addr(9000)));
        table.note_local_ip([10, 0, 0, 1].into());
        assert!(table.is_self(&addr(9000)));
        table.know(addr(7000));
        table.mark_self(addr(7000));
        assert!(table.is_self(&addr(7000)));
        assert!(table.keys().is_empty());
    }

    #[test]
    fn a_peers_frame_lists_connected_peers_first_and_not_the_recipient() {
        let mut table = table();
        for port in 1..=300u16 {
            let mut bytes = [0u8; 32];
            bytes[..2].copy_from_slice(&port.to_be_bytes());
            let mut session = live(u32::from(port), addr(port), 0, true);
            session.key = PeerKey::from_bytes(bytes);
            table.admit(u64::from(port), session, format!("p{port}"));
            if port < 300 {
                table.disconnect(&addr(port));
            }
        }
        let entries = table.known_peers_for(addr(1));
        assert_eq!(entries.len(), PEERS_PER_FRAME);
        assert_eq!(entries[0].addr, addr(300).to_string());
        assert!(entries
            .iter()
            .all(|entry| entry.addr != addr(1).to_string()));
        // Each entry carries the key its peer proved.
        assert_eq!(entries[0].key.as_bytes()[..2], 300u16.to_be_bytes());
    }

    #[test]
    fn one_shot_senders_and_peers_without_a_key_are_not_passed_on() {
        let mut table = table();
        // Known from the outbox only: no key yet.
        table.know(addr(1));
        let mut sender = live(2, addr(2), 71, false);
        sender.one_shot = true;
        table.admit(2, sender, "script".into());
        table.admit(3, live(3, addr(3), 72, true), "carol".into());
        let entries = table.known_peers_for(addr(9));
        let addrs: Vec<&str> = entries.iter().map(|e| e.addr.as_str()).collect();
        assert_eq!(addrs, vec![addr(3).to_string()]);
        assert_eq!(entries[0].key, key(72));
    }

    #[test]
    fn learning_names_a_peer_once_and_reports_only_new_ones() {
        let mut table = table();
        assert!(table.learn(addr(1), None, key(1)));
        assert!(!table.learn(addr(1), Some("bob".into()), key(1)));
        assert!(!table.learn(addr(1), Some("mallory".into()), key(2)));
        // The first key heard of stays.
        assert_eq!(table.known_peers_for(addr(9))[0].key, key(1));
        assert_eq!(table.name_of(&addr(1)), "bob");
        let listed = table.list(|_| 3);
        assert_eq!((listed[0].waiting, listed[0].connected), (3, false));
    }
}
