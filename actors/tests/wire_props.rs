//! Property tests over the wire codec and its framing (issue 13, "fuzzing in CI"): whatever
//! bytes a peer sends, however TCP splits them, the decoder never panics, never allocates for a
//! length over the limit, and reads back exactly the frames that were encoded. In protocol v2
//! the frames are sealed Noise transport messages: a damaged one never yields a frame that was
//! not sent. Stable Rust, run by `cargo test`; the coverage-guided fuzzer for nightly is in
//! fuzz/ (docs/limits.md).

use bytes::BytesMut;
use peerchat_actors::noise::{
    handshake_in_memory, NoiseError, Sealer, StaticKeypair, TransportCodec, MAX_NOISE_MESSAGE,
};
use peerchat_actors::wire::{
    decode_payload, encode_frame_into, split_maps, Frame, Hello, PeerEntry, WireError,
    MAX_MAP_BYTES,
};
use peerchat_actors::PeerKey;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// A sealer and the decoder that opens what it seals: the two ends of one handshake.
fn session() -> (Sealer, TransportCodec) {
    let (a, b) = (
        StaticKeypair::generate().unwrap(),
        StaticKeypair::generate().unwrap(),
    );
    let (ours, theirs) = handshake_in_memory(&a, &b).unwrap();
    (ours.sealer, TransportCodec::new(theirs.opener))
}

/// A decoder call may return nothing more than once per byte fed, plus the maps of one
/// message.
fn decode_until_stuck(
    codec: &mut TransportCodec,
    buf: &mut BytesMut,
) -> (Vec<Frame>, Option<NoiseError>) {
    let mut frames = Vec::new();
    let limit = buf.len() + 1 + MAX_MAP_BYTES / 8;
    for _ in 0..limit {
        match codec.decode(buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(err) => return (frames, Some(err)),
        }
    }
    panic!("the decoder kept returning frames past the bytes it was given");
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

fn frame() -> impl Strategy<Value = Frame> {
    let entry = (text(24), text(16), any::<[u8; 32]>()).prop_map(|(addr, name, key)| PeerEntry {
        addr,
        name,
        key: PeerKey::from_bytes(key),
    });
    prop_oneof![
        (any::<u64>(), text(40), any::<u16>()).prop_map(|(protocol, name, listen_port)| {
            Frame::Hello(Hello {
                protocol,
                name,
                listen_port,
            })
        }),
        (any::<u64>(), text(200), any::<u64>()).prop_map(|(id, text, sent_at_ms)| Frame::Chat {
            id,
            text,
            sent_at_ms
        }),
        any::<u64>().prop_map(|id| Frame::Ack { id }),
        Just(Frame::GetPeers),
        proptest::collection::vec(entry, 0..8).prop_map(|peers| Frame::Peers { peers }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        text(60).prop_map(|reason| Frame::Bye { reason }),
    ]
}

/// The frames sealed as a writer seals them: one batch per `batch` frames.
fn seal_all(sealer: &mut Sealer, frames: &[Frame], batch: usize) -> BytesMut {
    let mut sealed = BytesMut::new();
    for chunk in frames.chunks(batch.max(1)) {
        let mut plain = BytesMut::new();
        for frame in chunk {
            encode_frame_into(frame, &mut plain).expect("a small frame encodes");
        }
        sealer.seal_frames(&plain, &mut sealed).unwrap();
    }
    sealed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_payload(&bytes);
        for map in split_maps(&bytes).flatten() {
            let _ = decode_payload(map);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_to_a_session_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (_, mut codec) = session();
        let mut buf = BytesMut::from(&bytes[..]);
        let (frames, _) = decode_until_stuck(&mut codec, &mut buf);
        // Nothing unsealed by our peer's key is ever a frame.
        prop_assert!(frames.is_empty());
    }

    #[test]
    fn arbitrary_plaintexts_sealed_never_panic(
        // Mostly MessagePack maps (0x80..=0x8f, 0xde, 0xdf) so the decoder goes past byte one.
        head in prop_oneof![0x80u8..=0x8f, Just(0xde), Just(0xdf), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (mut sealer, mut codec) = session();
        let mut plaintext = vec![head];
        plaintext.extend_from_slice(&rest);
        let mut bytes = BytesMut::new();
        sealer.seal(&plaintext, &mut bytes).unwrap();
        decode_until_stuck(&mut codec, &mut bytes);
        // Exactly one message's bytes, consumed whatever the verdict.
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn valid_frames_survive_any_split(
        frames in proptest::collection::vec(frame(), 1..12),
        batch in 1usize..6,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let (mut sealer, mut codec) = session();
        let bytes = seal_all(&mut sealer, &frames, batch);
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut from = 0;
        for cut in cuts {
            buf.extend_from_slice(&bytes[from..cut]);
            from = cut;
            let (more, err) = decode_until_stuck(&mut codec, &mut buf);
            prop_assert!(err.is_none(), "{err:?}");
            decoded.extend(more);
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_damaged_stream_never_panics_and_never_yields_a_frame_not_sent(
        frames in proptest::collection::vec(frame(), 1..6),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let (mut sealer, mut codec) = session();
        let mut bytes = seal_all(&mut sealer, &frames, 2);
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at.index(len)] ^= value;
        }
        let (decoded, _) = decode_until_stuck(&mut codec, &mut bytes);
        // What comes through is what was sent, in order: damage only cuts the stream short.
        prop_assert!(decoded.len() < frames.len() || decoded == frames);
        prop_assert_eq!(&frames[..decoded.len()], &decoded[..]);
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_anything_is_buffered(
        len in (MAX_NOISE_MESSAGE as u32 + 1)..=u32::MAX,
        trailing in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let (_, mut codec) = session();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&trailing);
        let capacity = buf.capacity();
        match codec.decode(&mut buf) {
            Err(NoiseError::TooLarge { len: said }) => prop_assert_eq!(said, len as usize),
            other => prop_assert!(false, "{other:?}"),
        }
        // No room was made for the announced payload.
        prop_assert!(buf.capacity() <= capacity.max(64 * 1024));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_frame_over_the_limit_is_not_encoded(extra in 0usize..200, id in any::<u64>()) {
        let frame = Frame::Chat { id, text: "x".repeat(MAX_MAP_BYTES + extra), sent_at_ms: 1 };
        let mut dst = BytesMut::from(&b"kept"[..]);
        let refused = matches!(encode_frame_into(&frame, &mut dst), Err(WireError::TooLarge { .. }));
        prop_assert!(refused);
        prop_assert_eq!(&dst[..], b"kept");
    }
}
