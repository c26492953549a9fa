//! Sessions and the peer set: a Session whose handshake is done asks to `Register`, tells of
//! the peer's `peers` frame (`PeersLearned`) and asks what to answer its `get_peers`
//! (`KnownPeers`); its death watch reports `SessionClosed`. The rules are the peer table's
//! (`peers.rs`); here they meet the outbox, the dials and the events.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use actix::prelude::*;

use super::connections::{ConnectError, ConnectOutcome};
use super::peers::{Admission, LiveSession};
use super::trust::Expectation;
use super::{Phase, Registry, SessionHandle};
use crate::events::NodeEvent;
use crate::guarded_handler;
use crate::key::PeerKey;
use crate::peer::{PeerAddr, SessionId};
use crate::session::{Close, Direction, Session};

use crate::wire::PeerEntry;

/// From a Session whose Noise handshake is done: may it serve this peer? `Ok` carries the
/// peers to announce to it; `Err` the reason for its `bye`.
#[derive(Message)]
#[rtype(result = "Result<Vec<PeerEntry>, String>")]
pub struct Register {
    /// The registering Session's id.
    pub session_id: SessionId,
    /// Its address, for the Registry's orders.
    pub session: Addr<Session>,
    /// The peer's address (the dialed one, or remote IP and `listen_port`; for a one-shot
    /// sender, its connection's own address).
    pub peer: PeerAddr,
    /// Which side opened the connection (and the address dialed, if we did).
    pub direction: Direction,
    /// The static key the peer proved in the handshake: who it is.
    pub key: PeerKey,
    /// The peer's name, from its `hello` (a claim).
    pub name: String,
    /// The port its `hello` says it listens on (a claim); 0: a one-shot sender.
    pub listen_port: u16,
    /// Our own IP on this connection: an address of ours, so never a peer.
    pub local_ip: IpAddr,
    /// Registering again after a Registry restart, not a new connection.
    pub rejoin: bool,
}

impl Register {
    fn dialed(&self) -> Option<PeerAddr> {
        match self.direction {
            Direction::Outbound { dialed } => Some(dialed),
            Direction::Inbound => None,
        }
    }
}

impl fmt::Debug for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Register")
            .field("session", &self.session_id)
            .field("peer", &self.peer)
            .field("key", &self.key)
            .field("name", &self.name)
            .field("outbound", &self.dialed().is_some())
            .field("rejoin", &self.rejoin)
            .finish()
    }
}

guarded_handler!(
    Registry,
    Register,
    |act, msg, ctx| act.on_register(msg, ctx),
    on_panic: Err("registry failed while registering; try again".into()),
);

