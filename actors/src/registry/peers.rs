//! The peer table: every peer this node knows, keyed by the static key it proved (or was
//! introduced with): its name, every address known for it (`addresses.rs`) and the Session
//! serving it, with the rule that keeps one connection per pair of nodes. Addresses no
//! handshake has answered yet (typed by the user, or of chats recovered from disk) wait apart
//! until a handshake there proves a key. A plain struct owned by the Registry; `S` is how a
//! Session is reached (`Addr<Session>` in the node, a number in the tests). Beside it:
//! `peers/duplicate.rs` (the one-connection rule), `peers/recent.rs` (the peer heard from
//! last), `peers/listing.rs` (what the table tells others: `peers` frames, menu 2).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::addresses::{self, KnownAddr, Learned};
use super::local_hash::LocalMap;
use crate::key::PeerKey;
use crate::peer::{PeerAddr, SessionId};

mod duplicate;
mod listing;
mod recent;
pub(crate) use duplicate::{settle_duplicate, Connection, Verdict};
use recent::Recent;

/// An address a chat was written to: the outbox keeps each chat under it (and events report
/// it), and the peer table says which key, if any, it reaches.
pub type TableKey = PeerAddr;

/// Most peers known by key (docs/limits.md): past it, a new introduction evicts a peer we
/// never had a session with, or is dropped.
pub const MAX_KNOWN_PEERS: usize = 1024;

/// Most entries in one `peers` frame (docs/protocol.md, section 6.2).
pub const PEERS_PER_FRAME: usize = 256;

/// What the node knows of one peer (one key).
#[derive(Debug, Default)]
pub(crate) struct PeerRecord {
    /// A `Box<str>`, not a `String`: 8 bytes less in each of the table's entries.
    pub(crate) name: Option<Box<str>>,
    pub(crate) addrs: Vec<KnownAddr>,
    /// It said it does not listen (a one-shot sender): never passed on, never redialed.
    pub(crate) one_shot: bool,
    /// The Session serving it, if connected.
    pub(crate) session: Option<SessionId>,
    pub(crate) last_seen: Option<SystemTime>,
    /// We had a session with it and the user has not disconnected it: after an outage it
    /// is redialed until it answers.
    pub(crate) keep_up: bool,
}

impl PeerRecord {
    /// Some address of it was dialed and proved its key.
    fn worked(&self) -> bool {
        self.addrs.iter().any(|known| known.last_worked.is_some())
    }

    /// Heard from at `at`, if that is later than what the record holds.
    pub(crate) fn seen_at(&mut self, at: Option<SystemTime>) {
        if at > self.last_seen {
            self.last_seen = at;
        }
    }
}

/// A Session that has registered.
pub(crate) struct LiveSession<S> {
    pub(crate) handle: S,
    /// The address it is known by in events: the one dialed, or the claimed one.
    pub(crate) peer: PeerAddr,
    /// The key the peer proved in the handshake.
    pub(crate) key: PeerKey,
    /// This node dialed it (then `peer` is the address dialed). A flag, not the
    /// `Direction`: the dialed address is `peer` already, and there is one entry per session
    /// (thousands: docs/performance.md).
    pub(crate) outbound: bool,
    /// The peer said it does not listen (`listen_port` 0).
    pub(crate) one_shot: bool,
    /// When its peer acked last (ms since the Unix epoch; 0: not since it registered): noted
    /// here by `PeerTable::touch_session`, in the table looked up by Session id, and written
    /// to the peer's record when the Session leaves the table (`note_seen`). Read only while
    /// it is its key's Session: a Session disconnected and lingering shows its acks once it
    /// has closed. Milliseconds, not a `SystemTime`: eight bytes per Session, not sixteen.
    pub(crate) acked_at_ms: u64,
}

impl<S> LiveSession<S> {
    /// When its peer acked last, if since it registered.
    pub(crate) fn acked_at(&self) -> Option<SystemTime> {
        (self.acked_at_ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(self.acked_at_ms))
    }
}

