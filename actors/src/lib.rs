//! The actors of peerchat, a peer-to-peer terminal chat, and the wire protocol they speak.
//!
//! A node is a few actors, each owning its state alone and talking only by messages:
//!
//! - [`registry::Registry`] owns the peer set, the outbox of chats waiting for an ack, the
//!   record of chats already shown, and the events;
//! - [`listener::Listener`] owns the listening socket and starts a [`session::Session`] for
//!   each accepted connection;
//! - [`session::Session`] owns one TCP connection: handshake, frames, heartbeat;
//! - [`console::Console`] owns the terminal and turns menu input into messages;
//! - [`discovery::Discovery`] announces the node on the LAN (mDNS/DNS-SD) and finds others,
//!   which it tells the Registry about;
//! - [`supervisor::NodeSupervisor`] is the root of the supervision tree: Registry, Listener
//!   and Console are restarted when they fail (a panic included), Sessions are temporary.
//!
//! [`Node`] starts a node's actors and is the API that tests, the binary and the Console use.
//! The repository's `docs/` is a small book on the design (start at `docs/README.md`);
//! `docs/actors.md` lists every message each actor handles and sends.
//!
//! Every message between actors can be printed as it passes, one line each: the binary's
//! `--trace`, or [`trace::enable`] from a test or a program (see [`trace`]).
//!
//! # Example
//!
//! Two nodes on this machine, a chat from one to the other, and its ack:
//!
//! ```
//! use std::time::Duration;
//! use peerchat_actors::{Node, NodeConfig, NodeEvent};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     actix_rt::System::new().block_on(async {
//!         let alice = Node::start(NodeConfig::local("alice")).await?;
//!         let bob = Node::start(NodeConfig::local("bob")).await?;
//!         let mut alice_events = alice.events();
//!         let mut bob_events = bob.events();
//!
//!         let id = alice.send_chat(bob.peer_addr(), "hi bob").await?;
//!
//!         // Bob's node hands the chat to its subscribers (its console) ...
//!         let text = bob_events
//!             .wait_for(Duration::from_secs(5), |event| match event {
//!                 NodeEvent::ChatReceived { text, .. } => Some(text.clone()),
//!                 _ => None,
//!             })
//!             .await?;
//!         assert_eq!(text, "hi bob");
//!         // ... and only then acks it, which Alice's node reports as delivered.
//!         alice_events
//!             .wait_for(Duration::from_secs(5), |event| match event {
//!                 NodeEvent::Delivered { id: acked, .. } if *acked == id => Some(()),
//!                 _ => None,
//!             })
//!             .await?;
//!
//!         alice.shutdown(Duration::from_secs(1)).await;
//!         bob.shutdown(Duration::from_secs(1)).await;
//!         Ok(())
//!     })
//! }
//! ```

#![warn(missing_docs)]

pub mod child;
pub mod classic;
pub mod classic_session;
pub mod config;
pub mod console;
pub mod discovery;
pub mod events;
pub mod faults;
pub mod heartbeat;
pub mod helpers;
pub mod identity;
pub mod key;
pub mod known_peers;
pub mod limits;
pub mod listener;
pub mod nearby;
pub mod node;
pub mod noise;
pub mod peer;
pub mod reasons;
pub mod registry;
pub mod sanitize;
pub mod session;
mod spare;
pub mod store;
pub mod supervision;
pub mod supervisor;
pub mod trace;
pub mod wire;
pub mod writer;

pub use config::{NodeConfig, Timeouts};
pub use events::{EventBatch, EventSink, EventStream, NodeEvent, NodeEvents};
pub use key::{Fingerprint, PeerKey};
pub use node::{Node, NodeStopped, StartError};
pub use peer::{MessageId, PeerAddr, PeerInfo};
pub use registry::{ConnectAllReport, ConnectError, ConnectOutcome, SendError};
