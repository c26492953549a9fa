//! The Noise XX handshake of protocol v2: who speaks when, what each message carries, what
//! is checked, and the codec that reads handshake messages off the socket.

use super::*;

/// How a handshake is set up beyond keys and hello.
#[derive(Debug, Clone, Default)]
pub struct HandshakeOptions {
    /// The backend; `None` is [`Backend::CHOSEN`].
    pub backend: Option<Backend>,
    /// The static key the peer must prove (an initiator dialing an introduced or pinned
    /// peer). An initiator checks it on message 2, before it sends its own identity in
    /// message 3; a responder on message 3.
    pub expected_remote: Option<PeerKey>,
    /// A fixed ephemeral private key, for test vectors only: a real handshake must use a
    /// fresh random one, or its secrecy is gone.
    pub fixed_ephemeral_for_testing_only: Option<[u8; KEY_BYTES]>,
}

/// A handshake under way, as a value: give it each message read, write what it answers.
/// Consumed by every step, so a failed handshake cannot be continued by mistake.
pub struct Handshake {
    pub(super) state: HandshakeState,
    /// Our `hello`, encoded: the payload of message 2 (responder) or 3 (initiator).
    pub(super) hello: BytesMut,
    pub(super) expected_remote: Option<PeerKey>,
    /// A responder has read message 1.
    read_message_1: bool,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("initiator", &self.state.is_initiator())
            .field("expected_remote", &self.expected_remote)
            .finish_non_exhaustive()
    }
}

/// What to do after a handshake message was read.
#[derive(Debug)]
pub enum Step {
    /// Write this frame, then read the next message into the handshake.
    Reply(Box<Handshake>, Bytes),
    /// The handshake is complete: write `reply` if there is one (the initiator's message 3),
    /// then speak transport messages.
    Done {
        /// The last handshake frame, ours to write.
        reply: Option<Bytes>,
        /// The peer's key and hello, and the transport's two halves.
        established: Established,
    },
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established {
    /// The static key the peer proved it holds.
    pub remote_key: PeerKey,
    /// The peer's `hello` (protocol checked to be 2; its name and port are claims).
    pub remote_hello: Hello,
    /// The handshake hash, the same on both sides: a name for this session.
    pub handshake_hash: Vec<u8>,
    /// Seals what we send.
    pub sealer: Sealer,
    /// Opens what we receive.
    pub opener: Opener,
}

impl Handshake {
    /// Starts a handshake as the side that dialed. Returns the handshake and message 1's
    /// frame, to write first.
    pub fn initiator(
        keys: &StaticKeypair,
        hello: &Hello,
        options: HandshakeOptions,
    ) -> Result<(Handshake, Bytes), NoiseError> {
        let mut handshake = Self::build(true, keys, hello, options)?;
        let message_1 = handshake.write(&[])?;
        Ok((handshake, message_1))
    }

    /// Starts a handshake as the side that accepted: it waits for message 1.
    pub fn responder(
        keys: &StaticKeypair,
        hello: &Hello,
        options: HandshakeOptions,
    ) -> Result<Handshake, NoiseError> {
        Self::build(false, keys, hello, options)
    }

    fn build(
        initiator: bool,
        keys: &StaticKeypair,
        hello: &Hello,
        options: HandshakeOptions,
    ) -> Result<Handshake, NoiseError> {
        let backend = options.backend.unwrap_or(Backend::CHOSEN);
        let mut encoded = BytesMut::new();
        encode_hello(hello, &mut encoded);
        let ephemeral = options.fixed_ephemeral_for_testing_only;
        let mut builder = backend
            .builder()?
            .local_private_key(keys.private_bytes())
            .and_then(|b| b.prologue(PROLOGUE))
            .map_err(NoiseError::from_snow)?;
        if let Some(ephemeral) = &ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(ephemeral);
        }
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(NoiseError::from_snow)?;
        Ok(Handshake {
            state,
            hello: encoded,
            expected_remote: options.expected_remote,
            read_message_1: false,
        })
    }

    /// Reads the peer's next handshake message (without its length prefix, as
    /// [`HandshakeCodec`] yields it).
    pub fn read(mut self, message: &[u8]) -> Result<Step, NoiseError> {
        if self.state.is_my_turn() || self.state.is_handshake_finished() {
            return Err(NoiseError::BadHandshakeMessage("a message out of turn"));
        }
        let initiator = self.state.is_initiator();
        // A responder's first read is message 1.
        let message_1 = !initiator && !self.read_message_1;
        if message_1 && message.len() != MESSAGE_1_BYTES {
            // Message 1 is an ephemeral key and an empty payload, nothing else.
            return Err(NoiseError::BadHandshakeMessage(
                "message 1 must be exactly 32 bytes (an ephemeral key, empty payload)",
            ));
        }
        let mut payload = vec![0u8; message.len()];
        let len = self
            .state
            .read_message(message, &mut payload)
            .map_err(|err| match err {
                snow::Error::Input => {
                    NoiseError::BadHandshakeMessage("too short for its place in the handshake")
                }
                other => NoiseError::from_snow(other),
            })?;
        payload.truncate(len);
        if message_1 {
            self.read_message_1 = true;
            // Read message 1; answer with message 2, which carries our hello.
            let hello = std::mem::take(&mut self.hello);
            let reply = self.write(&hello)?;
            return Ok(Step::Reply(Box::new(self), reply));
        }
        self.finish(&payload, initiator)
    }

