//! The baseline: peerchat's wire protocol written as a plain tokio program, no actors.
//!
//! It speaks what a peerchat node speaks on the same loopback TCP: both sides send `hello`
//! first, each answers the other's `hello` with a `peers` frame, chats are acked once handed to
//! the "console" (a channel, as in peerchat), repeated chat ids are acked but not handed over
//! again, a quiet peer is pinged and dropped after the idle timeout. Frames are encoded and
//! decoded with `peerchat_actors::wire`, so the bytes on the wire are the same.
//!
//! It is written the way a careful tokio program would be: one task per connection, reads
//! drained before writing, every frame queued while draining written with one `write_all`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures::{FutureExt, StreamExt};
use peerchat_actors::registry::PEERS_PER_FRAME;
use peerchat_actors::wire::{decode_payload, encode_frame_into, Frame, Hello, PeerEntry};
use peerchat_actors::PeerKey;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;

use crate::sys::{fail, Res};

/// peerchat's defaults (`Timeouts::default()`), used by the baseline too.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(6);
/// The baseline still speaks protocol 1's plaintext framing (no Noise): this bench is to be
/// brought to v2 (issue 12, "Speed and docs"). Until then it keeps v1's limits and framing
/// here, with v2's maps (its hello has no node id, its peers entries a key).
const PROTOCOL_VERSION: u64 = 1;
const MAX_PAYLOAD: usize = 65536;
/// The key a plaintext baseline gives the peers it passes on: it has none to give.
const NO_KEY: PeerKey = PeerKey::from_bytes([0; 32]);

/// v1's framing: a 4-byte big-endian length, then one map.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireCodec;

impl tokio_util::codec::Decoder for WireCodec {
    type Item = Frame;
    type Error = peerchat_actors::wire::WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(peerchat_actors::wire::WireError::TooLarge { len });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(4 + len);
        decode_payload(&frame[4..]).map(Some)
    }
}

/// Room for `peers` entries in one frame: the payload limit less the frame's own keys.
const PEERS_ROOM: usize = MAX_PAYLOAD - 32;
/// Chat ids remembered per sender to spot repeats, as peerchat's Registry does.
const SEEN_PER_SENDER: usize = 65536;

/// Who a baseline process (or a bench client) says it is in its `hello`.
#[derive(Clone, Debug)]
pub struct Identity {
    /// v1's node id: no longer in a `hello` (v2 has none), kept until the baseline is
    /// brought to v2.
    #[allow(dead_code)]
    pub node_id: u64,
    pub name: String,
    pub listen_port: u16,
}

impl Identity {
    pub fn hello(&self) -> Frame {
        Frame::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            name: self.name.clone(),
            listen_port: self.listen_port,
        })
    }
}

/// Milliseconds since the Unix epoch, the `sent_at_ms` of a chat.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a serving process counts; the parent reads it with the `stats` command.
#[derive(Default)]
pub struct Stats {
    /// Handshakes completed.
    pub connected: Cell<u64>,
    /// Registered sessions that ended.
    pub disconnected: Cell<u64>,
    /// Connections that ended before their handshake completed.
    pub refused: Cell<u64>,
    /// Chats handed to the console.
    pub chats: Cell<u64>,
    /// `disconnected + refused`, watched by `wait-ended`.
    pub ended: RefCell<Option<watch::Sender<u64>>>,
}

impl Stats {
    pub fn new() -> Rc<Stats> {
        let (tx, _) = watch::channel(0);
        let stats = Stats::default();
        *stats.ended.borrow_mut() = Some(tx);
        Rc::new(stats)
    }

    pub fn bump(&self, counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
        let ended = self.disconnected.get() + self.refused.get();
        if let Some(tx) = self.ended.borrow().as_ref() {
            tx.send_replace(ended);
        }
    }

    pub fn watch_ended(&self) -> Option<watch::Receiver<u64>> {
        self.ended.borrow().as_ref().map(|tx| tx.subscribe())
    }
}

/// One serving baseline node: its identity, the peers it knows, its counters.
pub struct BaseNode {
    pub me: Identity,
    /// Known peers in the order they were learned, never forgotten (as in peerchat).
    known: RefCell<Vec<PeerEntry>>,
    index: RefCell<HashMap<SocketAddr, usize>>,
    pub stats: Rc<Stats>,
    console: mpsc::UnboundedSender<(SocketAddr, u64, String)>,
}

impl BaseNode {
    pub fn new(
        me: Identity,
        stats: Rc<Stats>,
        console: mpsc::UnboundedSender<(SocketAddr, u64, String)>,
    ) -> Rc<BaseNode> {
        Rc::new(BaseNode {
            me,
            known: RefCell::new(Vec::new()),
            index: RefCell::new(HashMap::new()),
            stats,
            console,
        })
    }