impl Registry {
    fn on_register(
        &mut self,
        msg: Register,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<PeerEntry>, String> {
        self.peers.note_local_ip(msg.local_ip);
        let rejoined = self.peers.rejoined(msg.session_id);
        if self.phase == Phase::Retired {
            return Err("node failed".into());
        }
        // Only a peer holding our own private key can prove our key: it is us.
        if msg.key == self.me.keys.public() {
            self.connected_to_self(&msg);
            return Err("connected to itself".into());
        }
        if self.phase >= Phase::Closing {
            return Err("node is shutting down".into());
        }
        if let Err(refusal) = self.check_pinned(&msg) {
            self.refuse_dial(&msg, Err(ConnectError::Handshake(refusal.clone())));
            return Err(refusal);
        }
        let live = LiveSession {
            handle: msg.session.clone(),
            peer: msg.peer,
            key: msg.key,
            outbound: matches!(msg.direction, Direction::Outbound { .. }),
            one_shot: msg.listen_port == 0,
            acked_at_ms: 0,
        };
        let (was_connected, replaced) =
            match self.peers.admit(msg.session_id, live, msg.name.clone()) {
                Admission::Admitted {
                    was_connected,
                    replaced,
                } => (was_connected, replaced),
                Admission::Refused(reason) => {
                    // This node already has its one connection to that key, or another key is
                    // connected from that address.
                    self.refuse_dial(&msg, Ok(ConnectOutcome::AlreadyConnected));
                    return Err(reason.into());
                }
            };
        if let Some((old_id, old, reason)) = replaced {
            self.close_replaced(old_id, old, reason, ctx);
        }
        self.now_connected(&msg, ctx);
        // A Session rejoining a restarted Registry is no news to anyone.
        let quiet_rejoin = rejoined && msg.rejoin;
        // A one-shot sender is transient: its chats are shown, its coming and going is not.
        let one_shot = msg.listen_port == 0;
        if !was_connected && !quiet_rejoin && !one_shot {
            let outbound = msg.dialed().is_some();
            self.emit(NodeEvent::PeerConnected {
                peer: msg.peer,
                name: msg.name,
                outbound,
            });
        }
        self.flush_outbox(msg.session_id);
        Ok(self.peers.known_peers_for(&msg.key, &msg.peer))
    }

    /// Trust on first use for a peer that listens: its first key is pinned, another key for
    /// a pinned name or address is refused (and waits for `/trust`). A one-shot sender
    /// proves only a key of its own making: never pinned, never refused for it.
    fn check_pinned(&mut self, msg: &Register) -> Result<(), String> {
        if msg.listen_port == 0 || msg.rejoin {
            return Ok(());
        }
        let Err(change) = self.pins.check(&msg.name, Some(msg.peer), msg.key) else {
            return Ok(());
        };
        let refusal = format!(
            "key changed: {} is pinned to {}, this peer proved {}",
            change.pinned_by,
            change.pinned,
            change.presented.fingerprint()
        );
        self.emit(NodeEvent::KeyChanged {
            peer: msg.peer,
            name: msg.name.clone(),
            pinned_by: change.pinned_by,
            pinned: change.pinned,
            presented: change.presented.fingerprint(),
        });
        Err(refusal)
    }

    /// A dial that ends in a refused registration: its waiters learn why.
    fn refuse_dial(&mut self, msg: &Register, outcome: Result<ConnectOutcome, ConnectError>) {
        if let Some(dialed) = msg.dialed() {
            self.expecting.remove(&dialed);
            self.dialer.finish(&dialed, outcome);
        }
    }

    /// The Session is admitted: the dials it answers end, and no redial is planned for it.
    fn now_connected(&mut self, msg: &Register, ctx: &mut Context<Self>) {
        let addrs = [Some(msg.peer), msg.dialed()].into_iter().flatten();
        let routes = self.peers.routes_of(&msg.key);
        for addr in addrs.chain(routes) {
            self.expecting.remove(&addr);
            self.dialer.finish(&addr, Ok(ConnectOutcome::Connected));
            if let Some(timer) = self.dialer.cancel_redial(&addr) {
                ctx.cancel_future(timer);
            }
        }
    }

    /// The peer proved our own key: the address is us, and chats waiting for it never leave.
    fn connected_to_self(&mut self, msg: &Register) {
        self.peers.mark_self(msg.peer);
        if let Some(dialed) = msg.dialed() {
            self.peers.mark_self(dialed);
            self.dialer.finish(&dialed, Err(ConnectError::SelfAddress));
            self.fail_waiting(Some(&dialed), "that address is this node itself");
        }
    }

    /// The Session that served the key of a newcomer gives way to it.
    fn close_replaced(
        &mut self,
        old_id: SessionId,
        old: LiveSession<SessionHandle>,
        reason: &str,
        ctx: &mut Context<Self>,
    ) {
        let close = Close {
            reason: reason.into(),
        };
        old.tell(close);
        // Chats on the replaced connection go out again: on the new one if it serves the
        // same key (flushed by the caller), else once their peer is reached.
        self.outbox.unhand_session(&old.peer, old_id);
        for addr in self.peers.routes_of(&old.key) {
            self.outbox.unhand_session(&addr, old_id);
        }
        if self.peers.session_of(&old.key).is_none() {
            self.retry_later(old.peer, "connection replaced".into(), ctx);
        }
    }
}

/// Why a reply to a one-shot sender fails once it has gone: nothing listens there.
const ONE_SHOT_GONE: &str =
    "the sender has gone: it was a one-shot `peerchat send`, which does not listen";

/// From a Session's death watch: it has ended, for `reason`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionClosed {
    /// The Session that ended.
    pub session_id: SessionId,
    /// The socket address at the other end.
    pub remote: SocketAddr,
    /// Set once the handshake completed.
    pub peer: Option<PeerAddr>,
    /// Set for connections we opened.
    pub dialed: Option<PeerAddr>,
    /// Why it ended.
    pub reason: String,
    /// The key a dialed peer proved where another was expected (`Session::start_expecting`).
    pub presented_key: Option<PeerKey>,
}

