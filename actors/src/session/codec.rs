//! What a Session reads its socket through: one decoder for the connection's whole life, which
//! runs the Noise handshake on the first frames and then, in the same `FramedRead` (so not a
//! byte read ahead is lost), opens transport messages into frames. Plain code over
//! `crate::noise`; the Session acts on what it yields.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::gate::DrainMark;
use crate::key::PeerKey;
use crate::noise::{Handshake, HandshakeCodec, NoiseError, Sealer, Step, TransportCodec};
use crate::wire::{Frame, Hello};

/// Read-buffer sizing, done by the decoder since only it sees the buffer between reads.
/// tokio-util grows a read buffer only when it is full *and* nothing consumed can be
/// reclaimed, so a small buffer (good for idle connections) would stay small under a stream
/// and cost one read per frame. The decoder grows it instead when the last read filled it
/// (more is probably waiting), up to `GROW_READ_UNTIL`, and shrinks an emptied buffer above
/// `SHRINK_READ_ABOVE` back to `SHRUNK_READ_BYTES`, so a quiet connection holds little.
pub(super) const GROW_READ_BY: usize = 8 * 1024;
const GROW_READ_UNTIL: usize = 64 * 1024;
pub(super) const SHRINK_READ_ABOVE: usize = 4 * 1024;
pub(super) const SHRUNK_READ_BYTES: usize = 1024;

/// What the socket said, in order.
pub(super) enum Incoming {
    /// A handshake message of ours to write (a responder's message 2).
    Reply(Bytes),
    /// The handshake is complete. Boxed: it comes once per connection, and every item of
    /// the stream is the size of the largest variant, moved through the read gate and
    /// actix's stream for every frame (inline it made each item 144 bytes, copied with a
    /// `memcpy` call several times per chat).
    Established(Box<Handover>),
    /// A map from the authenticated peer.
    Frame(Frame),
    /// Not read from the socket: everything read so far has been handed over (the read
    /// gate's mark, `gate::DrainMark`).
    Drained,
}

/// What the end of the handshake hands the Session: write `reply` (an initiator's message
/// 3) unsealed, then seal everything with `sealer`.
pub(super) struct Handover {
    pub(super) reply: Option<Bytes>,
    /// The key the peer proved.
    pub(super) key: PeerKey,
    /// Its hello: name and port, claims.
    pub(super) hello: Hello,
    pub(super) sealer: Sealer,
}

impl DrainMark for Result<Incoming, NoiseError> {
    fn drained() -> Self {
        Ok(Incoming::Drained)
    }
}

enum Phase {
    Handshake(Option<Box<Handshake>>),
    Transport(TransportCodec),
}

/// The Session's decoder (see the module docs).
pub(super) struct SessionCodec {
    phase: Phase,
}

impl SessionCodec {
    /// Starts with `handshake`: an initiator's after message 1 was written, or a responder's.
    pub(super) fn new(handshake: Handshake) -> Self {
        SessionCodec {
            phase: Phase::Handshake(Some(Box::new(handshake))),
        }
    }

