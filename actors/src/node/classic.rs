//! `Node`'s calls for classic peers (issue 15): each is one message to the Registry
//! (registry/classic.rs). Kept beside node.rs so that the two change apart.

use super::Node;
use crate::classic::peers::ClassicPeerInfo;
use crate::peer::{MessageId, PeerAddr};
use crate::registry::{ListClassicPeers, SendClassic, SendError};
use crate::trace::ask;

impl Node {
    /// Queues a chat to the classic peer `to` (known as classic from now on); the outcome
    /// arrives as `Delivered` or `DeliveryFailed` with this id. A text longer than a classic
    /// receiver reads goes as several messages, in order.
    pub async fn send_classic(
        &self,
        to: PeerAddr,
        text: impl Into<String>,
    ) -> Result<MessageId, SendError> {
        let text = text.into();
        ask(self.caller, &self.registry, SendClassic { to, text })
            .await
            .unwrap_or(Err(SendError::ShuttingDown))
    }

    /// Every classic peer this node knows (menu 2 lists them apart, marked classic).
    pub async fn classic_peers(&self) -> Result<Vec<ClassicPeerInfo>, super::NodeStopped> {
        ask(self.caller, &self.registry, ListClassicPeers)
            .await
            .map_err(|_| super::NodeStopped)
    }
}
