//! The peers the Discovery actor found on the LAN, as the Registry keeps them: apart from the
//! peer table, so that a peer only announced is never passed on in `peers` frames until a
//! session with it has worked (then it is in the table like any peer). `NearbyPeers` comes
//! from the Discovery actor; `ListNearby` from menu 2 / `/peers` through `Node::nearby`.

use actix::prelude::*;

use super::Registry;
use crate::guarded_handler;
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
