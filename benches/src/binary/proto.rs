//! The protocol as the binary scenarios speak it, in one place: the load generator's side (a
//! dialing peer that streams chats and reads acks) and the printing baseline's side (an
//! accepting peer that reads chats and writes acks). Protocol v1 today; switching these
//! scenarios to v2 means changing this file only (`Conn` keeps its shape: handshake, queue,
//! write, read frames).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use peerchat_actors::wire::{encode_frame_into, Frame, PeerEntry, WireCodec, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use crate::sys::{fail, Res};

const HANDSHAKE_LIMIT: Duration = Duration::from_secs(20);

/// What one side says in its hello.
#[derive(Clone, Debug)]
pub struct Hello {
    pub node_id: u64,
    pub name: String,
    pub listen_port: u16,
}

/// What arrived, as the scenarios need it.
pub enum Incoming {
    Chat {
        id: u64,
        text: String,
    },
    Ack(u64),
    Ping(u64),
    /// The peer said bye.
    Bye,
    /// Anything else (peers, pong, ...): ignored.
    Other,
}

/// A connection past its handshake: frames to write are queued in `out`, frames read are
/// decoded from `input`.
pub struct Conn {
    pub stream: TcpStream,
    pub out: BytesMut,
    input: BytesMut,
    codec: WireCodec,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            out: BytesMut::with_capacity(4096),
            input: BytesMut::with_capacity(4096),
            codec: WireCodec,
        }
    }

    /// Dials `addr` as a peerchat node would: hello, the peer's hello, then our (empty) peers.
    pub async fn dial(addr: SocketAddr, me: &Hello) -> Res<Conn> {
        let stream = match tokio::time::timeout(HANDSHAKE_LIMIT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return fail(format!("cannot connect to {addr}: {err}")),
            Err(_) => return fail(format!("connecting to {addr} took too long")),
        };
        let mut conn = Conn::new(stream);
        conn.queue(&hello(me))?;
        conn.write().await?;
        conn.expect_hello().await?;
        conn.queue(&Frame::Peers { peers: Vec::new() })?;
        conn.write().await?;
        Ok(conn)
    }

    /// Accepts a dialing peer: our hello, its hello; returns its hello (its address is its IP
    /// and the port it says it listens on). The caller sends the `peers` answer.
    pub async fn accept(stream: TcpStream, me: &Hello) -> Res<(Conn, Hello)> {
        let mut conn = Conn::new(stream);
        conn.queue(&hello(me))?;
        conn.write().await?;
        let theirs = conn.expect_hello().await?;
        Ok((conn, theirs))
    }

    async fn expect_hello(&mut self) -> Res<Hello> {
        let read = async {
            loop {
                if let Some(frame) = self.codec.decode(&mut self.input)? {
                    return Ok::<Frame, crate::sys::BoxError>(frame);
                }
                if self.stream.read_buf(&mut self.input).await? == 0 {
                    return fail("closed during the handshake");
                }
            }
        };
        match tokio::time::timeout(HANDSHAKE_LIMIT, read).await {
            Ok(Ok(Frame::Hello {
                node_id,
                name,
                listen_port,
                ..
            })) => Ok(Hello {
                node_id,
                name,
                listen_port,
            }),
            Ok(Ok(other)) => fail(format!("expected hello, got {}", other.kind())),
            Ok(Err(err)) => Err(err),
            Err(_) => fail("no hello in time"),
        }
    }

    pub fn queue(&mut self, frame: &Frame) -> Res<()> {
        encode_frame_into(frame, &mut self.out)?;
        Ok(())
    }

    pub fn queue_ack(&mut self, id: u64) {
        let _ = encode_frame_into(&Frame::Ack { id }, &mut self.out);
    }

    pub fn queue_pong(&mut self, nonce: u64) {
        let _ = encode_frame_into(&Frame::Pong { nonce }, &mut self.out);
    }

    pub fn queue_peers(&mut self, peers: Vec<PeerEntry>) {
        let _ = encode_frame_into(&Frame::Peers { peers }, &mut self.out);
    }

    /// Writes everything queued, with one `write_all`.
    pub async fn write(&mut self) -> Res<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Waits for bytes, then hands every whole frame they complete to `each`. Returns false
    /// at the end of the connection.
    pub async fn read_frames(&mut self, mut each: impl FnMut(Incoming)) -> Res<bool> {
        // Frames read along with the handshake's hello are still in the buffer: those first.
        if self.decode_all(&mut each)? {
            return Ok(true);
        }
        loop {
            // Small for a quiet connection (thousands of them), grown while a stream fills it.
            if self.input.capacity() - self.input.len() < 1024 {
                let grow = self.input.capacity().clamp(4096, 64 * 1024);
                self.input.reserve(grow);
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Ok(false);
            }
            if self.decode_all(&mut each)? {
                return Ok(true);
            }
        }
    }

    fn decode_all(&mut self, each: &mut impl FnMut(Incoming)) -> Res<bool> {
        let mut any = false;
        while let Some(frame) = self.codec.decode(&mut self.input)? {
            any = true;
            each(match frame {
                Frame::Chat { id, text, .. } => Incoming::Chat { id, text },
                Frame::Ack { id } => Incoming::Ack(id),
                Frame::Ping { nonce } => Incoming::Ping(nonce),
                Frame::Bye { .. } => Incoming::Bye,
                _ => Incoming::Other,
            });
        }
        Ok(any)
    }
}

