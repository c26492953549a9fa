//! Outbox: the chats this node accepted and that wait for an ack, kept per peer in the order
//! they were accepted, with two deadlines each: when an unacked chat is sent again, and when
//! a chat is given up. A plain struct owned by the Registry (which also writes it to the Store).
//!
//! Like mini-redis's `Db`, expiry looks at the front of an ordered index only: the 250 ms tick
//! costs nothing when nothing is due, however long the outbox. Both deadlines are a fixed
//! time after a moment that only moves forward (`now`), so no sorted set is needed, whose
//! insert and remove cost more per chat than the rest of the outbox together (callgrind,
//! docs/performance.md): a chat is given up `give_up_after` after it was accepted, and ids
//! grow as chats are accepted, so the chats in id order are in give-up order; and a chat is
//! handed again `ack_timeout` after it was handed, so a queue in hand order is in ack-due
//! order. That queue is not told when a chat is acked or taken off its Session: an entry
//! counts only while its chat still has that deadline, and stale entries are dropped as the
//! tick reaches them, or all at once when they outnumber the live ones.
//!
//! The chats, and each peer's ids, are kept in `IdSlots`: a queue in id order, not a B-tree.
//! A new chat has the highest id so far, so it goes at the back; an ack, usually of the
//! oldest chat, leaves a hole that is popped at once at the front and otherwise dropped when
//! holes outnumber the chats (callgrind: B-tree inserts and removes were about a fifth of a
//! sending node's instructions per chat in the stream, docs/performance.md).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use crate::helpers::human;
use crate::peer::{MessageId, SessionId};
use crate::registry::local_hash::LocalKeyHasher;
use crate::registry::peers::TableKey;
use crate::session::Chat;

mod id_slots;
pub(crate) use id_slots::IdSlots;

/// One chat waiting for its ack.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The recipient.
    pub(crate) to: TableKey,
    pub(crate) text: String,
    pub(crate) sent_at_ms: u64,
    /// The Session it was handed to; `None` while waiting for a connection.
    pub(crate) on_session: Option<SessionId>,
    /// Why the last attempt to reach its peer failed.
    pub(crate) last_error: Option<String>,
    /// Handed to a Session and no ack by then: hand it again. In `Outbox::ack_due` too.
    ack_due: Option<Instant>,
    /// Still waiting then: give up (the chats in id order are in this order).
    give_up_due: Option<Instant>,
}

impl Outgoing {
    /// The chat as a Session sends it (the outbox keeps its copy for resends).
    pub(crate) fn chat(&self, id: MessageId) -> Chat {
        Chat {
            id,
            text: self.text.clone(),
            sent_at_ms: self.sent_at_ms,
        }
    }
}

/// Most emptied per-peer queues kept for reuse (`Outbox::spare`): a few KiB at most.
const SPARE_QUEUES: usize = 64;

/// A spare queue is kept only if it has room for at most this many ids: one that held a
/// burst to an absent peer would keep its memory for good otherwise.
const SPARE_QUEUE_SLOTS: usize = 256;

/// Every chat waiting for an ack (see the module docs).
pub(crate) struct Outbox {
    chats: IdSlots<Outgoing>,
    /// Each peer's chats; ids grow, so id order is the order they were accepted. Hashed by
    /// `LocalKeyHasher`: a key here is an address the user chose to send to. Remotes can
    /// suggest addresses (a claimed port, introductions), but an entry exists only once a
    /// chat is sent there, and connections per IP are capped, so a remote cannot fill this
    /// map with colliding keys; SipHash of it was two hashes and 450 instructions per chat.
    by_peer: HashMap<TableKey, IdSlots<()>, BuildHasherDefault<LocalKeyHasher>>,
    /// Emptied `by_peer` queues kept for the next peer (at most `SPARE_QUEUES`): in a
    /// fan-out each peer's queue empties at every ack and fills at the next chat, and
    /// freeing and allocating it again cost about 280 instructions per chat.
    spare: Vec<IdSlots<()>>,
    /// Every hand with its ack deadline, in hand order, so in deadline order; an entry is
    /// stale once its chat no longer has that deadline (see the module docs).
    ack_due: VecDeque<(Instant, MessageId)>,
    /// Chats with an ack deadline: the live entries of `ack_due`.
    handed: usize,
    ack_timeout: Duration,
    give_up_after: Duration,
}

