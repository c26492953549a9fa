//! The peers the Discovery actor found on the LAN, as the Registry keeps them: apart from the
//! peer table, so that a peer only announced is never passed on in `peers` frames until a
//! session with it has worked (then it is in the table like any peer). `NearbyPeers` comes
//! from the Discovery actor; `ListNearby` from menu 2 / `/peers` and `ConnectAnnounced` from
//! a name the user gave, both through `Node`. Every dial to a nearby peer expects the key it
//! announced: a session proving another is refused and reported (`KeyMismatch`).

use actix::prelude::*;
use futures::channel::oneshot;

use super::connections::{ConnectError, ConnectOutcome};
use super::trust::Expectation;
use super::Registry;
use crate::guarded_handler;
use crate::key::PeerKey;
use crate::nearby::{node_identity, NearbyPeer};
use crate::peer::PeerAddr;

/// From the Discovery actor: every peer announced on the LAN now (the whole list, each time
/// it changes).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NearbyPeers(pub Vec<NearbyPeer>);

guarded_handler!(Registry, NearbyPeers, |act, msg, _| act.nearby = msg.0);

/// The nearby peers this node has no session with (menu 2, `/peers`).
#[derive(Message, Debug)]
#[rtype(result = "Vec<NearbyPeer>")]
pub struct ListNearby;

guarded_handler!(
    Registry,
    ListNearby as MessageResult<ListNearby>,
    |act, _, _| MessageResult(act.nearby_not_connected()),
    on_panic: MessageResult(Vec::new()),
);

impl Registry {
    /// Nearby peers none of whose addresses a live session serves, and whose announced
    /// identity is not that of a connected node.
    fn nearby_not_connected(&self) -> Vec<NearbyPeer> {
        let connected = |addr: &PeerAddr| self.peers.session_for(addr).is_some();
        let connected_ids: Vec<String> = self
            .peers
            .all_sessions()
            .map(|(_, session)| node_identity(&session.key))
            .collect();
        self.nearby
            .iter()
            .filter(|peer| !peer.addrs.iter().any(connected) && !connected_ids.contains(&peer.id))
            .cloned()
            .collect()
    }
}

/// Connect to a nearby peer the user named: at `to`, which must prove `key`, the key it
/// announced as `name`. Ends well only with a session of that key.
#[derive(Message, Debug)]
#[rtype(result = "Result<ConnectOutcome, ConnectError>")]
pub struct ConnectAnnounced {
    /// Where it announced it listens.
    pub to: PeerAddr,
    /// The key it announced.
    pub key: PeerKey,
    /// The name it announced (said in a mismatch report).
    pub name: String,
}

guarded_handler!(
    Registry,
    ConnectAnnounced as ResponseActFuture<Self, Result<ConnectOutcome, ConnectError>>,
    |act, msg, ctx| act.on_connect_announced(msg, ctx),
    on_panic: Box::pin(actix::fut::ready(Err(ConnectError::RegistryFailed))),
);

impl Registry {
    fn on_connect_announced(
        &mut self,
        msg: ConnectAnnounced,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ConnectOutcome, ConnectError>> {
        let ConnectAnnounced { to, key, name } = msg;
        let refused = |why: ConnectError| -> ResponseActFuture<Self, _> {
            Box::pin(actix::fut::ready(Err(why)))
        };
        if self.draining() {
            return refused(ConnectError::ShuttingDown);
        }
        if self.peers.is_self(&to) || key == self.me.keys.public() {
            return refused(ConnectError::SelfAddress);
        }
        if self.peers.session_for(&to).is_none() {
            let (tx, rx) = oneshot::channel();
            let expected = announced_expectation(key, &name);
            self.dial_expecting(to, Some(tx), Some(expected), ctx);
            let dialed = async move { rx.await.unwrap_or(Err(ConnectError::ShuttingDown)) };
            // A dial already under way (with another expectation) may have connected
            // someone else: only a session of the announced key counts.
            return Box::pin(dialed.into_actor(self).map(move |outcome, act, _| {
                outcome.and_then(|outcome| act.serves_key(to, key, &name).map(|_| outcome))
            }));
        }
        let already = self.serves_key(to, key, &name);
        Box::pin(actix::fut::ready(
            already.map(|_| ConnectOutcome::AlreadyConnected),
        ))
    }

    /// Whether the session at `to` is the announced key's; if another key's, why not.
    fn serves_key(&self, to: PeerAddr, key: PeerKey, name: &str) -> Result<(), ConnectError> {
        match self.peers.session_for(&to) {
            Some((_, live)) if live.key == key => Ok(()),
            Some((_, live)) => Err(ConnectError::Handshake(format!(
                "{to} proved key {}, not {} (announced on the LAN as {name})",
                live.key.fingerprint(),
                key.fingerprint()
            ))),
            None => Err(ConnectError::Handshake(format!(
                "{to} did not stay connected"
            ))),
        }
    }

    /// Menu 3's nearby peers: one address of each nearby peer not connected whose
    /// announced identity is a key, with that key to prove.
    pub(super) fn nearby_targets(&self) -> Vec<(PeerAddr, Expectation)> {
        self.nearby_not_connected()
            .into_iter()
            .filter_map(|peer| {
                let key = PeerKey::from_hex(&peer.id)?;
                let addr = *peer.addrs.first()?;
                Some((addr, announced_expectation(key, &peer.name)))
            })
            .collect()
    }
}

/// What a dial to a nearby peer expects: the key it announced as `name`.
fn announced_expectation(key: PeerKey, name: &str) -> Expectation {
    Expectation {
        key,
        source: Some(format!("announced on the LAN as {name}")),
    }
}
