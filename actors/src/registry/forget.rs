//! Mistakes that should not linger (issue 14): cancelling the chats waiting for a peer
//! (`/cancel`) and forgetting a peer (`/forget`). Asked by the Console through `Node`; uses the
//! Outbox (chats.rs reports each cancelled chat as failed), the Dialer and the peer table.

use actix::prelude::*;

use super::Registry;
use crate::guarded_handler;
use crate::peer::PeerAddr;

/// Why a cancelled chat failed, in its `DeliveryFailed` event.
pub const CANCELLED: &str = "cancelled by you";

/// Cancels every chat waiting for `peer` (each reported `DeliveryFailed` with
/// [`CANCELLED`]) and the reconnects planned for it; answers how many chats. A `peer` that
/// never answered a handshake leaves the peer list too (see `drop_if_never_answered`).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct CancelWaiting {
    /// The peer.
    pub peer: PeerAddr,
}

guarded_handler!(
    Registry,
    CancelWaiting,
    |act, msg, ctx| {
        let cancelled = act.cancel_waiting(msg.peer, ctx);
        act.drop_if_never_answered(&msg.peer);
        cancelled
    },
    on_panic: 0,
);

/// Forgets `peer`: its waiting chats are cancelled, its reconnects stopped, its session
/// closed, and it leaves the peer list (its pinned key, if any, stays pinned).
#[derive(Message, Debug)]
#[rtype(result = "Forgotten")]
pub struct Forget {
    /// The peer.
    pub peer: PeerAddr,
}

/// What forgetting a peer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct Forgotten {
    /// Chats cancelled.
    pub cancelled: usize,
    /// It was connected, and was said bye to.
    pub disconnected: bool,
    /// It was in the peer list, and is no longer.
    pub was_listed: bool,
}

guarded_handler!(
    Registry,
    Forget,
    |act, msg, ctx| act.forget(msg.peer, ctx),
    on_panic: Forgotten::default(),
);

impl Registry {
    fn cancel_waiting(&mut self, peer: PeerAddr, ctx: &mut Context<Self>) -> usize {
        let waiting = self.outbox.waiting(&peer);
        self.fail_waiting(Some(&peer), CANCELLED);
        if let Some(timer) = self.dialer.cancel_redial(&peer) {
            ctx.cancel_future(timer);
        }
        waiting
    }

    fn forget(&mut self, peer: PeerAddr, ctx: &mut Context<Self>) -> Forgotten {
        let cancelled = self.cancel_waiting(peer, ctx);
        let disconnected = self.disconnect(peer, "forgotten by user");
        let was_listed = self.peers.forget(&peer);
        Forgotten {
            cancelled,
            disconnected,
            was_listed,
        }
    }

    /// The chats to `addr` failed or were cancelled. If nothing else waits for it and no
    /// handshake ever answered there, it was a mistake (a mistyped recipient, a dead port):
    /// it leaves the peer list, so it is neither listed, redialed nor passed on. Answers
    /// whether it was dropped. A redial already planned finds nothing wanted and stops.
    pub(super) fn drop_if_never_answered(&mut self, addr: &PeerAddr) -> bool {
        let never_answered = self.peers.unkeyed().any(|unkeyed| unkeyed == addr);
        let still_wanted = self.outbox.waiting(addr) > 0
            || self.peers.session_for(addr).is_some()
            || self.dialer.has_waiters(addr);
        if !never_answered || still_wanted {
            return false;
        }
        tracing::info!(peer = %addr, "never answered and nothing waits for it: forgotten");
        self.peers.forget(addr)
    }
}
