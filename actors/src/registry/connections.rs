//! Connecting and disconnecting: the Console's `Connect`, `ConnectAll`, `Disconnect`,
//! `DisconnectAll` and `ListPeers`, and the dials behind them and behind chats waiting for an
//! unreachable peer (the `Dialer` keeps their state; here they meet TCP and timers).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::channel::oneshot;
use futures::future::join_all;
use tokio::net::TcpStream;

use super::dialer::DialWaiter;
use super::trust::{self, Expectation};
use super::Registry;
use crate::events::NodeEvent;
use crate::guarded_handler;
use crate::helpers::{human, now_ms};
use crate::key::PeerKey;
use crate::peer::{PeerAddr, PeerInfo};
use crate::session::{Close, Direction, Reannounce, RefreshPeers, Session};
use crate::supervision::guarded;
use crate::trace::{ask, Role};

/// Connect to a peer (resolves when the handshake is done or has failed).
#[derive(Message, Debug)]
#[rtype(result = "Result<ConnectOutcome, ConnectError>")]
pub struct Connect {
    /// The peer to connect to.
    pub to: PeerAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How a connect ended well.
pub enum ConnectOutcome {
    /// A new connection was made.
    Connected,
    /// There was one already.
    AlreadyConnected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a connect failed.
pub enum ConnectError {
    /// The address is this node's own.
    SelfAddress,
    /// Nothing listens there.
    Refused,
    /// No answer within the connect timeout.
    TimedOut(Duration),
    /// Another network error (unreachable host, ...).
    Unreachable(String),
    /// TCP connected but the handshake failed (bad hello, duplicate, bye...).
    Handshake(String),
    /// The node is quitting.
    ShuttingDown,
    /// The Registry failed while handling the request (it has been restarted).
    RegistryFailed,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::SelfAddress => write!(f, "that address is this node itself"),
            ConnectError::Refused => write!(f, "connection refused (is a peer listening there?)"),
            ConnectError::TimedOut(d) => write!(f, "no answer within {}", human(*d)),
            ConnectError::Unreachable(why) => write!(f, "cannot connect: {why}"),
            ConnectError::Handshake(why) => {
                // A Session's own reason may already say so.
                let why = why.strip_prefix("handshake failed: ").unwrap_or(why);
                write!(f, "handshake failed: {why}")
            }
            ConnectError::ShuttingDown => write!(f, "node is shutting down"),
            ConnectError::RegistryFailed => {
                write!(
                    f,
                    "the registry failed handling this (it was restarted); try again"
                )
            }
        }
    }
}

impl std::error::Error for ConnectError {}

guarded_handler!(
    Registry,
    Connect as ResponseFuture<Result<ConnectOutcome, ConnectError>>,
    |act, msg, ctx| act.on_connect(msg, ctx),
    on_panic: Box::pin(async { Err(ConnectError::RegistryFailed) }),
);

