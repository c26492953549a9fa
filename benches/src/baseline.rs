//! The baseline: peerchat's wire protocol (v2) written as a plain tokio program, no actors.
//!
//! It speaks what a peerchat node speaks on the same loopback TCP: the Noise XX handshake
//! (the dialer first, each `hello` inside it), then transport messages; each side sends a
//! `peers` map right after the handshake, chats are acked once handed to the "console" (a
//! channel, as in peerchat), repeated chat ids are acked but not handed over again, a quiet
//! peer is pinged and dropped after the idle timeout. Maps are encoded and decoded with
//! `peerchat_actors::wire` and sealed and opened with `peerchat_actors::noise` (the same
//! backend), so the bytes on the wire are the same and so is the cost of the crypto.
//!
//! It is written the way a careful tokio program would be: one task per connection, reads
//! drained before writing, every map queued while draining sealed together (one encryption
//! per batch, as peerchat's writer does) and written with one `write_all`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures::{FutureExt, StreamExt};
use peerchat_actors::noise::{
    run_handshake, Handshake, HandshakeCodec, HandshakeOptions, NoiseError, Sealer, StaticKeypair,
    TransportCodec,
};
use peerchat_actors::registry::PEERS_PER_FRAME;
use peerchat_actors::wire::{encode_frame_into, Frame, Hello, PeerEntry, MAX_MAP_BYTES};
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

/// An established session's reading half: yields each map of each transport message.
pub type Reader = FramedRead<OwnedReadHalf, TransportCodec>;

/// An established session's writing half: frames queued behind 4-byte lengths (as
/// `encode_frame_into` writes them, as peerchat's writer buffers them) are sealed together
/// on each write, as few transport messages as fit, and written with one `write_all`.
pub struct SealedWriter {
    wr: OwnedWriteHalf,
    sealer: Sealer,
    sealed: BytesMut,
}

impl SealedWriter {
    pub fn new(wr: OwnedWriteHalf, sealer: Sealer) -> SealedWriter {
        SealedWriter {
            wr,
            sealer,
            sealed: BytesMut::new(),
        }
    }

    /// Seals and writes the frames in `plain`, then empties it.
    pub async fn write(&mut self, plain: &mut BytesMut) -> std::io::Result<()> {
        let sealed = self.sealer.seal_frames(plain, &mut self.sealed);
        let written = match sealed {
            Ok(_) => self.wr.write_all(&self.sealed).await,
            Err(err) => Err(std::io::Error::other(err.to_string())),
        };
        release(plain);
        release(&mut self.sealed);
        written
    }

    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.wr.shutdown().await
    }

    /// The socket's writing half and the sealer, for a writer of its own (the floor's actors,
    /// floor.rs).
    pub fn into_parts(self) -> (OwnedWriteHalf, Sealer) {
        (self.wr, self.sealer)
    }
}

/// Output buffers above this are released after use rather than kept for the next write: an
/// idle connection should not hold on to the room a large `peers` frame once needed.
const KEEP_OUT_BYTES: usize = 8 * 1024;

pub(crate) fn release(buf: &mut BytesMut) {
    if buf.capacity() > KEEP_OUT_BYTES {
        *buf = BytesMut::new();
    } else {
        buf.clear();
    }
}

/// The peer's proven key and hello, and the session's two halves.
pub struct Session {
    pub remote_key: PeerKey,
    pub remote_hello: Hello,
    pub reader: Reader,
    pub writer: SealedWriter,
}

/// Runs the Noise handshake on `stream` (initiator if we dialed), bounded by the hello
/// timeout as in peerchat.
pub async fn handshake(
    stream: TcpStream,
    me: &Identity,
    initiator: bool,
) -> Result<Session, NoiseError> {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, HandshakeCodec);
    let hello = me.hello();
    let start = if initiator {
        let (state, message_1) =
            Handshake::initiator(&me.keys, &hello, HandshakeOptions::default())?;
        (state, Some(message_1))
    } else {
        (
            Handshake::responder(&me.keys, &hello, HandshakeOptions::default())?,
            None,
        )
    };
    let established =
        match tokio::time::timeout(HELLO_TIMEOUT, run_handshake(&mut reader, &mut wr, start)).await
        {
            Ok(result) => result?,
            Err(_) => return Err(NoiseError::Incomplete),
        };
    Ok(Session {
        remote_key: established.remote_key,
        remote_hello: established.remote_hello,
        // Whatever was read past the last handshake message stays in the buffer.
        reader: reader.map_decoder(|_| TransportCodec::new(established.opener)),
        writer: SealedWriter::new(wr, established.sealer),
    })
}