impl Outbox {
    /// An empty outbox: a chat handed to a Session is handed again after `ack_timeout`
    /// without an ack, and given up `give_up_after` after it was accepted.
    pub(crate) fn new(ack_timeout: Duration, give_up_after: Duration) -> Self {
        Outbox {
            chats: IdSlots::default(),
            by_peer: HashMap::default(),
            spare: Vec::new(),
            ack_due: VecDeque::new(),
            handed: 0,
            ack_timeout,
            give_up_after,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chats.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chats.is_empty()
    }

    pub(crate) fn get(&self, id: MessageId) -> Option<&Outgoing> {
        self.chats.get(id)
    }

    /// How many chats wait for `peer`.
    pub(crate) fn waiting(&self, peer: &TableKey) -> usize {
        self.by_peer.get(peer).map_or(0, IdSlots::len)
    }

    /// The peers that have chats waiting.
    pub(crate) fn peers(&self) -> Vec<TableKey> {
        self.by_peer.keys().copied().collect()
    }

    /// Accepts a chat for `to`, not yet on any Session. `now` never goes back from one call
    /// to the next, and ids grow: a later chat is never due before an earlier one.
    pub(crate) fn insert(
        &mut self,
        id: MessageId,
        to: TableKey,
        text: String,
        sent_at_ms: u64,
        now: Instant,
    ) {
        let give_up_due = now.checked_add(self.give_up_after);
        let out = Outgoing {
            to,
            text,
            sent_at_ms,
            on_session: None,
            last_error: None,
            ack_due: None,
            give_up_due,
        };
        if let Some(old) = self.chats.insert(id, out) {
            // Ids are unique; should one come twice, the first copy's indexes go (before
            // the second's are made, which may be the same peer's).
            self.unindex(id, &old);
        }
        let spare = &mut self.spare;
        let ids = self
            .by_peer
            .entry(to)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        ids.insert(id, ());
    }

    /// Chat `id` is handed to `session` now: without an ack in time it is handed again.
    /// `now` never goes back from one call to the next.
    pub(crate) fn hand(&mut self, id: MessageId, session: SessionId, now: Instant) {
        let Some(out) = self.chats.get_mut(id) else {
            return;
        };
        out.on_session = Some(session);
        let due = now.checked_add(self.ack_timeout);
        if out.ack_due.is_none() && due.is_some() {
            self.handed += 1;
        } else if out.ack_due.is_some() && due.is_none() {
            self.handed = self.handed.saturating_sub(1);
        }
        // A deadline it had before makes its old entry stale.
        out.ack_due = due;
        if let Some(due) = due {
            self.ack_due.push_back((due, id));
            self.drop_stale_if_many();
        }
    }

    /// Chat `id` is on no Session any more (its Session ended or never got it).
    pub(crate) fn unhand(&mut self, id: MessageId) {
        if let Some(out) = self.chats.get_mut(id) {
            out.on_session = None;
            if out.ack_due.take().is_some() {
                self.handed = self.handed.saturating_sub(1);
            }
        }
    }

    /// Whether an entry of `ack_due` is still its chat's deadline.
    fn is_live(&self, (due, id): (Instant, MessageId)) -> bool {
        self.chats
            .get(id)
            .is_some_and(|out| out.ack_due == Some(due))
    }

    /// Bounds `ack_due` to about twice the chats it is for: acks leave their entries behind,
    /// and a chat that stays unacked at the front would otherwise keep every later one.
    fn drop_stale_if_many(&mut self) {
        if self.ack_due.len() <= 2 * self.handed + 64 {
            return;
        }
        let mut entries = std::mem::take(&mut self.ack_due);
        entries.retain(|entry| self.is_live(*entry));
        self.ack_due = entries;
    }

    /// Chats for `peer` that were on `session`, which is gone, wait for another one.
    pub(crate) fn unhand_session(&mut self, peer: &TableKey, session: SessionId) {
        for id in self.ids_of(peer) {
            if self
                .get(id)
                .is_some_and(|out| out.on_session == Some(session))
            {
                self.unhand(id);
            }
        }
    }

    /// Hands every chat for `peer` that is on no live Session to `session`, and returns them
    /// oldest first (for one `Deliver`).
    pub(crate) fn hand_waiting(
        &mut self,
        peer: &TableKey,
        session: SessionId,
        now: Instant,
        is_live: impl Fn(SessionId) -> bool,
    ) -> Vec<Chat> {
        let mut chats = Vec::new();
        for id in self.ids_of(peer) {
            let Some(out) = self.chats.get(id) else {
                continue;
            };
            let on_live = out.on_session.is_some_and(|s| s == session || is_live(s));
            if !on_live {
                chats.push(out.chat(id));
                self.hand(id, session, now);
            }
        }
        chats
    }

    /// Every chat for `peer` failed its last attempt for `reason`; answers how many wait.
    pub(crate) fn note_error(&mut self, peer: &TableKey, reason: &str) -> usize {
        let ids = self.ids_of(peer);
        for id in &ids {
            if let Some(out) = self.chats.get_mut(*id) {
                out.last_error = Some(reason.to_string());
            }
        }
        ids.len()
    }

    /// Removes chat `id` if `from_acker` says its address is the acking peer's: the ack of a
    /// chat of ours.
    pub(crate) fn take_acked(
        &mut self,
        id: MessageId,
        from_acker: impl Fn(&TableKey) -> bool,
    ) -> Option<Outgoing> {
        if !from_acker(&self.get(id)?.to) {
            return None; // Not a chat we sent there: an ack does not come from elsewhere.
        }
        self.remove(id)
    }

    pub(crate) fn remove(&mut self, id: MessageId) -> Option<Outgoing> {
        let out = self.chats.remove(id)?;
        self.unindex(id, &out);
        Some(out)
    }

    /// Removes every chat for `peer`, oldest first.
    pub(crate) fn remove_peer(&mut self, peer: &TableKey) -> Vec<(MessageId, Outgoing)> {
        self.ids_of(peer)
            .into_iter()
            .filter_map(|id| Some((id, self.remove(id)?)))
            .collect()
    }

    /// Removes every chat, oldest first.
    pub(crate) fn remove_all(&mut self) -> Vec<(MessageId, Outgoing)> {
        self.by_peer.clear();
        self.ack_due.clear();
        self.handed = 0;
        std::mem::take(&mut self.chats).into_vec()
    }

    /// Removes the chats that have waited too long, with the reason to report.
    pub(crate) fn give_up_due(&mut self, now: Instant) -> Vec<(MessageId, Outgoing, String)> {
        let mut given_up = Vec::new();
        // Oldest first: the first chat not due yet has no later chat due before it.
        while let Some((id, out)) = self.chats.first() {
            if out.give_up_due.is_none_or(|due| due > now) {
                break;
            }
            if let Some(out) = self.remove(id) {
                let why = out.last_error.as_deref().unwrap_or("no ack");
                let reason = format!("gave up after {}: {why}", human(self.give_up_after));
                given_up.push((id, out, reason));
            }
        }
        given_up
    }

    /// Chats handed to a Session whose ack is overdue come off it; answers their peers (each
    /// once), whose Session, if they still have one, gets them again.
    pub(crate) fn ack_due(&mut self, now: Instant) -> Vec<TableKey> {
        let mut stale = BTreeSet::new();
        // Made once the first chat is overdue: most ticks find none, and a thousand nodes
        // in one process tick four times a second each.
        let mut why = None;
        while let Some(&(due, id)) = self.ack_due.front() {
            if due > now {
                break;
            }
            self.ack_due.pop_front();
            if !self.is_live((due, id)) {
                continue; // Acked, taken off its Session or handed again since.
            }
            self.unhand(id);
            if let Some(out) = self.chats.get_mut(id) {
                let why =
                    why.get_or_insert_with(|| format!("no ack within {}", human(self.ack_timeout)));
                out.last_error = Some(why.clone());
                stale.insert(out.to);
            }
        }
        stale.into_iter().collect()
    }

    fn ids_of(&self, peer: &TableKey) -> Vec<MessageId> {
        self.by_peer
            .get(peer)
            .map(|ids| ids.ids().collect())
            .unwrap_or_default()
    }

    fn unindex(&mut self, id: MessageId, out: &Outgoing) {
        if let Some(ids) = self.by_peer.get_mut(&out.to) {
            ids.remove(id);
            if ids.is_empty() {
                if let Some(mut emptied) = self.by_peer.remove(&out.to) {
                    if self.spare.len() < SPARE_QUEUES && emptied.capacity() <= SPARE_QUEUE_SLOTS {
                        emptied.clear();
                        self.spare.push(emptied);
                    }
                }
            }
        }
        // Its `ack_due` entry, if any, is stale now: the chat is gone.
        if out.ack_due.is_some() {
            self.handed = self.handed.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::PeerAddr;

    const ACK: Duration = Duration::from_secs(5);
    const GIVE_UP: Duration = Duration::from_secs(60);

    fn peer(port: u16) -> TableKey {
        PeerAddr::from_ip_port([127, 0, 0, 1].into(), port)
    }

    fn outbox_with(chats: &[(MessageId, TableKey)], now: Instant) -> Outbox {
        let mut outbox = Outbox::new(ACK, GIVE_UP);
        for (id, to) in chats {
            outbox.insert(*id, *to, format!("chat {id}"), 0, now);
        }
        outbox
    }

    fn ids(chats: &[Chat]) -> Vec<MessageId> {
        chats.iter().map(|chat| chat.id).collect()
    }

    #[test]
    fn each_peer_gets_its_own_chats_in_the_order_accepted() {
        let now = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let mut outbox = outbox_with(&[(1, a), (2, b), (3, a), (4, a), (5, b)], now);
        assert_eq!(outbox.waiting(&a), 3);
        assert_eq!(ids(&outbox.hand_waiting(&a, 10, now, |_| false)), [1, 3, 4]);
        assert_eq!(ids(&outbox.hand_waiting(&b, 11, now, |_| false)), [2, 5]);
        assert_eq!(outbox.get(3).and_then(|out| out.on_session), Some(10));
    }

    #[test]
    fn a_peer_queue_emptied_by_acks_is_reused_and_the_spares_stay_bounded() {
        let now = Instant::now();
        let peers: Vec<TableKey> = (1..=100).map(peer).collect();
        let chats: Vec<(MessageId, TableKey)> = (1..).zip(peers.iter().copied()).collect();
        let mut outbox = outbox_with(&chats, now);
        for (id, to) in &chats {
            assert!(outbox.take_acked(*id, |acker| acker == to).is_some());
        }
        assert!(outbox.is_empty() && outbox.peers().is_empty());
        assert_eq!(outbox.spare.len(), SPARE_QUEUES);
        // A reused queue starts empty: the next chat to a peer is its only one.
        outbox.insert(101, peers[0], "again".into(), 0, now);
        outbox.insert(102, peers[1], "again".into(), 0, now);
        assert_eq!(outbox.waiting(&peers[0]), 1);
        assert_eq!(outbox.spare.len(), SPARE_QUEUES - 2);
        assert_eq!(
            ids(&outbox.hand_waiting(&peers[0], 10, now, |_| false)),
            [101]
        );
    }

    #[test]
    fn chats_on_a_live_session_are_not_handed_twice() {
        let now = Instant::now();
        let a = peer(1);
        let mut outbox = outbox_with(&[(1, a), (2, a)], now);
        outbox.hand(1, 10, now);
        // 1 is on Session 10, which is live: only 2 goes to Session 11.
        assert_eq!(ids(&outbox.hand_waiting(&a, 11, now, |s| s == 10)), [2]);
        // Session 10 ended: 1 goes too, and 2 stays where it is.
        outbox.unhand_session(&a, 10);
        assert_eq!(ids(&outbox.hand_waiting(&a, 11, now, |_| false)), [1]);
    }

    #[test]
    fn an_ack_removes_the_chat_only_from_its_recipient() {
        let now = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let mut outbox = outbox_with(&[(1, a), (2, b)], now);
        assert!(
            outbox.take_acked(1, |to| *to == b).is_none(),
            "b cannot ack a's chat"
        );
        assert_eq!(
            outbox.take_acked(1, |to| *to == a).map(|out| out.text),
            Some("chat 1".into())
        );
        assert!(
            outbox.take_acked(1, |to| *to == a).is_none(),
            "a repeated ack is nothing"
        );
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.waiting(&a), 0);
        assert_eq!(outbox.peers(), vec![b]);
    }

    #[test]
    fn a_chat_without_an_ack_in_time_comes_off_its_session() {
        let now = Instant::now();
        let a = peer(1);
        let mut outbox = outbox_with(&[(1, a), (2, a)], now);
        outbox.hand(1, 10, now);
        outbox.hand(2, 10, now + Duration::from_secs(1));
        assert!(outbox
            .ack_due(now + ACK - Duration::from_millis(1))
            .is_empty());
        assert_eq!(outbox.ack_due(now + ACK), vec![a]);
        let first = outbox.get(1).unwrap();
        assert_eq!(first.on_session, None);
        assert_eq!(first.last_error.as_deref(), Some("no ack within 5s"));
        assert_eq!(
            outbox.get(2).unwrap().on_session,
            Some(10),
            "2 is not due yet"
        );
        // Handed again, it gets a new deadline: nothing is due twice.
        assert_eq!(ids(&outbox.hand_waiting(&a, 10, now + ACK, |_| true)), [1]);
        assert_eq!(outbox.ack_due(now + ACK + Duration::from_secs(1)), vec![a]);
        assert!(outbox
            .ack_due(now + ACK + Duration::from_secs(2))
            .is_empty());
    }

    #[test]
    fn an_acked_or_unhanded_chat_has_no_ack_deadline() {
        let now = Instant::now();
        let a = peer(1);
        let mut outbox = outbox_with(&[(1, a), (2, a)], now);
        outbox.hand(1, 10, now);
        outbox.hand(2, 10, now);
        outbox.take_acked(1, |to| *to == a);
        outbox.unhand(2);
        assert!(outbox.ack_due(now + ACK * 2).is_empty());
        assert_eq!(outbox.get(2).unwrap().last_error, None);
    }

    #[test]
    fn chats_are_given_up_when_their_budget_is_spent_with_the_last_error() {
        let now = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let mut outbox = outbox_with(&[(1, a)], now);
        outbox.insert(2, b, "later".into(), 0, now + Duration::from_secs(10));
        assert_eq!(outbox.note_error(&a, "connection refused"), 1);
        assert!(outbox
            .give_up_due(now + GIVE_UP - Duration::from_millis(1))
            .is_empty());
        let given_up = outbox.give_up_due(now + GIVE_UP);
        assert_eq!(given_up.len(), 1);
        assert_eq!(given_up[0].0, 1);
        assert_eq!(given_up[0].2, "gave up after 60s: connection refused");
        assert_eq!(outbox.len(), 1);
        let later = outbox.give_up_due(now + GIVE_UP + Duration::from_secs(10));
        assert_eq!(later[0].2, "gave up after 60s: no ack");
        assert!(outbox.is_empty());
        assert!(outbox.peers().is_empty());
    }

    #[test]
    fn acked_chats_leave_no_deadline_behind_and_the_queue_stays_bounded() {
        let now = Instant::now();
        let a = peer(1);
        let mut outbox = Outbox::new(ACK, GIVE_UP);
        // Chat 1 stays unacked at the front while 10,000 later ones are acked.
        outbox.insert(1, a, "first".into(), 0, now);
        outbox.hand(1, 10, now);
        for id in 2..10_002 {
            outbox.insert(id, a, "later".into(), 0, now);
            outbox.hand(id, 10, now);
            assert!(outbox.take_acked(id, |to| *to == a).is_some());
        }
        // One chat handed: at most twice that plus 64, plus the entry just pushed.
        assert!(outbox.ack_due.len() <= 67, "{}", outbox.ack_due.len());
        // Handed again before its deadline: only the new deadline counts.
        outbox.hand(1, 11, now + Duration::from_secs(1));
        assert!(outbox.ack_due(now + ACK).is_empty());
        assert_eq!(outbox.ack_due(now + ACK + Duration::from_secs(1)), vec![a]);
        assert!(outbox.ack_due(now + ACK * 3).is_empty());
        assert_eq!(outbox.get(1).unwrap().on_session, None);
        assert_eq!(outbox.len(), 1);
    }

    #[test]
    fn huge_timeouts_mean_never_not_a_panic() {
        let now = Instant::now();
        let mut outbox = Outbox::new(Duration::MAX, Duration::MAX);
        outbox.insert(1, peer(1), "x".into(), 0, now);
        outbox.hand(1, 10, now);
        assert!(outbox.ack_due(now + Duration::from_secs(3600)).is_empty());
        assert!(outbox
            .give_up_due(now + Duration::from_secs(3600))
            .is_empty());
        assert_eq!(outbox.len(), 1);
    }

    #[test]
    fn removing_a_peer_takes_only_its_chats_oldest_first() {
        let now = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let mut outbox = outbox_with(&[(1, a), (2, b), (3, a)], now);
        let removed: Vec<MessageId> = outbox
            .remove_peer(&a)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(removed, [1, 3]);
        assert_eq!(outbox.len(), 1);
        assert!(outbox
            .give_up_due(now + GIVE_UP)
            .iter()
            .all(|(id, _, _)| *id == 2));
        assert!(outbox.remove_all().is_empty());
    }

    #[test]
    fn addresses_differing_in_ip_or_port_hash_apart() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<LocalKeyHasher>::default();
        let hash = |key: TableKey| build.hash_one(key);
        let mut seen = std::collections::HashSet::new();
        for port in 9000..9100 {
            assert!(seen.insert(hash(peer(port))), "port {port}");
            let other_ip = PeerAddr::from_ip_port([10, 0, 0, 1].into(), port);
            assert!(seen.insert(hash(other_ip)), "10.0.0.1:{port}");
        }
    }

    #[test]
    fn an_id_accepted_twice_is_one_chat_of_the_second_copy() {
        let now = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let mut outbox = outbox_with(&[(1, a)], now);
        outbox.insert(1, a, "again".into(), 0, now);
        assert_eq!(outbox.waiting(&a), 1, "still indexed under its peer");
        assert_eq!(ids(&outbox.hand_waiting(&a, 10, now, |_| false)), [1]);
        outbox.insert(1, b, "elsewhere".into(), 0, now);
        assert_eq!((outbox.waiting(&a), outbox.waiting(&b)), (0, 1));
        assert_eq!(outbox.len(), 1);
        assert_eq!(
            outbox.get(1).map(|out| out.text.as_str()),
            Some("elsewhere")
        );
    }
}
