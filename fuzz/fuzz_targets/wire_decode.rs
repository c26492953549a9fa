//! Coverage-guided fuzzing of the wire codec (nightly: `cargo +nightly fuzz run wire_decode`,
//! see docs/limits.md). The first byte of an input picks how TCP splits the rest; the codec must
//! never panic, never buffer past a length over the limit, and a frame it reads must encode and
//! read back as itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use peerchat_actors::wire::{decode_payload, encode_frame, Frame, WireCodec, MAX_PAYLOAD};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut buf = BytesMut::new();
    'feed: for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match WireCodec.decode(&mut buf) {
                Ok(Some(frame)) => round_trips(&frame),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(buf.capacity() <= 4 + MAX_PAYLOAD + 64 * 1024 + bytes.len());
    }
    if let Ok(frame) = decode_payload(bytes) {
        round_trips(&frame);
    }
});

fn round_trips(frame: &Frame) {
    if *frame == Frame::Unknown {
        return; // Never sent.
    }
    if let Ok(encoded) = encode_frame(frame) {
        let mut buf = BytesMut::from(&encoded[..]);
        let again = WireCodec.decode(&mut buf).expect("our own frame decodes");
        assert_eq!(again.as_ref(), Some(frame));
    }
}