guarded_handler!(Registry, SessionClosed, |act, msg, ctx| act
    .on_session_closed(msg, ctx));

impl Registry {
    fn on_session_closed(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        tracing::debug!(session = msg.session_id, remote = %msg.remote, "session closed: {}", msg.reason);
        if let Some((live, current)) = self.peers.closed(msg.session_id) {
            if live.one_shot {
                return self.one_shot_ended(live, msg.session_id);
            }
            if current {
                let name = self.peers.name_of(&live.key);
                self.emit(NodeEvent::PeerDisconnected {
                    peer: live.peer,
                    name,
                    reason: msg.reason.clone(),
                });
                if msg.reason.starts_with("peer said bye") {
                    // It left on purpose: it comes back when it wants to.
                    self.peers.let_go(&live.key);
                }
            }
            self.after_session(live, msg.session_id, &msg.reason, ctx);
        } else if msg.peer.is_none() {
            self.handshake_failed(msg, ctx);
        }
        self.no_sessions_left();
    }

    /// Every address `live`'s key is routed at (its own address too): the chats handed to
    /// Session `id` there are taken back, to be handed again. Answers those addresses.
    fn unhand_routes(&mut self, live: &LiveSession<SessionHandle>, id: SessionId) -> Vec<PeerAddr> {
        let mut routes = self.peers.routes_of(&live.key);
        if !routes.contains(&live.peer) {
            routes.push(live.peer);
        }
        for addr in &routes {
            self.outbox.unhand_session(addr, id);
        }
        routes
    }

    /// A one-shot sender's session ended: it is not kept as a peer (it does not listen, so
    /// there is nowhere to reach it again), and replies still waiting for it fail now
    /// rather than redial a port nobody listens on.
    fn one_shot_ended(&mut self, live: LiveSession<SessionHandle>, id: SessionId) {
        let routes = self.unhand_routes(&live, id);
        if let Some((replacement, _)) = self.peers.session_of(&live.key) {
            self.flush_outbox(replacement);
        } else {
            self.peers.drop_transient(&live.key);
            for addr in &routes {
                if self.outbox.waiting(addr) > 0 {
                    self.fail_waiting(Some(addr), ONE_SHOT_GONE);
                }
            }
        }
        self.no_sessions_left();
    }

    /// Chats that were on an ended Session go to its key's replacement, if there is one;
    /// else they are kept and sent again once the peer is back, which it is redialed for.
    fn after_session(
        &mut self,
        live: LiveSession<SessionHandle>,
        id: SessionId,
        reason: &str,
        ctx: &mut Context<Self>,
    ) {
        let routes = self.unhand_routes(&live, id);
        if let Some((replacement, _)) = self.peers.session_of(&live.key) {
            return self.flush_outbox(replacement);
        }
        let reason = format!("connection lost ({reason})");
        for addr in routes {
            if self.outbox.waiting(&addr) > 0 {
                self.retry_later(addr, reason.clone(), ctx);
            }
        }
        self.keep_up(live.key, ctx);
    }