/// What registering a Session did.
pub(crate) enum Admission<S> {
    /// Refused, for this reason: the node already has its one connection to that key, or
    /// another key is connected from that address.
    Refused(&'static str),
    /// Registered. `replaced` is the Session it took over from, to close with the reason.
    Admitted {
        /// The key had a Session already (this is no new connection to report).
        was_connected: bool,
        replaced: Option<(SessionId, LiveSession<S>, &'static str)>,
    },
}

/// Every known peer and the live Sessions (see the module docs).
pub(crate) struct PeerTable<S> {
    me: PeerKey,
    listen_port: u16,
    bind: IpAddr,
    peers: BTreeMap<PeerKey, PeerRecord>,
    /// `last_seen` of this peer is here, not in its record (see `Recent`).
    recent: Option<Recent>,
    /// Which key each known address belongs to (each address to one key at most).
    owner: HashMap<PeerAddr, PeerKey>,
    /// Addresses no handshake has answered yet.
    unkeyed: BTreeSet<PeerAddr>,
    /// Hashed by `LocalKeyHasher`: Session ids are numbered by this node, and SipHash of one
    /// was 170 instructions per chat sent, twice (docs/performance.md, fan-out).
    sessions: LocalMap<SessionId, LiveSession<S>>,
    /// Sessions that were live when the Registry restarted and have not registered again.
    rejoining: LocalMap<SessionId, LiveSession<S>>,
    /// The Session chats to each address went to, as `session_for` found it: a fan-out
    /// sends to a thousand peers in turn, and finding each one's Session in `owner`, the
    /// `peers` tree and its record's addresses was about 800 instructions and three cache
    /// misses per chat (docs/performance.md, fan-out). Its keys are addresses the user sent
    /// to that have a live Session; a remote peer picks at most the port of its own (in its
    /// `hello`), and there are at most twice as many entries as Sessions (which the limits
    /// bound), so colliding keys cost a bounded probe, hence the local hash. Emptied
    /// whenever an address, a record's Session or a live Session changes (`routes_changed`),
    /// so an entry always names a live Session. It holds that Session's handle too: a chat
    /// sent is handed to its Session without reading the Session's entry in `sessions`,
    /// which in a fan-out is one more cache miss per chat (docs/performance.md, fan-out,
    /// ninth round).
    sending: LocalMap<PeerAddr, (SessionId, S)>,
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
            recent: None,
            owner: HashMap::new(),
            unkeyed: BTreeSet::new(),
            sessions: LocalMap::default(),
            rejoining: LocalMap::default(),
            sending: LocalMap::default(),
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
        self.routes_changed();
        self.self_addrs.insert(addr);
        self.unkeyed.remove(&addr);
        self.unbind(&addr);
    }

    /// Makes `addr` known, waiting for a handshake to say whose it is, if it is not known.
    pub(crate) fn know(&mut self, addr: PeerAddr) {
        if !self.owner.contains_key(&addr) && addresses::usable(&addr) {
            self.unkeyed.insert(addr);
        }
    }

    /// An entry of a `peers` frame from `by`: `key` listens at `addr`, a claim of `by`.
    /// An address already known for another key is not re-assigned on anyone's word;
    /// answers whether the key is new to us.
    pub(crate) fn learn(
        &mut self,
        addr: PeerAddr,
        name: Option<String>,
        key: PeerKey,
        by: &str,
    ) -> bool {
        if key == self.me || !addresses::usable(&addr) {
            return false;
        }
        self.settle();
        self.routes_changed();
        if self.owner.get(&addr).is_some_and(|owner| *owner != key) {
            return false;
        }
        let new = !self.peers.contains_key(&key);
        if new && !self.room_for_one_more() {
            return false;
        }
        let record = self.peers.entry(key).or_default();
        if record.name.is_none() {
            record.name = name.map(String::into_boxed_str);
        }
        let by = Learned::Introduced {
            by: Box::new(by.into()),
        };
        addresses::note(&mut record.addrs, addr, by, false);
        self.owner.insert(addr, key);
        self.unkeyed.remove(&addr);
        new
    }

    /// Whether one more introduced peer may be recorded: below [`MAX_KNOWN_PEERS`], or after
    /// evicting a peer we never had a session with (one nobody keeps up, not connected, with
    /// no address that worked), the one heard from longest ago first. Peers we talked to are
    /// never evicted for strangers: at the limit with only those, the introduction is dropped.
    fn room_for_one_more(&mut self) -> bool {
        if self.peers.len() < MAX_KNOWN_PEERS {
            return true;
        }
        let stranger = self
            .peers
            .iter()
            .filter(|(_, r)| r.session.is_none() && !r.keep_up && !r.worked())
            .min_by_key(|(_, r)| r.last_seen)
            .map(|(key, _)| *key);
        let Some(stranger) = stranger else {
            return false;
        };
        self.peers.remove(&stranger);
        self.owner.retain(|_, owner| *owner != stranger);
        true
    }

    /// The key `addr` was introduced with, and by whom, if that is all we know of it.
    pub(crate) fn introduced_at(&self, addr: &PeerAddr) -> Option<(PeerKey, String)> {
        let key = self.owner.get(addr)?;
        let known = self.known_addr(key, addr)?;
        match &known.learned {
            Learned::Introduced { by } => Some((*key, by.to_string())),
            _ => None,
        }
    }

    fn known_addr(&self, key: &PeerKey, addr: &PeerAddr) -> Option<&KnownAddr> {
        let record = self.peers.get(key)?;
        record.addrs.iter().find(|known| known.addr == *addr)
    }

    /// A dial to `addr`, introduced as `key`, met another key there: the introduction was
    /// false and is dropped (the key's other addresses stay).
    pub(crate) fn drop_introduction(&mut self, addr: &PeerAddr, key: &PeerKey) {
        let introduced = self.known_addr(key, addr);
        if introduced.is_some_and(|known| !known.learned.routes()) {
            self.unbind(addr);
        }
    }

    fn unbind(&mut self, addr: &PeerAddr) {
        self.routes_changed();
        if let Some(key) = self.owner.remove(addr) {
            if let Some(record) = self.peers.get_mut(&key) {
                record.addrs.retain(|known| known.addr != *addr);
            }
        }
    }

    /// The user forgot the peer at `addr` (`/forget`): its record and every address of it
    /// go, or the address alone if no handshake ever answered there. Its pinned key stays
    /// pinned (trust.rs): forgetting a peer is not trusting whoever comes next. Answers
    /// whether anything was known.
    pub(crate) fn forget(&mut self, addr: &PeerAddr) -> bool {
        self.settle();
        self.routes_changed();
        let unkeyed = self.unkeyed.remove(addr);
        let Some(key) = self.route(addr).or_else(|| self.key_at(addr)) else {
            return unkeyed;
        };
        self.owner.retain(|_, owner| *owner != key);
        self.peers.remove(&key).is_some() || unkeyed
    }

    /// A one-shot sender's Session ended: it does not listen, so nothing of it is kept
    /// (neither a peer to list nor an address to dial).
    pub(crate) fn drop_transient(&mut self, key: &PeerKey) {
        self.settle();
        self.routes_changed();
        if self.peers.get(key).is_some_and(|record| record.one_shot) {
            self.peers.remove(key);
            self.owner.retain(|_, owner| owner != key);
        }
    }

    pub(crate) fn name_of(&self, key: &PeerKey) -> String {
        self.record(key)
            .and_then(|record| record.name.as_deref())
            .unwrap_or_default()
            .to_string()
    }

    /// The record of `key`. Its `last_seen` may be stale for the peer heard from last (kept
    /// in `Recent` until settled): read that through `list`, not here.
    pub(crate) fn record(&self, key: &PeerKey) -> Option<&PeerRecord> {
        self.peers.get(key)
    }

    /// Every known key, in the table's order (`last_seen` as in `record`: not for reading).
    pub(crate) fn keys(&self) -> impl Iterator<Item = (&PeerKey, &PeerRecord)> {
        self.peers.iter()
    }

    /// The key known for `addr` however it was learned.
    pub(crate) fn key_at(&self, addr: &PeerAddr) -> Option<PeerKey> {
        self.owner.get(addr).copied()
    }

    /// The key chats to `addr` go to: only if that key's own connection stands behind the
    /// address (dialed there, or its inbound connection claimed it).
    pub(crate) fn route(&self, addr: &PeerAddr) -> Option<PeerKey> {
        self.routed_record(addr).map(|(key, _)| key)
    }

    /// The key `addr` routes to (as `route`) and its record, found once.
    fn routed_record(&self, addr: &PeerAddr) -> Option<(PeerKey, &PeerRecord)> {
        let key = self.owner.get(addr)?;
        let record = self.peers.get(key)?;
        let known = record.addrs.iter().find(|known| known.addr == *addr)?;
        known.learned.routes().then_some((*key, record))
    }

    /// The addresses chats to `key` may have been written to.
    pub(crate) fn routes_of(&self, key: &PeerKey) -> Vec<PeerAddr> {
        let Some(record) = self.peers.get(key) else {
            return Vec::new();
        };
        let routes = record.addrs.iter().filter(|known| known.learned.routes());
        routes.map(|known| known.addr).collect()
    }

    /// Where to dial `key`: the address that worked last, else the strongest one known.
    pub(crate) fn address_of(&self, key: &PeerKey) -> Option<PeerAddr> {
        addresses::best(&self.peers.get(key)?.addrs)
    }

    /// Addresses no handshake has answered yet.
    pub(crate) fn unkeyed(&self) -> impl Iterator<Item = &PeerAddr> {
        self.unkeyed.iter()
    }

    /// Whether `key` should be redialed after losing its session (see `PeerRecord`).
    pub(crate) fn keeps_up(&self, key: &PeerKey) -> bool {
        let record = self.peers.get(key);
        record.is_some_and(|record| record.keep_up && !record.one_shot)
    }

    /// The user disconnected `key`, or it said bye: no redials until it is connected again.
    pub(crate) fn let_go(&mut self, key: &PeerKey) {
        if let Some(record) = self.peers.get_mut(key) {
            record.keep_up = false;
        }
    }

    /// The keys a Session serves now.
    pub(crate) fn connected(&self) -> Vec<PeerKey> {
        let connected = self.peers.iter().filter(|(_, r)| r.session.is_some());
        connected.map(|(key, _)| *key).collect()
    }

    /// The Session serving the key `addr` routes to, if it is connected.
    pub(crate) fn session_for(&self, addr: &PeerAddr) -> Option<(SessionId, &LiveSession<S>)> {
        // The record `route` found, not a second search of the table (a `send_chat` does
        // this once per chat).
        let (_, record) = self.routed_record(addr)?;
        let id = record.session?;
        self.sessions.get(&id).map(|live| (id, live))
    }

    /// `session_for`'s Session, remembered for the next chat to `addr` (see `sending`).
    pub(crate) fn session_to_send(&mut self, addr: &PeerAddr) -> Option<SessionId>
    where
        S: Clone,
    {
        if let Some((id, _)) = self.sending.get(addr) {
            debug_assert!(
                self.sessions.contains_key(id),
                "`sending` names a live Session"
            );
            return Some(*id);
        }
        let (id, live) = self.session_for(addr)?;
        let handle = live.handle.clone();
        // Bounded by the Sessions: an address per peer, and a few of its others.
        if self.sending.len() < self.sessions.len().saturating_mul(2) {
            self.sending.insert(*addr, (id, handle));
        }
        Some(id)
    }

    /// Something `session_for` reads changed: what `sending` remembers may be wrong.
    fn routes_changed(&mut self) {
        if !self.sending.is_empty() {
            self.sending.clear();
        }
    }

    /// The Session serving `key`, if it is connected.
    pub(crate) fn session_of(&self, key: &PeerKey) -> Option<(SessionId, &LiveSession<S>)> {
        let id = self.peers.get(key)?.session?;
        self.sessions.get(&id).map(|live| (id, live))
    }

    pub(crate) fn session(&self, id: SessionId) -> Option<&LiveSession<S>> {
        self.sessions.get(&id)
    }

    /// The handle of Session `id`, which `session_to_send` gave for chats to `addr`: from
    /// `sending` when it still names that Session (its line was read for the same chats),
    /// else from the live Sessions.
    pub(crate) fn handle_to_send(&self, addr: &PeerAddr, id: SessionId) -> Option<&S> {
        match self.sending.get(addr) {
            Some((sending, handle)) if *sending == id => Some(handle),
            _ => self.sessions.get(&id).map(|live| &live.handle),
        }
    }

    /// The handle of Session `id` while it is registered, or rejoining after a restart:
    /// a Session replaced, or ended, has none.
    pub(crate) fn live_handle(&self, id: SessionId) -> Option<&S> {
        self.sessions
            .get(&id)
            .or_else(|| self.rejoining.get(&id))
            .map(|live| &live.handle)
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

    /// A Session of the old incarnation that has not registered again serves `addr`'s key.
    pub(crate) fn is_rejoining(&self, addr: &PeerAddr) -> bool {
        let key = self.route(addr);
        let serves = |live: &LiveSession<S>| live.peer == *addr || Some(live.key) == key;
        self.rejoining.values().any(serves)
    }

    /// The Session registers again after a restart: answers whether it was waited for.
    pub(crate) fn rejoined(&mut self, id: SessionId) -> bool {
        self.rejoining.remove(&id).is_some()
    }

    /// Registers Session `id` for `live.key`, unless the duplicate rule keeps another one.
    /// The address it was dialed at is verified for the key; an inbound peer's claimed one
    /// is noted as a claim.
    pub(crate) fn admit(
        &mut self,
        id: SessionId,
        live: LiveSession<S>,
        name: String,
    ) -> Admission<S> {
        self.settle();
        self.routes_changed();
        let was_connected = self.session_of(&live.key).is_some();
        let mut replaced = None;
        if let Some((rival, existing)) = self.rival_of(&live) {
            match settle_duplicate(self.me, existing, connection(&live)) {
                Verdict::KeepExisting(reason) => return Admission::Refused(reason),
                Verdict::Replace(reason) => {
                    replaced = self.detach(rival).map(|old| (rival, old, reason));
                }
            }
        }
        let (key, peer, one_shot) = (live.key, live.peer, live.one_shot);
        let learned = if live.outbound {
            Learned::Dialed
        } else {
            Learned::Claimed
        };
        self.sessions.insert(id, live);
        self.bind(peer, key, learned);
        let record = self.peers.entry(key).or_default();
        record.session = Some(id);
        record.one_shot = one_shot;
        record.keep_up = !one_shot;
        record.name = Some(name.into_boxed_str());
        record.seen_at(Some(SystemTime::now()));
        Admission::Admitted {
            was_connected,
            replaced,
        }
    }

    /// `addr` is `key`'s, as its own connection showed: taken from any other key.
    fn bind(&mut self, addr: PeerAddr, key: PeerKey, learned: Learned) {
        self.routes_changed();
        if !addresses::usable(&addr) {
            // Dialed as 0.0.0.0:P, say: the session serves, the address is not kept.
            self.peers.entry(key).or_default();
            return;
        }
        if self.owner.get(&addr).is_some_and(|owner| *owner != key) {
            self.unbind(&addr);
        }
        self.unkeyed.remove(&addr);
        self.owner.insert(addr, key);
        let worked = learned == Learned::Dialed;
        let record = self.peers.entry(key).or_default();
        addresses::note(&mut record.addrs, addr, learned, worked);
    }

    /// A current Session to the same key as `newcomer`, or to another key from the same
    /// address (which keeps it: another key never evicts anyone).
    fn rival_of(&self, newcomer: &LiveSession<S>) -> Option<(SessionId, Connection)> {
        let serving = |id: SessionId, live: &LiveSession<S>| {
            self.peers
                .get(&live.key)
                .is_some_and(|record| record.session == Some(id))
        };
        self.sessions
            .iter()
            .filter(|(_, live)| live.key == newcomer.key || live.peer == newcomer.peer)
            .find(|(id, live)| serving(**id, live))
            .map(|(id, live)| (*id, connection(live)))
    }

    /// Forgets Session `id`; its key, if it served it, is disconnected.
    fn detach(&mut self, id: SessionId) -> Option<LiveSession<S>> {
        self.routes_changed();
        let live = self.sessions.remove(&id)?;
        self.note_seen(&live.key, live.acked_at());
        if let Some(record) = self.peers.get_mut(&live.key) {
            if record.session == Some(id) {
                record.session = None;
            }
        }
        Some(live)
    }

    /// `key` is disconnected from now on (its Session is told to close by the caller, and
    /// stays live until it has). Answers that Session.
    pub(crate) fn disconnect(&mut self, key: &PeerKey) -> Option<SessionId> {
        self.routes_changed();
        self.peers.get_mut(key)?.session.take()
    }

    /// Session `id` has ended. Answers it, if it had registered, and whether it served its
    /// key until now (a lingering or replaced one did not).
    pub(crate) fn closed(&mut self, id: SessionId) -> Option<(LiveSession<S>, bool)> {
        self.routes_changed();
        if let Some(orphan) = self.rejoining.remove(&id) {
            // Connected before a Registry restart, ended before it could register again:
            // its peer was connected through it.
            if let Some(record) = self.peers.get_mut(&orphan.key) {
                if record.session.is_none() {
                    record.session = Some(id);
                }
            }
            self.sessions.insert(id, orphan);
        }
        let live = self.sessions.remove(&id)?;
        self.note_seen(&live.key, live.acked_at());
        let current = match self.peers.get_mut(&live.key) {
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
        self.settle();
        self.routes_changed();
        let acked: Vec<_> = (self.sessions.values())
            .map(|live| (live.key, live.acked_at()))
            .collect();
        for (key, at) in acked {
            self.note_seen(&key, at);
        }
        for record in self.peers.values_mut() {
            record.session = None;
        }
        self.rejoining.extend(self.sessions.drain());
    }
}

fn connection<S>(live: &LiveSession<S>) -> Connection {
    Connection {
        key: live.key,
        outbound: live.outbound,
    }
}

#[cfg(test)]
mod tests;