fn hello(me: &Hello) -> Frame {
    Frame::Hello {
        protocol: PROTOCOL_VERSION,
        node_id: me.node_id,
        name: me.name.clone(),
        listen_port: me.listen_port,
    }
}

/// Chat frames made ahead of time so that refilling a window is one copy: chat `n` has id
/// `FIRST_ID + n` (every id at least 2^32, so each is encoded in the same 9 bytes) and a text
/// that starts with `n` in 12 digits (so the receiver's output says which chat each line is).
pub struct ChatTemplate {
    frame: Vec<u8>,
    id_at: usize,
    digits_at: usize,
}

/// The first chat id the generator uses (see [`ChatTemplate`]).
pub const FIRST_ID: u64 = 1 << 40;
/// Digits of the sequence number at the start of each text.
pub const DIGITS: usize = 12;

impl ChatTemplate {
    /// Texts of `text_bytes` bytes (at least 13).
    pub fn new(text_bytes: usize) -> Res<ChatTemplate> {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz ";
        let filler: String = (0..text_bytes.saturating_sub(DIGITS + 1))
            .map(|i| char::from(alphabet[i % alphabet.len()]))
            .collect();
        let marker = "9".repeat(DIGITS);
        let text = format!("{marker} {filler}");
        let mut out = BytesMut::new();
        encode_frame_into(
            &Frame::Chat {
                id: FIRST_ID,
                text,
                sent_at_ms: crate::baseline::now_ms(),
            },
            &mut out,
        )?;
        let frame = out.to_vec();
        let find = |needle: &[u8]| frame.windows(needle.len()).position(|w| w == needle);
        let (Some(id_at), Some(digits_at)) =
            (find(&FIRST_ID.to_be_bytes()), find(marker.as_bytes()))
        else {
            return fail("chat id or text not found in the encoded frame");
        };
        Ok(ChatTemplate {
            frame,
            id_at,
            digits_at,
        })
    }

    /// Appends chat `n`'s frame to `out`.
    pub fn put(&self, n: u64, out: &mut BytesMut) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        let id = start + self.id_at;
        out[id..id + 8].copy_from_slice(&(FIRST_ID + n).to_be_bytes());
        let mut rest = n;
        let digits = start + self.digits_at;
        for at in (digits..digits + DIGITS).rev() {
            out[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    }
}

/// The chat number a line of the receiver's output shows (`... (address): NNNNNNNNNNNN ...`).
pub fn chat_number(line: &str) -> Option<u64> {
    let (_, text) = line.split_once("): ")?;
    let digits = text.get(..DIGITS)?;
    if text.as_bytes().get(DIGITS) != Some(&b' ') {
        return None;
    }
    digits.parse().ok()
}