    /// Adds the entries of a `peers` frame to the peers it knows (not itself, not twice).
    pub fn learn(&self, peers: Vec<PeerEntry>) {
        let mut known = self.known.borrow_mut();
        let mut index = self.index.borrow_mut();
        for entry in peers {
            let Ok(addr) = entry.addr.parse::<SocketAddr>() else {
                continue;
            };
            if addr.port() == self.me.listen_port && addr.ip().is_loopback() {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(addr) {
                slot.insert(known.len());
                known.push(entry);
            }
        }
    }

    /// Records `peer` and returns what to tell it (see [`BaseNode::known_for`]).
    fn register(&self, peer: SocketAddr, name: &str) -> Vec<PeerEntry> {
        {
            let mut known = self.known.borrow_mut();
            let mut index = self.index.borrow_mut();
            match index.get(&peer) {
                Some(&at) => known[at].name = name.to_string(),
                None => {
                    index.insert(peer, known.len());
                    known.push(PeerEntry {
                        addr: peer.to_string(),
                        name: name.to_string(),
                        key: NO_KEY,
                    });
                }
            }
        }
        self.known_for(peer)
    }

    /// What to tell `peer`: the peers known other than `peer`, the most recently learned
    /// first, at most `PEERS_PER_FRAME` (256, docs/protocol.md section 6.2) and never more
    /// than fit in one frame. (The baseline keeps no connected/not-connected state, so
    /// "connected ones first" becomes "most recent first".)
    pub fn known_for(&self, peer: SocketAddr) -> Vec<PeerEntry> {
        let known = self.known.borrow();
        let me = self.index.borrow().get(&peer).copied();
        let mut room = PEERS_ROOM;
        known
            .iter()
            .enumerate()
            .rev()
            .filter(|(at, _)| Some(*at) != me)
            .take(PEERS_PER_FRAME)
            .map_while(|(_, entry)| {
                // fixmap, two keys, two str headers of at most 2 bytes, the strings.
                let size = 1 + 5 + 5 + 4 + entry.addr.len() + entry.name.len();
                room = room.checked_sub(size)?;
                Some(entry.clone())
            })
            .collect()
    }
}

/// Console of a baseline node: takes the chats handed over and counts them.
pub async fn console(
    mut chats: mpsc::UnboundedReceiver<(SocketAddr, u64, String)>,
    stats: Rc<Stats>,
) {
    while let Some((_from, _id, _text)) = chats.recv().await {
        stats.chats.set(stats.chats.get() + 1);
    }
}

/// Chat ids already handed over from one sender, bounded.
#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Seen {
    fn first_time(&mut self, id: u64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_PER_SENDER {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// Serves one accepted connection until it ends.
pub async fn serve_conn(stream: TcpStream, node: Rc<BaseNode>) {
    let registered = serve_conn_inner(stream, &node).await;
    if registered {
        node.stats.bump(&node.stats.disconnected);
    } else {
        node.stats.bump(&node.stats.refused);
    }
}

/// Returns whether the peer got past its handshake.
async fn serve_conn_inner(stream: TcpStream, node: &BaseNode) -> bool {
    let Ok(remote) = stream.peer_addr() else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, WireCodec);
    let mut out = BytesMut::new();
    if encode_frame_into(&node.me.hello(), &mut out).is_err()
        || write_out(&mut wr, &mut out).await.is_err()
    {
        return false;
    }
    let first = tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await;
    let (peer, name) = match first {
        Ok(Some(Ok(Frame::Hello(Hello {
            protocol,
            name,
            listen_port,
        }))))
            if protocol == PROTOCOL_VERSION && listen_port != 0 =>
        {
            (SocketAddr::new(remote.ip(), listen_port), name)
        }
        Ok(None) | Ok(Some(Err(_))) => return false,
        _ => {
            let _ = bye(&mut wr, &mut out, "expected hello").await;
            return false;
        }
    };
    let peers = node.register(peer, &name);
    node.stats.bump(&node.stats.connected);
    if encode_frame_into(&Frame::Peers { peers }, &mut out).is_err()
        || write_out(&mut wr, &mut out).await.is_err()
    {
        return true;
    }
    session_loop(reader, wr, out, node, peer).await;
    true
}

/// Output buffers above this are released after use rather than kept for the next write: an
/// idle connection should not hold on to the room a large `peers` frame once needed.
const KEEP_OUT_BYTES: usize = 8 * 1024;

async fn write_out(wr: &mut OwnedWriteHalf, out: &mut BytesMut) -> std::io::Result<()> {
    let written = wr.write_all(out).await;
    if out.capacity() > KEEP_OUT_BYTES {
        *out = BytesMut::new();
    } else {
        out.clear();
    }
    written
}

async fn bye(wr: &mut OwnedWriteHalf, out: &mut BytesMut, reason: &str) -> std::io::Result<()> {
    let _ = encode_frame_into(
        &Frame::Bye {
            reason: reason.into(),
        },
        out,
    );
    write_out(wr, out).await?;
    wr.shutdown().await
}

/// What the session does after one frame.
enum Next {
    Continue,
    /// The peer said bye: close without answering.
    Close,
    /// Say bye with this reason and close.
    Refuse(&'static str),
}

async fn session_loop(
    mut reader: FramedRead<OwnedReadHalf, WireCodec>,
    mut wr: OwnedWriteHalf,
    mut out: BytesMut,
    node: &BaseNode,
    peer: SocketAddr,
) {
    let mut seen = Seen::default();
    let mut last_heard = Instant::now();
    let mut nonce = 0u64;
    let tick_every = (PING_INTERVAL.min(IDLE_TIMEOUT) / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            frame = reader.next() => {
                let mut next = match frame {
                    Some(Ok(frame)) => handle(frame, &mut out, &mut seen, node, peer),
                    Some(Err(_)) => Next::Refuse("protocol error"),
                    None => return,
                };
                last_heard = Instant::now();
                // Everything already received is handled before one write answers it all.
                while matches!(next, Next::Continue) {
                    match reader.next().now_or_never() {
                        Some(Some(Ok(frame))) => next = handle(frame, &mut out, &mut seen, node, peer),
                        Some(Some(Err(_))) => next = Next::Refuse("protocol error"),
                        Some(None) => next = Next::Close,
                        None => break,
                    }
                }
                if !out.is_empty() && write_out(&mut wr, &mut out).await.is_err() {
                    return;
                }
                match next {
                    Next::Continue => {}
                    Next::Close => return,
                    Next::Refuse(reason) => {
                        let _ = bye(&mut wr, &mut out, reason).await;
                        return;
                    }
                }
            }
            _ = tick.tick() => {
                let quiet = last_heard.elapsed();
                if quiet >= IDLE_TIMEOUT {
                    let _ = bye(&mut wr, &mut out, "timeout").await;
                    return;
                }
                if quiet >= PING_INTERVAL {
                    nonce += 1;
                    let _ = encode_frame_into(&Frame::Ping { nonce }, &mut out);
                    if write_out(&mut wr, &mut out).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn handle(
    frame: Frame,
    out: &mut BytesMut,
    seen: &mut Seen,
    node: &BaseNode,
    peer: SocketAddr,
) -> Next {
    match frame {
        Frame::Chat { id, text, .. } => {
            if seen.first_time(id) {
                let _ = node.console.send((peer, id, text));
            }
            let _ = encode_frame_into(&Frame::Ack { id }, out);
        }
        Frame::Ping { nonce } => {
            let _ = encode_frame_into(&Frame::Pong { nonce }, out);
        }
        Frame::GetPeers => {
            let peers = node.register(peer, &node.me.name);
            let _ = encode_frame_into(&Frame::Peers { peers }, out);
        }
        Frame::Peers { peers } => node.learn(peers),
        Frame::Bye { .. } => return Next::Close,
        Frame::Hello { .. } => return Next::Refuse("second hello on one connection"),
        Frame::Ack { .. } | Frame::Pong { .. } | Frame::Unknown => {}
    }
    Next::Continue
}

// ---- the client side, used by the measuring process ----

/// A connection from the bench's baseline client to a serving node, past its handshake.
pub struct ClientConn {
    pub reader: FramedRead<OwnedReadHalf, WireCodec>,
    pub writer: OwnedWriteHalf,
    pub out: BytesMut,
}

impl ClientConn {
    /// Appends one frame to the output buffer.
    pub fn queue(&mut self, frame: &Frame) -> Res<()> {
        encode_frame_into(frame, &mut self.out)?;
        Ok(())
    }

    /// Writes the output buffer.
    pub async fn flush(&mut self) -> Res<()> {
        self.writer.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The next frame; an error at the end of the connection.
    pub async fn next(&mut self) -> Res<Frame> {
        match self.reader.next().await {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(err)) => fail(format!("bad frame from the peer: {err}")),
            None => fail("the peer closed the connection"),
        }
    }
}

/// Opens a connection and does what a peerchat node does when it dials: `hello`, wait for the
/// peer's `hello`, then tell it the peers we know.
pub async fn dial(addr: SocketAddr, me: &Identity, known: Vec<PeerEntry>) -> Res<ClientConn> {
    let mut conn = connect_raw(addr).await?;
    conn.queue(&me.hello())?;
    conn.flush().await?;
    match tokio::time::timeout(HELLO_TIMEOUT, conn.next()).await {
        Ok(Ok(Frame::Hello(_))) => {}
        Ok(Ok(other)) => return fail(format!("expected hello, got {}", other.kind())),
        Ok(Err(err)) => return Err(err),
        Err(_) => return fail("no hello from the peer"),
    }
    conn.queue(&Frame::Peers { peers: known })?;
    conn.flush().await?;
    Ok(conn)
}

/// A TCP connection with no frame sent yet.
pub async fn connect_raw(addr: SocketAddr) -> Res<ClientConn> {
    let stream = match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return fail(format!("cannot connect to {addr}: {err}")),
        Err(_) => return fail(format!("connecting to {addr} took over 10s")),
    };
    stream.set_nodelay(true)?;
    let (rd, writer) = stream.into_split();
    Ok(ClientConn {
        reader: FramedRead::new(rd, WireCodec),
        writer,
        out: BytesMut::with_capacity(4096),
    })
}
