//! The protocol as the binary scenarios speak it, in one place: the load generator's side (a
//! dialing peer that streams chats and reads acks) and the printing baseline's side (an
//! accepting peer that reads chats and writes acks). Protocol v2: the Noise XX handshake
//! (`peerchat_actors::noise`, the dialer first), then transport messages. Frames are queued
//! in the clear behind 4-byte lengths and sealed together on each write, one encryption per
//! batch, as peerchat's writer does.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use peerchat_actors::noise::{
    Handshake, HandshakeCodec, HandshakeOptions, NoiseError, Step, TransportCodec,
};
use peerchat_actors::wire::{encode_frame_into, Frame, PeerEntry};
use peerchat_actors::PeerKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use crate::baseline::{Identity, SealedWriter};
use crate::sys::{fail, Res};

const HANDSHAKE_LIMIT: Duration = Duration::from_secs(20);

/// Who the other side proved to be, and what its hello says.
#[derive(Clone, Debug)]
pub struct Theirs {
    pub key: PeerKey,
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

/// A connection past its handshake: frames to write are queued in `out` (in the clear, each
/// behind its length) and sealed on `write`; transport messages read are opened from `input`.
pub struct Conn {
    rd: OwnedReadHalf,
    writer: SealedWriter,
    pub out: BytesMut,
    input: BytesMut,
    codec: TransportCodec,
}

impl Conn {
    /// Dials `addr` as a peerchat node would: the handshake as initiator, then our (empty)
    /// peers.
    pub async fn dial(addr: SocketAddr, me: &Identity) -> Res<Conn> {
        let stream = match tokio::time::timeout(HANDSHAKE_LIMIT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return fail(format!("cannot connect to {addr}: {err}")),
            Err(_) => return fail(format!("connecting to {addr} took too long")),
        };
        let (mut conn, _) = Conn::handshake(stream, me, true).await?;
        conn.queue(&Frame::Peers { peers: Vec::new() })?;
        conn.write().await?;
        Ok(conn)
    }

    /// Accepts a dialing peer: the handshake as responder; returns who it is (its address is
    /// its IP and the port it says it listens on). The caller sends the `peers` answer.
    pub async fn accept(stream: TcpStream, me: &Identity) -> Res<(Conn, Theirs)> {
        Conn::handshake(stream, me, false).await
    }

    async fn handshake(stream: TcpStream, me: &Identity, initiator: bool) -> Res<(Conn, Theirs)> {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let mut input = BytesMut::with_capacity(4096);
        let run = async {
            let hello = me.hello();
            let mut state = if initiator {
                let (state, message_1) =
                    Handshake::initiator(&me.keys, &hello, HandshakeOptions::default())?;
                wr.write_all(&message_1).await?;
                state
            } else {
                Handshake::responder(&me.keys, &hello, HandshakeOptions::default())?
            };
            loop {
                let Some(message) = HandshakeCodec.decode(&mut input)? else {
                    if rd.read_buf(&mut input).await? == 0 {
                        return Err(NoiseError::Incomplete);
                    }
                    continue;
                };
                match state.read(&message)? {
                    Step::Reply(next, frame) => {
                        wr.write_all(&frame).await?;
                        state = *next;
                    }
                    Step::Done { reply, established } => {
                        if let Some(frame) = reply {
                            wr.write_all(&frame).await?;
                        }
                        return Ok(established);
                    }
                }
            }
        };
        let established = match tokio::time::timeout(HANDSHAKE_LIMIT, run).await {
            Ok(Ok(established)) => established,
            Ok(Err(err)) => return fail(format!("handshake: {err}")),
            Err(_) => return fail("handshake not done in time"),
        };
        let theirs = Theirs {
            key: established.remote_key,
            name: established.remote_hello.name,
            listen_port: established.remote_hello.listen_port,
        };
        // Whatever was read past the last handshake message stays in `input`.
        let conn = Conn {
            rd,
            writer: SealedWriter::new(wr, established.sealer),
            out: BytesMut::with_capacity(4096),
            input,
            codec: TransportCodec::new(established.opener),
        };
        Ok((conn, theirs))
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

    /// Seals everything queued (as few transport messages as fit) and writes it with one
    /// `write_all`.
    pub async fn write(&mut self) -> Res<()> {
        self.writer.write(&mut self.out).await?;
        Ok(())
    }

    /// Waits for bytes, then hands every map of every whole transport message they complete
    /// to `each`. Returns false at the end of the connection.
    pub async fn read_frames(&mut self, mut each: impl FnMut(Incoming)) -> Res<bool> {
        // Messages read along with the handshake are still in the buffer: those first.
        if self.decode_all(&mut each)? {
            return Ok(true);
        }
        loop {
            // Small for a quiet connection (thousands of them), grown while a stream fills it.
            if self.input.capacity() - self.input.len() < 1024 {
                let grow = self.input.capacity().clamp(4096, 64 * 1024);
                self.input.reserve(grow);
            }
            if self.rd.read_buf(&mut self.input).await? == 0 {
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

/// Chat frames (in the clear, behind their length) made ahead of time so that encoding a
/// refill of the window is one copy per chat; [`Conn::write`] then seals the whole refill.
/// Chat `n` has id `FIRST_ID + n` (every id at least 2^32, so each is encoded in the same 9
/// bytes) and a text that starts with `n` in 12 digits (so the receiver's output says which
/// chat each line is).
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
