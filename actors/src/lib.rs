//! The actors of peerchat and the wire protocol they speak.
//!
//! - [`registry::Registry`] owns the peer set, the outbox and the events;
//! - [`listener::Listener`] accepts connections and starts a [`session::Session`] for each;
//! - [`session::Session`] owns one TCP connection;
//! - [`console::Console`] turns menu input into messages for the Registry.
//!
//! [`Node`] starts a node's actors and is the API tests and the console use.

pub mod config;
pub mod console;
pub mod events;
pub mod faults;
pub mod listener;
pub mod node;
pub mod peer;
pub mod registry;
pub mod session;
pub mod store;
pub mod supervisor;
pub mod trace;
pub mod wire;
pub mod writer;

pub use config::{NodeConfig, Timeouts};
pub use events::{EventStream, NodeEvent};
pub use node::{Node, NodeStopped, StartError};
pub use peer::{MessageId, NodeId, PeerAddr, PeerInfo};
pub use registry::{ConnectAllReport, ConnectError, ConnectOutcome, SendError};
