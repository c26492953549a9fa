//! Property tests over the wire codec and its framing (issue 13, "fuzzing in CI"): whatever
//! bytes a peer sends, however TCP splits them, the decoder never panics, never allocates for a
//! length over the limit, and reads back exactly the frames that were encoded. Stable Rust, run
//! by `cargo test`; the coverage-guided fuzzer for nightly is in fuzz/ (docs/limits.md).

use bytes::BytesMut;
use peerchat_actors::wire::{decode_payload, Frame, PeerEntry, WireCodec, WireError, MAX_PAYLOAD};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// A decoder call may return nothing more than once per byte fed, plus one.
fn decode_until_stuck(buf: &mut BytesMut) -> (Vec<Frame>, Option<WireError>) {
    let mut frames = Vec::new();
    let limit = buf.len() + 1;
    for _ in 0..limit {
        match WireCodec.decode(buf) {
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
    let entry = (text(24), text(16)).prop_map(|(addr, name)| PeerEntry { addr, name });
    prop_oneof![
        (any::<u64>(), any::<u64>(), text(40), any::<u16>()).prop_map(
            |(protocol, node_id, name, listen_port)| Frame::Hello {
                protocol,
                node_id,
                name,
                listen_port,
            }
        ),
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

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut bytes = BytesMut::new();
    for frame in frames {
        WireCodec
            .encode(frame, &mut bytes)
            .expect("a small frame encodes");
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut buf = BytesMut::from(&bytes[..]);
        decode_until_stuck(&mut buf);
        let _ = decode_payload(&bytes);
    }

    #[test]
    fn arbitrary_payloads_behind_a_valid_length_never_panic(
        // Mostly MessagePack maps (0x80..=0x8f, 0xde, 0xdf) so the decoder goes past byte one.
        head in prop_oneof![0x80u8..=0x8f, Just(0xde), Just(0xdf), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut payload = vec![head];
        payload.extend_from_slice(&rest);
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        let (frames, _) = decode_until_stuck(&mut bytes);
        prop_assert!(frames.len() <= 1);
        // Exactly one frame's bytes, consumed whatever the verdict.
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn valid_frames_survive_any_split(
        frames in proptest::collection::vec(frame(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let bytes = encode_all(&frames);
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut from = 0;
        for cut in cuts {
            buf.extend_from_slice(&bytes[from..cut]);
            from = cut;
            let (more, err) = decode_until_stuck(&mut buf);
            prop_assert!(err.is_none(), "{err:?}");
            decoded.extend(more);
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_damaged_valid_frame_never_panics(
        frames in proptest::collection::vec(frame(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode_all(&frames);
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at.index(len)] = value;
        }
        decode_until_stuck(&mut bytes);
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_anything_is_buffered(
        len in (MAX_PAYLOAD as u32 + 1)..=u32::MAX,
        trailing in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&trailing);
        let capacity = buf.capacity();
        match WireCodec.decode(&mut buf) {
            Err(WireError::TooLarge { len: said }) => prop_assert_eq!(said, len as usize),
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
        let frame = Frame::Chat { id, text: "x".repeat(MAX_PAYLOAD + extra), sent_at_ms: 1 };
        let mut dst = BytesMut::from(&b"kept"[..]);
        let refused = matches!(WireCodec.encode(&frame, &mut dst), Err(WireError::TooLarge { .. }));
        prop_assert!(refused);
        prop_assert_eq!(&dst[..], b"kept");
    }
}
