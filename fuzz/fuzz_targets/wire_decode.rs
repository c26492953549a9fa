//! Coverage-guided fuzzing of the wire codec (nightly: `cargo +nightly fuzz run wire_decode`,
//! see docs/limits.md). An input is a plaintext as a transport message carries it: maps back
//! to back. Splitting and decoding must never panic, and a map the codec reads must encode
//! and read back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchat_actors::wire::{decode_payload, encode_map, split_maps, Frame};

fuzz_target!(|data: &[u8]| {
    for map in split_maps(data) {
        let Ok(map) = map else {
            break;
        };
        if let Ok(frame) = decode_payload(map) {
            round_trips(&frame);
        }
    }
    if let Ok(frame) = decode_payload(data) {
        round_trips(&frame);
    }
});

fn round_trips(frame: &Frame) {
    if *frame == Frame::Unknown {
        return; // Never sent.
    }
    if let Ok(encoded) = encode_map(frame) {
        let again = decode_payload(&encoded).expect("our own map decodes");
        assert_eq!(&again, frame);
    }
}
