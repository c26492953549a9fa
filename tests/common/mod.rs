//! Helpers shared by the integration tests: real nodes on 127.0.0.1 port 0, and a raw TCP
//! client that speaks the wire protocol by hand.
#![allow(dead_code)]

pub mod netns;
pub mod process;
pub mod proxy;

use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use peerchat_actors::wire::{encode_frame, Frame, WireCodec, PROTOCOL_VERSION};
use peerchat_actors::{EventStream, Node, NodeConfig, NodeEvent, PeerAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// The one quick configuration for tests that need a silent link or a refused dial noticed
/// within a test's patience: heartbeats every 100 ms, a link silent for 600 ms is dead, an
/// unacked chat is resent after 5 s, and redials back off from 50 ms up to 300 ms.
pub fn fast_config(name: &str) -> NodeConfig {
    let mut config = NodeConfig::local(name);
    config.timeouts.ping_interval = Duration::from_millis(100);
    config.timeouts.idle = Duration::from_millis(600);
    config.timeouts.ack = Duration::from_secs(5);
    config.retry.first_backoff = Duration::from_millis(50);
    config.retry.max_backoff = Duration::from_millis(300);
    config
}

pub async fn start(name: &str) -> (Node, EventStream) {
    start_with(NodeConfig::local(name)).await
}

pub async fn start_with(config: NodeConfig) -> (Node, EventStream) {
    let node = Node::start(config).await.expect("node starts");
    let events = node.events();
    (node, events)
}

pub async fn connected(events: &mut EventStream, peer: PeerAddr) {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::PeerConnected { peer: p, .. } if *p == peer => Some(()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{peer} never connected: {e}"));
}

pub async fn disconnected(events: &mut EventStream, peer: PeerAddr) -> String {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::PeerDisconnected {
                peer: p, reason, ..
            } if *p == peer => Some(reason.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{peer} never disconnected: {e}"))
}

pub async fn received(events: &mut EventStream) -> (PeerAddr, String) {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::ChatReceived { from, text, .. } => Some((*from, text.clone())),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("no chat received: {e}"))
}

pub async fn delivered(events: &mut EventStream, id: u64) -> PeerAddr {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::Delivered { to, id: i, .. } if *i == id => Some(*to),
            NodeEvent::DeliveryFailed { id: i, reason, .. } if *i == id => {
                panic!("message {id} failed: {reason}")
            }
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("message {id} never delivered: {e}"))
}

/// A peer written by hand on top of the codec, to send exactly the frames a test wants.
pub struct RawPeer {
    pub framed: Framed<TcpStream, RawCodec>,
}

/// Encodes raw byte strings as they are and decodes frames with the real codec.
pub struct RawCodec;

impl tokio_util::codec::Decoder for RawCodec {
    type Item = Frame;
    type Error = peerchat_actors::wire::WireError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        WireCodec.decode(src)
    }
}

impl tokio_util::codec::Encoder<Vec<u8>> for RawCodec {
    type Error = peerchat_actors::wire::WireError;
    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

impl RawPeer {
    pub async fn connect(to: PeerAddr) -> RawPeer {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(to.socket_addr()))
            .await
            .expect("connect in time")
            .expect("connect");
        RawPeer {
            framed: Framed::new(stream, RawCodec),
        }
    }

    /// Connects and completes the handshake as node `node_id` listening on `listen_port`.
    pub async fn handshake(to: PeerAddr, node_id: u64, listen_port: u16) -> RawPeer {
        let mut raw = RawPeer::connect(to).await;
        let hello = raw.next().await.expect("node says hello first");
        assert!(matches!(hello, Frame::Hello { .. }), "got {hello:?}");
        raw.send(&Frame::Hello {
            protocol: PROTOCOL_VERSION,
            node_id,
            name: "raw".into(),
            listen_port,
        })
        .await;
        let peers = raw.next().await.expect("node sends peers after hello");
        assert!(matches!(peers, Frame::Peers { .. }), "got {peers:?}");
        raw
    }

    pub async fn send(&mut self, frame: &Frame) {
        self.send_bytes(encode_frame(frame).unwrap().to_vec()).await;
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(WAIT, self.framed.send(bytes))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// Next frame; `None` when the node closed the connection.
    pub async fn next(&mut self) -> Option<Frame> {
        match tokio::time::timeout(WAIT, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(Some(Err(err))) => panic!("node sent something undecodable: {err}"),
            Ok(None) => None,
            Err(_) => panic!("no frame from the node within {WAIT:?}"),
        }
    }

    /// Reads until a `bye` and then the end of the connection; returns the bye's reason.
    pub async fn expect_bye_and_close(&mut self) -> String {
        loop {
            match self.next().await {
                Some(Frame::Bye { reason }) => {
                    assert!(
                        self.next().await.is_none(),
                        "connection not closed after bye"
                    );
                    return reason;
                }
                Some(_) => continue,
                None => panic!("connection closed without a bye"),
            }
        }
    }

    /// True if the node closed the connection (reads until EOF, bounded).
    pub async fn closed(mut self) -> bool {
        let stream = self.framed.get_mut();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    pub async fn shutdown(mut self) {
        let _ = self.framed.get_mut().shutdown().await;
    }
}

/// A fresh directory under the system's temp dir, unique to this test run.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "peerchat-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A port on 127.0.0.1 where connections are refused for as long as this lives: a TCP socket
/// bound to it that never listens. A port merely found free could be taken meanwhile by a
/// node of a test running alongside, and a chat meant for nobody would be delivered.
pub struct RefusingPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).expect("bind 127.0.0.1:0");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound address")
            .port();
        RefusingPort {
            _socket: socket,
            port,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A port on 127.0.0.1 where nothing listens right now (for a peer that starts later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