impl Registry {
    fn on_connect(
        &mut self,
        msg: Connect,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<ConnectOutcome, ConnectError>> {
        if self.draining() {
            return Box::pin(async { Err(ConnectError::ShuttingDown) });
        }
        if self.peers.is_self(&msg.to) {
            return Box::pin(async { Err(ConnectError::SelfAddress) });
        }
        if self.peers.session_for(&msg.to).is_some() {
            return Box::pin(async { Ok(ConnectOutcome::AlreadyConnected) });
        }
        let (tx, rx) = oneshot::channel();
        self.dial(msg.to, Some(tx), ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(ConnectError::ShuttingDown)) })
    }

    /// Starts connecting to `to` unless a dial is already under way; `waiter` learns the end.
    pub(super) fn dial(
        &mut self,
        to: PeerAddr,
        waiter: Option<DialWaiter>,
        ctx: &mut Context<Self>,
    ) {
        self.dial_expecting(to, waiter, None, ctx)
    }

    /// Like `dial`, the peer to prove `expected` if given (a nearby peer named by the user,
    /// whose announcement is what they mean), else what `expectation_for` finds.
    pub(super) fn dial_expecting(
        &mut self,
        to: PeerAddr,
        waiter: Option<DialWaiter>,
        expected: Option<Expectation>,
        ctx: &mut Context<Self>,
    ) {
        if self.classic.is_classic(&to) {
            // peerchat's protocol is never spoken to a classic peer (registry/classic.rs).
            let why = format!(
                "{to} is a classic peer: there is no connection to make, write to it with /msg"
            );
            if let Some(waiter) = waiter {
                let _ = waiter.send(Err(ConnectError::Unreachable(why)));
            }
            return;
        }
        // Listed even when a dial is already under way: the address may have left the list
        // meanwhile (its chats were cancelled) and is wanted again.
        self.peers.know(to);
        if self.dialer.begin(to, waiter) {
            match expected.or_else(|| self.expectation_for(&to)) {
                Some(expected) => self.expecting.insert(to, expected),
                None => self.expecting.remove(&to),
            };
            self.open_connection(to, ctx);
        }
    }

    /// The key a dial to `to` must prove, if any: the one pinned for the address, else the
    /// one it was introduced with, else the one announced for it on the LAN. An address a
    /// key's own connection stands behind expects nothing more than its pin.
    fn expectation_for(&self, to: &PeerAddr) -> Option<Expectation> {
        let announced = self.nearby.iter().find(|peer| peer.addrs.contains(to));
        trust::expectation(
            self.pins.pinned_at(to),
            self.peers.introduced_at(to),
            announced.map(|peer| (peer.id.as_str(), peer.name.as_str())),
        )
    }

    /// The TCP connect of a dial; it ends when the Session it starts registers or closes.
    fn open_connection(&mut self, to: PeerAddr, ctx: &mut Context<Self>) {
        let limit = self.timeouts.connect;
        let connect = async move {
            actix_rt::time::timeout(limit, TcpStream::connect(to.socket_addr())).await
        };
        ctx.spawn(connect.into_actor(self).map(move |result, act, ctx| {
            let stream = match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return act.dial_failed(to, connect_error(err), ctx),
                Err(_) => return act.dial_failed(to, ConnectError::TimedOut(limit), ctx),
            };
            let template = Arc::new(act.template(ctx));
            let expected = act.expecting.get(&to).map(|expected| expected.key);
            let direction = Direction::Outbound { dialed: to };
            if let Err(err) = Session::start_expecting(stream, direction, expected, template) {
                act.dial_failed(to, connect_error(err), ctx);
            }
        }));
    }

    pub(super) fn dial_failed(
        &mut self,
        to: PeerAddr,
        error: ConnectError,
        ctx: &mut Context<Self>,
    ) {
        tracing::info!(peer = %to, "connect failed: {error}");
        self.expecting.remove(&to);
        self.dialer.finish(&to, Err(error.clone()));
        if self.peers.session_for(&to).is_none() {
            self.retry_later(to, error.to_string(), ctx);
        }
    }

    /// Chats wait for `to`, or its peer is one to keep up with, and it cannot be reached
    /// now: try again after a backoff (capped; the give-up time is for chats only).
    pub(super) fn retry_later(&mut self, to: PeerAddr, reason: String, ctx: &mut Context<Self>) {
        let waiting = self.outbox.note_error(&to, &reason);
        let wanted = waiting > 0 || self.keeps_up_at(&to);
        if !wanted || self.draining() || self.dialer.is_dialing(&to) {
            return;
        }
        let seed = self.next_message_id ^ u64::from(to.port()) ^ now_ms();
        let (retry_in, previous) = self.dialer.plan_redial(to, seed, |pause| {
            ctx.run_later(pause, move |act, ctx| act.redial(to, ctx))
        });
        if let Some(timer) = previous {
            ctx.cancel_future(timer);
        }
        if waiting > 0 {
            self.emit(NodeEvent::DeliveryDelayed {
                to,
                waiting,
                reason,
                retry_in,
            });
        }
    }

    fn redial(&mut self, to: PeerAddr, ctx: &mut Context<Self>) {
        let wanted = self.outbox.waiting(&to) > 0 || self.keeps_up_at(&to);
        if wanted && self.peers.session_for(&to).is_none() && !self.draining() {
            self.dial(to, None, ctx);
        } else if !wanted {
            // Its timer has fired: nothing is planned for `to` any more.
            self.dialer.cancel_redial(&to);
        }
    }

    /// `to` is the address of a peer we had a session with, lost, and mean to get back.
    fn keeps_up_at(&self, to: &PeerAddr) -> bool {
        let key = self.peers.route(to);
        key.is_some_and(|key| self.peers.keeps_up(&key) && self.peers.session_of(&key).is_none())
    }

    /// A peer we had a session with has none now: redial it (quietly, unless chats wait)
    /// until it answers or the user disconnects it.
    pub(super) fn keep_up(&mut self, key: PeerKey, ctx: &mut Context<Self>) {
        let Some(addr) = self.peers.address_of(&key) else {
            return;
        };
        if self.peers.keeps_up(&key) && !self.dialer.redial_planned(&addr) {
            self.retry_later(addr, "connection lost".into(), ctx);
        }
    }

    /// A restarted Registry: its Sessions register again, and its dials start over.
    pub(super) fn after_restart(&mut self, ctx: &mut Context<Self>) {
        for (_, live) in self.peers.all_sessions() {
            live.tell(Reannounce);
        }
        // Dials in flight died with the old incarnation; their waiters still wait.
        for to in self.dialer.dialing() {
            self.open_connection(to, ctx);
        }
        // So did the redial timers: those peers are dialed now (a failure plans anew).
        for to in self.dialer.forget_redials() {
            let wanted = self.outbox.waiting(&to) > 0 || self.keeps_up_at(&to);
            if wanted && !self.peers.is_rejoining(&to) && !self.draining() {
                self.dial(to, None, ctx);
            }
        }
    }
}