    /// A Session that never registered has ended.
    fn handshake_failed(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        if let Some(dialed) = msg.dialed {
            let expected = self.expecting.remove(&dialed);
            let mut refused = false;
            if let (Some(presented), Some(expected)) = (msg.presented_key, expected) {
                refused = expected.source.is_some();
                self.wrong_key(dialed, expected, presented);
            }
            if self.dialer.is_dialing(&dialed) {
                self.dial_failed(dialed, ConnectError::Handshake(msg.reason), ctx);
            }
            if refused {
                // Whoever answered there is not who was announced or introduced: an address
                // nothing else waits for is no peer of ours.
                self.drop_if_never_answered(&dialed);
            }
        } else if !msg.reason.starts_with("connection closed by peer") {
            self.emit(NodeEvent::ConnectionRefused {
                remote: msg.remote,
                reason: msg.reason,
            });
        }
    }

    /// A dial met another key than the one expected at that address: reported; a false
    /// introduction is dropped, a pinned key's change waits for `/trust`.
    fn wrong_key(&mut self, dialed: PeerAddr, expected: Expectation, presented: PeerKey) {
        match expected.source {
            None => {
                // No redialing into the same refusal: `/trust` dials it if the user agrees.
                self.peers.let_go(&expected.key);
                let name = self.peers.name_of(&expected.key);
                if let Some(change) = self.pins.changed_at(dialed, &name, presented) {
                    self.emit(NodeEvent::KeyChanged {
                        peer: dialed,
                        name,
                        pinned_by: change.pinned_by,
                        pinned: change.pinned,
                        presented: presented.fingerprint(),
                    });
                }
            }
            Some(source) => {
                self.peers.drop_introduction(&dialed, &expected.key);
                self.emit(NodeEvent::KeyMismatch {
                    peer: dialed,
                    source,
                    expected: expected.key.fingerprint(),
                    presented: presented.fingerprint(),
                });
            }
        }
    }
}

/// From a Session: the peer's `peers` frame.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PeersLearned {
    /// The peer that sent the frame.
    pub from: PeerAddr,
    /// The key it proved: whose word the entries are.
    pub from_key: PeerKey,
    /// Its entries.
    pub peers: Vec<PeerEntry>,
}

guarded_handler!(Registry, PeersLearned, |act, msg, _| act
    .on_peers_learned(msg));

impl Registry {
    fn on_peers_learned(&mut self, msg: PeersLearned) {
        let by = match self.peers.name_of(&msg.from_key) {
            name if name.is_empty() => msg.from_key.fingerprint().to_string(),
            name => name,
        };
        for entry in msg.peers {
            let Ok(addr) = entry.addr.parse::<PeerAddr>() else {
                tracing::info!(from = %msg.from, "ignoring peer entry with bad address {:?}", entry.addr);
                continue;
            };
            // A loopback address from a peer on another host means nothing here.
            let foreign_loopback = addr.ip().is_loopback() && !msg.from.ip().is_loopback();
            if self.peers.is_self(&addr) || foreign_loopback || entry.key == msg.from_key {
                continue;
            }
            let name = (!entry.name.is_empty()).then_some(entry.name);
            if self.peers.learn(addr, name.clone(), entry.key, &by) {
                self.emit(NodeEvent::PeerDiscovered {
                    peer: addr,
                    name: name.unwrap_or_default(),
                });
            }
        }
    }
}

/// From a Session answering `get_peers`: what we know, as told to `for_peer`.
#[derive(Message, Debug)]
#[rtype(result = "Vec<PeerEntry>")]
pub struct KnownPeers {
    /// The address the peer is reached at (loopback addresses go only to loopback peers).
    pub for_peer: PeerAddr,
    /// Its key (left out of the list).
    pub for_key: PeerKey,
}

guarded_handler!(
    Registry,
    KnownPeers as MessageResult<KnownPeers>,
    |act, msg, _| MessageResult(act.peers.known_peers_for(&msg.for_key, &msg.for_peer)),
    on_panic: MessageResult(Vec::new()),
);
