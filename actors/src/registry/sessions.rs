//! Sessions and the peer set: a Session whose handshake is done asks to `Register`, tells of
//! the peer's `peers` frame (`PeersLearned`) and asks what to answer its `get_peers`
//! (`KnownPeers`); its death watch reports `SessionClosed`. The rules are the peer table's
//! (`peers.rs`); here they meet the outbox, the dials and the events.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use actix::prelude::*;

use super::connections::{ConnectError, ConnectOutcome};
use super::peers::{Admission, LiveSession};
use super::{Phase, Registry};
use crate::events::NodeEvent;
use crate::guarded_handler;
use crate::key::PeerKey;
use crate::peer::{PeerAddr, SessionId};
use crate::session::{Close, Direction, Session};

use crate::trace::{tell, Role};
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
        let live = LiveSession {
            handle: msg.session.clone(),
            peer: msg.peer,
            key: msg.key,
            direction: msg.direction,
            one_shot: msg.listen_port == 0,
        };
        let admission = self.peers.admit(msg.session_id, live, msg.name.clone());
        let (was_connected, replaced) = match admission {
            Admission::Admitted {
                was_connected,
                replaced,
            } => (was_connected, replaced),
            Admission::Refused(reason) => {
                // This node already has its one connection to that key, or another key is
                // connected from that address.
                if let Some(dialed) = msg.dialed() {
                    self.dialer
                        .finish(&dialed, Ok(ConnectOutcome::AlreadyConnected));
                }
                return Err(reason.into());
            }
        };
        if let Some((old_id, old, reason)) = replaced {
            self.close_replaced(old_id, old, reason, msg.peer, ctx);
        }
        for addr in [Some(msg.peer), msg.dialed()].into_iter().flatten() {
            self.dialer.finish(&addr, Ok(ConnectOutcome::Connected));
            if let Some(timer) = self.dialer.cancel_redial(&addr) {
                ctx.cancel_future(timer);
            }
        }
        // A Session rejoining a restarted Registry is no news to anyone.
        let quiet_rejoin = rejoined && msg.rejoin;
        if !was_connected && !quiet_rejoin {
            let outbound = msg.dialed().is_some();
            self.emit(NodeEvent::PeerConnected {
                peer: msg.peer,
                name: msg.name,
                outbound,
            });
        }
        self.flush_outbox(msg.peer, msg.session_id);
        Ok(self.peers.known_peers_for(msg.peer))
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

    /// The Session that served the peer of a newcomer gives way to it.
    fn close_replaced(
        &mut self,
        old_id: SessionId,
        old: LiveSession<Addr<Session>>,
        reason: &str,
        newcomer_peer: PeerAddr,
        ctx: &mut Context<Self>,
    ) {
        let close = Close {
            reason: reason.into(),
        };
        tell(Role::Registry, &old.handle, close);
        // Chats on the replaced connection go out again: on the new one if they are for
        // the same address (flushed by the caller), else once their address is reached.
        self.outbox.unhand_session(&old.peer, old_id);
        if old.peer != newcomer_peer {
            self.retry_later(old.peer, "connection replaced".into(), ctx);
        }
    }
}

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
}

guarded_handler!(Registry, SessionClosed, |act, msg, ctx| act
    .on_session_closed(msg, ctx));

impl Registry {
    fn on_session_closed(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        tracing::debug!(session = msg.session_id, remote = %msg.remote, "session closed: {}", msg.reason);
        if let Some((live, current)) = self.peers.closed(msg.session_id) {
            let peer = live.peer;
            if current {
                let name = self.peers.name_of(&peer);
                self.emit(NodeEvent::PeerDisconnected {
                    peer,
                    name,
                    reason: msg.reason.clone(),
                });
            }
            // Chats that were on this connection go to its replacement, if there is one;
            // else they are kept, and sent again once the peer is back.
            self.outbox.unhand_session(&peer, msg.session_id);
            match self.peers.session_for(&peer) {
                Some((replacement, _)) => self.flush_outbox(peer, replacement),
                None => {
                    let reason = format!("connection lost ({})", msg.reason);
                    self.retry_later(peer, reason, ctx);
                }
            }
        } else if msg.peer.is_none() {
            self.handshake_failed(msg, ctx);
        }
        self.no_sessions_left();
    }

    /// A Session that never registered has ended.
    fn handshake_failed(&mut self, msg: SessionClosed, ctx: &mut Context<Self>) {
        if let Some(dialed) = msg.dialed {
            if self.dialer.is_dialing(&dialed) {
                self.dial_failed(dialed, ConnectError::Handshake(msg.reason), ctx);
            }
        } else if !msg.reason.starts_with("connection closed by peer") {
            self.emit(NodeEvent::ConnectionRefused {
                remote: msg.remote,
                reason: msg.reason,
            });
        }
    }
}

/// From a Session: the peer's `peers` frame.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PeersLearned {
    /// The peer that sent the frame.
    pub from: PeerAddr,
    /// Its entries.
    pub peers: Vec<PeerEntry>,
}

guarded_handler!(Registry, PeersLearned, |act, msg, _| act
    .on_peers_learned(msg));

impl Registry {
    fn on_peers_learned(&mut self, msg: PeersLearned) {
        for entry in msg.peers {
            let Ok(addr) = entry.addr.parse::<PeerAddr>() else {
                tracing::info!(from = %msg.from, "ignoring peer entry with bad address {:?}", entry.addr);
                continue;
            };
            if self.peers.is_self(&addr) {
                continue;
            }
            let name = (!entry.name.is_empty()).then_some(entry.name);
            if self.peers.learn(addr, name.clone(), entry.key) {
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
    /// The peer the list is for (left out of it).
    pub for_peer: PeerAddr,
}

guarded_handler!(
    Registry,
    KnownPeers as MessageResult<KnownPeers>,
    |act, msg, _| MessageResult(act.peers.known_peers_for(msg.for_peer)),
    on_panic: MessageResult(Vec::new()),
);