/// Room for `peers` entries in one map: the map limit less the map's own keys.
const PEERS_ROOM: usize = MAX_MAP_BYTES - 32;
/// Chat ids remembered per sender to spot repeats, as peerchat's Registry does.
const SEEN_PER_SENDER: usize = 65536;

/// Who a baseline process (or a bench client) is: its static key, and what its `hello` says.
#[derive(Clone, Debug)]
pub struct Identity {
    pub keys: StaticKeypair,
    pub name: String,
    pub listen_port: u16,
}

impl Identity {
    /// A fresh key with this name and port.
    pub fn new(name: impl Into<String>, listen_port: u16) -> Res<Identity> {
        Ok(Identity {
            keys: StaticKeypair::generate()?,
            name: name.into(),
            listen_port,
        })
    }

    pub fn hello(&self) -> Hello {
        Hello::new(self.name.clone(), self.listen_port)
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

    /// A served connection ended: disconnected if it got past its handshake, else refused.
    pub fn bump_ended(&self, registered: bool) {
        self.bump(if registered {
            &self.disconnected
        } else {
            &self.refused
        });
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

    /// Records `peer` (its address, name and proven key) and returns what to tell it (see
    /// [`BaseNode::known_for`]).
    pub fn register(&self, peer: SocketAddr, name: &str, key: PeerKey) -> Vec<PeerEntry> {
        {
            let mut known = self.known.borrow_mut();
            let mut index = self.index.borrow_mut();
            match index.get(&peer) {
                Some(&at) => {
                    known[at].name = name.to_string();
                    known[at].key = key;
                }
                None => {
                    index.insert(peer, known.len());
                    known.push(PeerEntry {
                        addr: peer.to_string(),
                        name: name.to_string(),
                        key,
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
                // fixmap, three keys, two str headers of at most 2 bytes, the strings, the
                // key as a 32-byte bin.
                let size = 1 + 5 + 5 + 4 + 4 + entry.addr.len() + entry.name.len() + 34;
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

/// Chat ids already handed over from one sender, bounded (the printing baseline of the binary
/// scenarios uses it too).
#[derive(Default)]
pub(crate) struct Seen {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Seen {
    pub(crate) fn first_time(&mut self, id: u64) -> bool {
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
    node.stats.bump_ended(registered);
}

/// A served connection past its handshake: registered (unless a one-shot sender) and sent
/// the `peers` map.
pub(crate) struct Opened {
    pub peer: SocketAddr,
    pub key: PeerKey,
    pub reader: Reader,
    pub writer: SealedWriter,
    /// The buffer the `peers` map went out of, empty, for what follows.
    pub out: BytesMut,
}

/// Why a served connection did not open: `Err(false)` if the peer did not get past its
/// handshake, `Err(true)` if it did (it counts as connected) but the `peers` map could not
/// be sent.
pub(crate) async fn open_served(stream: TcpStream, node: &BaseNode) -> Result<Opened, bool> {
    let Ok(remote) = stream.peer_addr() else {
        return Err(false);
    };
    // A handshake that fails or does not finish in time: close at once, without a word.
    let Ok(Session {
        remote_key,
        remote_hello,
        reader,
        mut writer,
    }) = handshake(stream, &node.me, false).await
    else {
        return Err(false);
    };
    let peer = SocketAddr::new(remote.ip(), remote_hello.listen_port);
    let mut out = BytesMut::new();
    let peers = if remote_hello.listen_port == 0 {
        // A one-shot sender: served, never registered nor passed on.
        node.known_for(peer)
    } else {
        node.register(peer, &remote_hello.name, remote_key)
    };
    node.stats.bump(&node.stats.connected);
    if encode_frame_into(&Frame::Peers { peers }, &mut out).is_err()
        || writer.write(&mut out).await.is_err()
    {
        return Err(true);
    }
    Ok(Opened {
        peer,
        key: remote_key,
        reader,
        writer,
        out,
    })
}

/// Returns whether the peer got past its handshake.
async fn serve_conn_inner(stream: TcpStream, node: &BaseNode) -> bool {
    match open_served(stream, node).await {
        Ok(Opened {
            peer,
            key,
            reader,
            writer,
            out,
        }) => {
            session_loop(reader, writer, out, node, peer, key).await;
            true
        }
        Err(registered) => registered,
    }
}

async fn bye(wr: &mut SealedWriter, out: &mut BytesMut, reason: &str) -> std::io::Result<()> {
    let _ = encode_frame_into(
        &Frame::Bye {
            reason: reason.into(),
        },
        out,
    );
    wr.write(out).await?;
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

/// What a bad frame calls for: a map that does not decode gets a `bye`; a message that does
/// not decrypt (or a broken connection) closes at once.
fn on_error(err: &NoiseError) -> Next {
    if err.says_bye() {
        Next::Refuse("protocol error")
    } else {
        Next::Close
    }
}

async fn session_loop(
    mut reader: Reader,
    mut wr: SealedWriter,
    mut out: BytesMut,
    node: &BaseNode,
    peer: SocketAddr,
    key: PeerKey,
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
                    Some(Ok(frame)) => handle(frame, &mut out, &mut seen, node, peer, key),
                    Some(Err(err)) => on_error(&err),
                    None => return,
                };
                last_heard = Instant::now();
                // Everything already received is handled before one write answers it all.
                while matches!(next, Next::Continue) {
                    match reader.next().now_or_never() {
                        Some(Some(Ok(frame))) => {
                            next = handle(frame, &mut out, &mut seen, node, peer, key)
                        }
                        Some(Some(Err(err))) => next = on_error(&err),
                        Some(None) => next = Next::Close,
                        None => break,
                    }
                }
                if !out.is_empty() && wr.write(&mut out).await.is_err() {
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
                    if wr.write(&mut out).await.is_err() {
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
    key: PeerKey,
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
            let peers = node.register(peer, &node.me.name, key);
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
    /// The key the peer proved, and the name it gave.
    pub remote_key: PeerKey,
    pub remote_name: String,
    pub reader: Reader,
    pub writer: SealedWriter,
    /// Frames queued for the next write (sealed together then).
    pub out: BytesMut,
}

impl ClientConn {
    /// Appends one frame to the output buffer.
    pub fn queue(&mut self, frame: &Frame) -> Res<()> {
        encode_frame_into(frame, &mut self.out)?;
        Ok(())
    }

    /// Seals and writes the output buffer.
    pub async fn flush(&mut self) -> Res<()> {
        self.writer.write(&mut self.out).await?;
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

/// Opens a connection and does what a peerchat node does when it dials: the handshake (its
/// `hello` and ours inside), then tell it the peers we know.
pub async fn dial(addr: SocketAddr, me: &Identity, known: Vec<PeerEntry>) -> Res<ClientConn> {
    let mut conn = connect(addr, me).await?;
    conn.queue(&Frame::Peers { peers: known })?;
    conn.flush().await?;
    Ok(conn)
}

/// A TCP connection past its handshake, no map sent yet.
pub async fn connect(addr: SocketAddr, me: &Identity) -> Res<ClientConn> {
    let stream = match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return fail(format!("cannot connect to {addr}: {err}")),
        Err(_) => return fail(format!("connecting to {addr} took over 10s")),
    };
    let session = match handshake(stream, me, true).await {
        Ok(session) => session,
        Err(err) => return fail(format!("handshake with {addr}: {err}")),
    };
    Ok(ClientConn {
        remote_key: session.remote_key,
        remote_name: session.remote_hello.name,
        reader: session.reader,
        writer: session.writer,
        out: BytesMut::with_capacity(4096),
    })
}
