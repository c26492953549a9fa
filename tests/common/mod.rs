//! Helpers shared by the integration tests: real nodes on 127.0.0.1 port 0, and a raw TCP
//! client that speaks the wire protocol (v2: Noise, then sealed maps) by hand.
#![allow(dead_code)]

pub mod netns;
pub mod process;
pub mod proxy;

use std::time::Duration;

use std::net::SocketAddr;

use bytes::BytesMut;
use futures::StreamExt;
use peerchat_actors::noise::{
    run_handshake, Handshake, HandshakeCodec, HandshakeOptions, NoiseError, Sealer, StaticKeypair,
    TransportCodec,
};
use peerchat_actors::wire::{encode_frame_into, Frame, Hello};
use peerchat_actors::{EventStream, Node, NodeConfig, NodeEvent, PeerAddr, PeerKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

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

/// A peer written by hand: a real Noise handshake with a fresh key (through the crate's
/// `noise.rs`), then exactly the frames a test wants, sealed; or raw bytes, unsealed.
pub struct RawPeer {
    reader: FramedRead<OwnedReadHalf, TransportCodec>,
    writer: OwnedWriteHalf,
    sealer: Sealer,
    /// This peer's own key.
    pub keys: StaticKeypair,
    /// The key the node proved.
    pub node_key: PeerKey,
    /// The node's hello.
    pub node_hello: Hello,
}

/// A TCP connection to `to`, nothing said yet.
pub async fn tcp(to: PeerAddr) -> TcpStream {
    tokio::time::timeout(WAIT, TcpStream::connect(to.socket_addr()))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until the node closes the connection (bounded): true if it did.
pub async fn closes(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

impl RawPeer {
    /// Connects and completes the handshake with a fresh key, as a node called "raw"
    /// listening on `listen_port`; reads the node's first `peers`.
    pub async fn handshake(to: PeerAddr, listen_port: u16) -> RawPeer {
        let keys = StaticKeypair::generate().unwrap();
        let mut raw = RawPeer::handshake_as(to, keys, Hello::new("raw", listen_port))
            .await
            .expect("handshake");
        let peers = raw
            .next()
            .await
            .expect("node sends peers after the handshake");
        assert!(matches!(peers, Frame::Peers { .. }), "got {peers:?}");
        raw
    }

    /// Connects and runs the handshake with these keys and hello; nothing read after it.
    pub async fn handshake_as(
        to: PeerAddr,
        keys: StaticKeypair,
        hello: Hello,
    ) -> Result<RawPeer, NoiseError> {
        let (read, mut writer) = tcp(to).await.into_split();
        let mut reader = FramedRead::new(read, HandshakeCodec);
        let start = Handshake::initiator(&keys, &hello, HandshakeOptions::default())?;
        let start = (start.0, Some(start.1));
        let established =
            tokio::time::timeout(WAIT, run_handshake(&mut reader, &mut writer, start))
                .await
                .expect("handshake in time")?;
        Ok(RawPeer {
            reader: reader.map_decoder(|_| TransportCodec::new(established.opener)),
            writer,
            sealer: established.sealer,
            keys,
            node_key: established.remote_key,
            node_hello: established.remote_hello,
        })
    }

    /// Our end of the connection: the node sees it as the remote address.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().unwrap()
    }

    /// One frame, sealed in a transport message of its own.
    pub async fn send(&mut self, frame: &Frame) {
        self.send_all(std::slice::from_ref(frame)).await;
    }

    /// Frames sealed together, as a node's writer batches them.
    pub async fn send_all(&mut self, frames: &[Frame]) {
        let mut plain = BytesMut::new();
        for frame in frames {
            encode_frame_into(frame, &mut plain).unwrap();
        }
        let mut sealed = BytesMut::new();
        self.sealer.seal_frames(&plain, &mut sealed).unwrap();
        self.send_raw(sealed.to_vec()).await;
    }

    /// Any plaintext (garbage, a map written by hand), sealed as one transport message.
    pub async fn send_sealed(&mut self, plaintext: &[u8]) {
        let mut sealed = BytesMut::new();
        self.sealer.seal(plaintext, &mut sealed).unwrap();
        self.send_raw(sealed.to_vec()).await;
    }

    /// Bytes as they are, unsealed.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(WAIT, self.writer.write_all(&bytes))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// Next frame; `None` when the node closed the connection.
    pub async fn next(&mut self) -> Option<Frame> {
        match tokio::time::timeout(WAIT, self.reader.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(Some(Err(NoiseError::Io(_)))) | Ok(None) => None,
            Ok(Some(Err(err))) => panic!("node sent something undecodable: {err}"),
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

    /// Reads until the end of the connection, which must come without a `bye`.
    pub async fn expect_close_without_bye(&mut self) {
        loop {
            match self.next().await {
                Some(Frame::Bye { reason }) => panic!("a bye ({reason:?}) where none is due"),
                Some(_) => continue,
                None => return,
            }
        }
    }

    /// True if the node closed the connection (reads until EOF, bounded).
    pub async fn closed(mut self) -> bool {
        closes(self.reader.get_mut()).await
    }

    pub async fn shutdown(mut self) {
        let _ = self.writer.shutdown().await;
    }

    /// Closes the writing half (a FIN after what was sent), keeping the reading half.
    pub async fn shutdown_write(&mut self) {
        let _ = self.writer.shutdown().await;
    }

    /// Its reading half, writing half and sealer, to read and write from two tasks.
    pub fn into_parts(
        self,
    ) -> (
        FramedRead<OwnedReadHalf, TransportCodec>,
        OwnedWriteHalf,
        Sealer,
    ) {
        (self.reader, self.writer, self.sealer)
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

/// A blocking v2 client on std's `TcpStream`, for tests that drive the binary: a Noise
/// handshake with a fresh key (the crate's `noise.rs`), then sealed frames.
pub struct BlockingPeer {
    pub stream: std::net::TcpStream,
    sealer: Sealer,
}

impl BlockingPeer {
    /// Connects to 127.0.0.1:`port` and completes the handshake as `name` listening on
    /// `listen_port`.
    pub fn connect(port: u16, name: &str, listen_port: u16) -> BlockingPeer {
        use peerchat_actors::noise::Step;
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let keys = StaticKeypair::generate().unwrap();
        let hello = Hello::new(name, listen_port);
        let (initiator, m1) =
            Handshake::initiator(&keys, &hello, HandshakeOptions::default()).unwrap();
        stream.write_all(&m1).expect("write message 1");
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).expect("message 2's length");
        let mut m2 = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut m2).expect("message 2");
        let Step::Done {
            reply: Some(m3),
            established,
        } = initiator.read(&m2).expect("message 2 verifies")
        else {
            panic!("the handshake is three messages")
        };
        stream.write_all(&m3).expect("write message 3");
        BlockingPeer {
            stream,
            sealer: established.sealer,
        }
    }

    /// Frames, sealed together.
    pub fn send(&mut self, frames: &[Frame]) {
        use std::io::Write;
        let mut plain = BytesMut::new();
        for frame in frames {
            encode_frame_into(frame, &mut plain).unwrap();
        }
        let mut sealed = BytesMut::new();
        self.sealer.seal_frames(&plain, &mut sealed).unwrap();
        self.stream.write_all(&sealed).expect("write");
    }
}

/// A trace sink a test can read (`trace::enable`): each write is a chunk on the channel.
pub struct TraceLines(pub std::sync::mpsc::Sender<String>);

impl std::io::Write for TraceLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads trace chunks into `all` until it holds every one of `needles`, for at most `WAIT`.
pub fn collect_until(rx: &std::sync::mpsc::Receiver<String>, all: &mut String, needles: &[&str]) {
    let until = std::time::Instant::now() + WAIT;
    while !needles.iter().all(|n| all.contains(n)) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => all.push_str(&chunk),
            Err(_) => panic!("trace lacks some of {needles:?}:\n{all}"),
        }
    }
}