    fn decode_inner(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, NoiseError> {
        match &mut self.phase {
            Phase::Transport(transport) => Ok(transport.decode(src)?.map(Incoming::Frame)),
            Phase::Handshake(slot) => {
                let Some(message) = HandshakeCodec.decode(src)? else {
                    return Ok(None);
                };
                // Taken: a failed step leaves no handshake to go on with.
                let handshake = slot
                    .take()
                    .ok_or(NoiseError::BadHandshakeMessage("after a failed handshake"))?;
                match handshake.read(&message)? {
                    Step::Reply(next, frame) => {
                        *slot = Some(next);
                        Ok(Some(Incoming::Reply(frame)))
                    }
                    Step::Done { reply, established } => {
                        self.phase = Phase::Transport(TransportCodec::new(established.opener));
                        Ok(Some(Incoming::Established(Box::new(Handover {
                            reply,
                            key: established.remote_key,
                            hello: established.remote_hello,
                            sealer: established.sealer,
                        }))))
                    }
                }
            }
        }
    }
}

impl Decoder for SessionCodec {
    type Item = Incoming;
    type Error = NoiseError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, NoiseError> {
        let before = src.capacity();
        let decoded = self.decode_inner(src)?;
        match decoded {
            None => {
                // If the last read filled the buffer (no room was left unfilled), make room
                // for more.
                if src.capacity() == src.len() && src.capacity() < GROW_READ_UNTIL {
                    src.reserve(GROW_READ_BY);
                }
            }
            Some(_) => {
                if src.is_empty() && before.max(src.capacity()) > SHRINK_READ_ABOVE {
                    // The room a large frame needed is not kept for the connection's life.
                    *src = BytesMut::with_capacity(SHRUNK_READ_BYTES);
                }
            }
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{HandshakeOptions, StaticKeypair};
    use crate::wire::encode_frame_into;

    /// Every frame read is moved as one of these through the read gate and actix's stream
    /// several times: past about 128 bytes each move is a `memcpy` call.
    #[test]
    fn a_read_item_stays_small() {
        let size = std::mem::size_of::<Result<Incoming, NoiseError>>();
        assert!(size <= 96, "an item read is {size} bytes");
    }

    /// An initiator's codec that has completed a handshake with a responder, and the sealer
    /// that writes to it.
    fn pair() -> (SessionCodec, Sealer) {
        let (a, b) = (
            StaticKeypair::generate().unwrap(),
            StaticKeypair::generate().unwrap(),
        );
        let (initiator, m1) =
            Handshake::initiator(&a, &Hello::new("a", 1), HandshakeOptions::default()).unwrap();
        let mut codec = SessionCodec::new(initiator);
        let responder =
            Handshake::responder(&b, &Hello::new("b", 2), HandshakeOptions::default()).unwrap();
        let Step::Reply(responder, m2) = responder.read(&m1[4..]).unwrap() else {
            panic!()
        };
        let mut buf = BytesMut::from(&m2[..]);
        let Some(Incoming::Established(done)) = codec.decode(&mut buf).unwrap() else {
            panic!("established")
        };
        let Handover {
            reply: Some(m3),
            key,
            ..
        } = *done
        else {
            panic!("message 3")
        };
        assert_eq!(key, b.public());
        let Step::Done { established, .. } = responder.read(&m3[4..]).unwrap() else {
            panic!()
        };
        (codec, established.sealer)
    }

    fn sealed(sealer: &mut Sealer, frames: &[Frame]) -> BytesMut {
        let mut plain = BytesMut::new();
        for frame in frames {
            encode_frame_into(frame, &mut plain).unwrap();
        }
        let mut out = BytesMut::new();
        sealer.seal_frames(&plain, &mut out).unwrap();
        out
    }

    #[test]
    fn a_large_frame_leaves_no_large_read_buffer_behind() {
        let (mut codec, mut sealer) = pair();
        let chat = Frame::Chat {
            id: 1,
            text: "x".repeat(20_000),
            sent_at_ms: 0,
        };
        let mut buf = BytesMut::with_capacity(32 * 1024);
        buf.extend_from_slice(&sealed(&mut sealer, std::slice::from_ref(&chat)));
        assert!(buf.capacity() > SHRINK_READ_ABOVE);
        assert!(matches!(codec.decode(&mut buf).unwrap(), Some(Incoming::Frame(f)) if f == chat));
        assert!(buf.is_empty() && buf.capacity() <= SHRUNK_READ_BYTES * 2);
        // A small one is left alone.
        let mut buf = BytesMut::with_capacity(2 * 1024);
        buf.extend_from_slice(&sealed(&mut sealer, &[Frame::Ack { id: 1 }]));
        codec.decode(&mut buf).unwrap();
        assert!(buf.capacity() >= 2 * 1024 - 64, "{}", buf.capacity());
    }

    #[test]
    fn a_small_read_buffer_grows_when_reads_fill_it() {
        let (mut codec, mut sealer) = pair();
        let chats: Vec<Frame> = (0..2)
            .map(|id| Frame::Chat {
                id,
                text: "x".repeat(150),
                sent_at_ms: 0,
            })
            .collect();
        let stream = sealed(&mut sealer, &chats);
        // A 256-byte buffer filled by one read: part of a transport message.
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&stream[..256.min(stream.len())]);
        let full = buf.len() == buf.capacity();
        assert!(codec.decode(&mut buf).unwrap().is_none());
        if full {
            assert!(
                buf.capacity() - buf.len() >= GROW_READ_BY.min(stream.len() - 256),
                "room for a real read"
            );
        }
    }

    #[test]
    fn bytes_behind_the_last_handshake_message_are_not_lost() {
        let (a, b) = (
            StaticKeypair::generate().unwrap(),
            StaticKeypair::generate().unwrap(),
        );
        let (initiator, m1) =
            Handshake::initiator(&a, &Hello::new("a", 1), HandshakeOptions::default()).unwrap();
        let responder =
            Handshake::responder(&b, &Hello::new("b", 2), HandshakeOptions::default()).unwrap();
        let mut codec = SessionCodec::new(responder);
        let mut buf = BytesMut::from(&m1[..]);
        let Some(Incoming::Reply(m2)) = codec.decode(&mut buf).unwrap() else {
            panic!("message 2")
        };
        let Step::Done {
            reply: Some(m3),
            established,
        } = initiator.read(&m2[4..]).unwrap()
        else {
            panic!()
        };
        let mut sealer = established.sealer;
        // Message 3 and two chats in one read.
        let mut buf = BytesMut::from(&m3[..]);
        buf.extend_from_slice(&sealed(
            &mut sealer,
            &[Frame::Ack { id: 1 }, Frame::GetPeers],
        ));
        let Some(Incoming::Established(done)) = codec.decode(&mut buf).unwrap() else {
            panic!("established")
        };
        let Handover { key, hello, .. } = *done;
        assert_eq!((key, hello.name.as_str()), (a.public(), "a"));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Incoming::Frame(Frame::Ack { id: 1 }))
        ));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Incoming::Frame(Frame::GetPeers))
        ));
        // A flipped byte: the connection must close, without a bye.
        let mut bad = sealed(&mut sealer, &[Frame::Ack { id: 2 }]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = codec.decode(&mut bad).err().expect("refused");
        assert!(!err.says_bye(), "{err}");
    }
}
