//! `Node`'s calls for mistakes that should not linger (issue 14): `/cancel` and `/forget`,
//! each one message to the Registry (registry/forget.rs).

use super::{Node, NodeStopped};
use crate::peer::PeerAddr;
use crate::registry::{CancelWaiting, Forget, Forgotten};
use crate::trace::ask;

impl Node {
    /// Cancels the chats waiting for `peer` (each reported `DeliveryFailed`, reason
    /// [`crate::registry::CANCELLED`]) and its planned reconnects; answers how many chats.
    pub async fn cancel_waiting(&self, peer: PeerAddr) -> Result<usize, NodeStopped> {
        ask(self.caller, &self.registry, CancelWaiting { peer })
            .await
            .map_err(|_| NodeStopped)
    }

    /// Forgets `peer`: cancels its chats and reconnects, says bye if connected.
    pub async fn forget(&self, peer: PeerAddr) -> Result<Forgotten, NodeStopped> {
        ask(self.caller, &self.registry, Forget { peer })
            .await
            .map_err(|_| NodeStopped)
    }
}