fn connect_error(err: std::io::Error) -> ConnectError {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        _ => ConnectError::Unreachable(err.to_string()),
    }
}

/// Menu 3: ask connected peers for their peers, then connect to every known one.
#[derive(Message, Debug)]
#[rtype(result = "ConnectAllReport")]
pub struct ConnectAll;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
/// What menu 3 did.
pub struct ConnectAllReport {
    /// Peers that were connected already.
    pub already_connected: Vec<PeerAddr>,
    /// Every dial and how it ended.
    pub attempts: Vec<(PeerAddr, Result<ConnectOutcome, ConnectError>)>,
    /// Peers not dialed this time: one menu 3 dials at most [`MAX_DIALS_AT_ONCE`].
    pub not_tried: usize,
}

/// Most dials one menu 3 starts (docs/limits.md): a node that learned many peers must not
/// become a flood of connections at the press of a key; the rest wait for the next press.
pub const MAX_DIALS_AT_ONCE: usize = 64;

guarded_handler!(
    Registry,
    ConnectAll as ResponseActFuture<Self, ConnectAllReport>,
    |act, msg, ctx| act.on_connect_all(msg, ctx),
    on_panic: Box::pin(actix::fut::ready(ConnectAllReport::default())),
);

impl Registry {
    fn on_connect_all(
        &mut self,
        _: ConnectAll,
        _: &mut Context<Self>,
    ) -> ResponseActFuture<Self, ConnectAllReport> {
        let refreshes: Vec<_> = self
            .peers
            .connected()
            .iter()
            .filter_map(|key| self.peers.session_of(key))
            .filter_map(|(_, live)| live.addr())
            .map(|session| ask(Role::Registry, &session, RefreshPeers))
            .collect();
        let refreshed = actix_rt::time::timeout(self.timeouts.peer_refresh, join_all(refreshes));
        Box::pin(refreshed.into_actor(self).then(|_, act, ctx| {
            let mut report = ConnectAllReport::default();
            let mut waits = Vec::new();
            let (connected, mut targets) = act.dial_targets();
            report.already_connected = connected;
            report.not_tried = targets.len().saturating_sub(MAX_DIALS_AT_ONCE);
            targets.truncate(MAX_DIALS_AT_ONCE);
            for (addr, expected) in targets {
                if act.peers.is_self(&addr) || act.draining() {
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                act.dial_expecting(addr, Some(tx), expected, ctx);
                waits.push(
                    async move { (addr, rx.await.unwrap_or(Err(ConnectError::ShuttingDown))) },
                );
            }
            join_all(waits).into_actor(act).map(move |attempts, _, _| {
                report.attempts = attempts;
                report
            })
        }))
    }

    /// Menu 3's split: the connected peers (at the address each is known by), and one
    /// address to dial for every other listening peer, every address not answered yet and
    /// every nearby peer (which must prove the key it announced).
    fn dial_targets(&self) -> (Vec<PeerAddr>, Vec<(PeerAddr, Option<Expectation>)>) {
        let (mut connected, mut targets) = (Vec::new(), Vec::new());
        for (key, record) in self.peers.keys() {
            if let Some((_, live)) = self.peers.session_of(key) {
                connected.push(live.peer);
            } else if !record.one_shot {
                targets.extend(self.peers.address_of(key).map(|addr| (addr, None)));
            }
        }
        targets.extend(self.peers.unkeyed().map(|addr| (*addr, None)));
        for (addr, expected) in self.nearby_targets() {
            if !targets.iter().any(|(known, _)| *known == addr) {
                targets.push((addr, Some(expected)));
            }
        }
        (connected, targets)
    }
}

/// Menu 2.
#[derive(Message, Debug)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct ListPeers;

guarded_handler!(
    Registry,
    ListPeers as MessageResult<ListPeers>,
    |act, _, _| MessageResult(act.peers.list(|peer| act.outbox.waiting(peer))),
    on_panic: MessageResult(Vec::new()),
);

/// Menu 5: bye to one peer, which stays known.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), NotConnected>")]
pub struct Disconnect {
    /// The peer to say bye to.
    pub peer: PeerAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Disconnect of a peer that is not connected.
pub struct NotConnected(pub PeerAddr);

impl fmt::Display for NotConnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not connected to {}", self.0)
    }
}