    /// Message 2 (initiator) or 3 (responder) has been read: check the peer's static key and
    /// hello, answer with message 3 if we are the initiator, and switch to transport mode.
    fn finish(mut self, payload: &[u8], initiator: bool) -> Result<Step, NoiseError> {
        let remote_key = self
            .state
            .get_remote_static()
            .and_then(PeerKey::from_slice)
            .ok_or(NoiseError::BadHandshakeMessage("no static key"))?;
        if let Some(expected) = self.expected_remote {
            if expected != remote_key {
                return Err(NoiseError::UnexpectedKey {
                    expected,
                    presented: remote_key,
                });
            }
        }
        let remote_hello = decode_hello(payload).map_err(NoiseError::BadHello)?;
        if remote_hello.protocol != PROTOCOL_VERSION {
            return Err(NoiseError::UnsupportedProtocol(remote_hello.protocol));
        }
        let reply = if initiator {
            let hello = std::mem::take(&mut self.hello);
            Some(self.write(&hello)?)
        } else {
            None
        };
        let handshake_hash = self.state.get_handshake_hash().to_vec();
        let transport = Arc::new(
            self.state
                .into_stateless_transport_mode()
                .map_err(NoiseError::from_snow)?,
        );
        Ok(Step::Done {
            reply,
            established: Established {
                remote_key,
                remote_hello,
                handshake_hash,
                sealer: Sealer {
                    transport: transport.clone(),
                    nonce: 0,
                    plaintext: Vec::new(),
                },
                opener: Opener {
                    transport,
                    nonce: 0,
                },
            },
        })
    }

    /// Our next handshake message with this payload, as a frame.
    fn write(&mut self, payload: &[u8]) -> Result<Bytes, NoiseError> {
        let mut frame = BytesMut::zeroed(LENGTH_PREFIX + MAX_NOISE_MESSAGE);
        let len = self
            .state
            .write_message(payload, &mut frame[LENGTH_PREFIX..])
            .map_err(|err| match err {
                snow::Error::Input => NoiseError::MapTooLarge { len: payload.len() },
                other => NoiseError::from_snow(other),
            })?;
        frame.truncate(LENGTH_PREFIX + len);
        // len <= MAX_NOISE_MESSAGE, so it fits in the u32 prefix.
        frame[..LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(frame.freeze())
    }
}

/// Both ends of one handshake run in memory, `initiator` dialing `responder` (each with a
/// hello named "a"/"b"): the two `Established` halves, for tests and benches that need a
/// sealer and the opener that opens what it seals, without a socket.
pub fn handshake_in_memory(
    initiator: &StaticKeypair,
    responder: &StaticKeypair,
) -> Result<(Established, Established), NoiseError> {
    let out_of_step = NoiseError::BadHandshakeMessage("out of step in memory");
    let options = HandshakeOptions::default;
    let (dialer, m1) = Handshake::initiator(initiator, &Hello::new("a", 1), options())?;
    let answerer = Handshake::responder(responder, &Hello::new("b", 2), options())?;
    let Step::Reply(answerer, m2) = answerer.read(&m1[LENGTH_PREFIX..])? else {
        return Err(out_of_step);
    };
    let Step::Done {
        reply: Some(m3),
        established: ours,
    } = dialer.read(&m2[LENGTH_PREFIX..])?
    else {
        return Err(out_of_step);
    };
    let Step::Done {
        established: theirs,
        ..
    } = answerer.read(&m3[LENGTH_PREFIX..])?
    else {
        return Err(out_of_step);
    };
    Ok((ours, theirs))
}

/// Reads a frame's length prefix; `Ok(None)` until the whole frame is in `src`.
pub(super) fn whole_frame(src: &mut BytesMut) -> Result<Option<usize>, NoiseError> {
    if src.len() < LENGTH_PREFIX {
        return Ok(None);
    }
    let mut prefix = [0u8; LENGTH_PREFIX];
    prefix.copy_from_slice(&src[..LENGTH_PREFIX]);
    let len = u32::from_be_bytes(prefix) as usize;
    // Refuse before buffering: a hostile length must not make us allocate.
    if len > MAX_NOISE_MESSAGE {
        return Err(NoiseError::TooLarge { len });
    }
    if src.len() < LENGTH_PREFIX + len {
        src.reserve(LENGTH_PREFIX + len - src.len());
        return Ok(None);
    }
    Ok(Some(len))
}

/// tokio-util decoder of the handshake's frames: yields each Noise message, length prefix
/// removed. Bytes read past the last one stay in the buffer for [`TransportCodec`]
/// (`FramedRead::map_decoder`).
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = BytesMut;
    type Error = NoiseError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, NoiseError> {
        let Some(len) = whole_frame(src)? else {
            return Ok(None);
        };
        src.advance(LENGTH_PREFIX);
        Ok(Some(src.split_to(len)))
    }
}

/// Runs a whole handshake over a reader and a writer (a test client, the benchmark; the
/// Session drives [`Handshake`] itself). `start` is what [`Handshake::initiator`] returns, or a
/// responder with no frame. Bound it with a timeout: a peer that says nothing keeps it waiting.
pub async fn run_handshake<R, W>(
    reader: &mut FramedRead<R, HandshakeCodec>,
    writer: &mut W,
    start: (Handshake, Option<Bytes>),
) -> Result<Established, NoiseError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use futures::StreamExt;
    let (mut handshake, first) = start;
    if let Some(frame) = first {
        writer.write_all(&frame).await?;
    }
    loop {
        let message = reader.next().await.ok_or(NoiseError::Incomplete)??;
        match handshake.read(&message)? {
            Step::Reply(next, frame) => {
                writer.write_all(&frame).await?;
                handshake = *next;
            }
            Step::Done { reply, established } => {
                if let Some(frame) = reply {
                    writer.write_all(&frame).await?;
                }
                return Ok(established);
            }
        }
    }
}

// ---- the transport ----