impl std::error::Error for NotConnected {}

impl Handler<Disconnect> for Registry {
    type Result = Result<(), NotConnected>;

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) -> Self::Result {
        let peer = msg.peer;
        guarded(
            self,
            ctx,
            move || Err(NotConnected(peer)),
            |act, _| match act.disconnect(msg.peer, "disconnected by user") {
                true => Ok(()),
                false => Err(NotConnected(msg.peer)),
            },
        )
    }
}

/// Menu 4: bye to every connected peer; answers how many.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct DisconnectAll;

guarded_handler!(
    Registry,
    DisconnectAll,
    |act, _, _| act.disconnect_all(),
    on_panic: 0,
);

impl Registry {
    /// Menu 4: says bye to every connected peer; how many there were.
    fn disconnect_all(&mut self) -> usize {
        let connected = self.peers.connected();
        connected
            .into_iter()
            .filter(|key| self.disconnect_key(*key, "disconnected by user"))
            .count()
    }

    /// Says bye to the Session of the peer at `peer` (any of its addresses).
    pub(super) fn disconnect(&mut self, peer: PeerAddr, reason: &str) -> bool {
        let key = self.peers.route(&peer).or_else(|| self.peers.key_at(&peer));
        key.is_some_and(|key| self.disconnect_key(key, reason))
    }

    /// Says bye to `key`'s Session; the peer is disconnected from now on, and not redialed.
    pub(super) fn disconnect_key(&mut self, key: PeerKey, reason: &str) -> bool {
        self.peers.let_go(&key);
        let Some(session) = self.peers.disconnect(&key) else {
            return false;
        };
        let Some(live) = self.peers.session(session) else {
            return false;
        };
        let close = Close {
            reason: reason.to_string(),
        };
        live.tell(close);
        let (peer, one_shot) = (live.peer, live.one_shot);
        if one_shot {
            // Transient: its leaving is no news (and it is dropped once its Session ends).
            return true;
        }
        let name = self.peers.name_of(&key);
        self.emit(NodeEvent::PeerDisconnected {
            peer,
            name,
            reason: reason.to_string(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectError;

    #[test]
    fn a_handshake_failure_says_so_once() {
        let from_session = ConnectError::Handshake("handshake failed: key mismatch".into());
        assert_eq!(from_session.to_string(), "handshake failed: key mismatch");
        let from_registry = ConnectError::Handshake("bob proved another key".into());
        assert_eq!(
            from_registry.to_string(),
            "handshake failed: bob proved another key"
        );
    }
}
