use std::time::Instant;

use super::*;
use crate::key::hex;
use crate::wire::{encode_frame_into, encode_map, PeerEntry};

fn hello(name: &str, port: u16) -> Hello {
    Hello::new(name, port)
}

fn options(backend: Backend) -> HandshakeOptions {
    HandshakeOptions {
        backend: Some(backend),
        ..HandshakeOptions::default()
    }
}

/// Strips a frame's length prefix, checking it.
fn message(frame: &[u8]) -> &[u8] {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4, "length prefix");
    &frame[4..]
}

/// A whole handshake in memory: (initiator's, responder's) ends, with the frames seen.
fn handshake_pair(
    initiator_keys: &StaticKeypair,
    responder_keys: &StaticKeypair,
    backend: Backend,
) -> (Established, Established) {
    let (initiator, m1) =
        Handshake::initiator(initiator_keys, &hello("alice", 9000), options(backend)).unwrap();
    let responder =
        Handshake::responder(responder_keys, &hello("bob", 9001), options(backend)).unwrap();
    assert_eq!(m1.len(), 4 + 32, "message 1 is an ephemeral key");
    let Step::Reply(responder, m2) = responder.read(message(&m1)).unwrap() else {
        panic!("the responder answers message 1");
    };
    let Step::Done {
        reply: Some(m3),
        established: alice,
    } = initiator.read(message(&m2)).unwrap()
    else {
        panic!("the initiator is done after message 2 and sends message 3");
    };
    let Step::Done {
        reply: None,
        established: bob,
    } = responder.read(message(&m3)).unwrap()
    else {
        panic!("the responder is done after message 3");
    };
    (alice, bob)
}

fn chat(id: u64, text: &str) -> Frame {
    Frame::Chat {
        id,
        text: text.into(),
        sent_at_ms: 1_764_040_000_000 + id,
    }
}

/// Frames the way a FrameWriter buffers them: length prefix and map, back to back.
fn framed(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for frame in frames {
        encode_frame_into(frame, &mut buf).unwrap();
    }
    buf
}

fn decode_all(codec: &mut TransportCodec, wire: &mut BytesMut) -> Result<Vec<Frame>, NoiseError> {
    let mut out = Vec::new();
    while let Some(frame) = codec.decode(wire)? {
        out.push(frame);
    }
    Ok(out)
}

#[test]
fn both_sides_learn_each_others_key_and_hello() {
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    assert_ne!(alice.public(), bob.public());
    for backend in [Backend::RustCrypto, Backend::Ring] {
        let (at_alice, at_bob) = handshake_pair(&alice, &bob, backend);
        assert_eq!(at_alice.remote_key, bob.public());
        assert_eq!(at_bob.remote_key, alice.public());
        assert_eq!(at_alice.remote_hello, hello("bob", 9001));
        assert_eq!(at_bob.remote_hello, hello("alice", 9000));
        assert_eq!(at_alice.handshake_hash, at_bob.handshake_hash);
        assert_eq!(at_alice.handshake_hash.len(), 32);
    }
}

#[test]
fn the_two_backends_interoperate() {
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    let (initiator, m1) =
        Handshake::initiator(&alice, &hello("alice", 1), options(Backend::Ring)).unwrap();
    let responder =
        Handshake::responder(&bob, &hello("bob", 2), options(Backend::RustCrypto)).unwrap();
    let Step::Reply(responder, m2) = responder.read(message(&m1)).unwrap() else {
        panic!()
    };
    let Step::Done {
        reply: Some(m3),
        established: mut at_alice,
    } = initiator.read(message(&m2)).unwrap()
    else {
        panic!()
    };
    let Step::Done {
        established: at_bob,
        ..
    } = responder.read(message(&m3)).unwrap()
    else {
        panic!()
    };
    let mut wire = BytesMut::new();
    at_alice
        .sealer
        .seal_frames(&framed(&[chat(1, "hi")]), &mut wire)
        .unwrap();
    let mut codec = TransportCodec::new(at_bob.opener);
    assert_eq!(decode_all(&mut codec, &mut wire).unwrap(), [chat(1, "hi")]);
}

#[test]
fn a_batch_is_one_transport_message_and_comes_out_in_order() {
    let (mut alice, bob) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    let frames: Vec<Frame> = (0..100)
        .map(|i| chat(i, "hello"))
        .chain([Frame::Ack { id: 7 }, Frame::Ping { nonce: 3 }])
        .collect();
    let mut wire = BytesMut::new();
    assert_eq!(
        alice
            .sealer
            .seal_frames(&framed(&frames), &mut wire)
            .unwrap(),
        1
    );
    let mut codec = TransportCodec::new(bob.opener);
    // Fed a byte at a time, as a slow network would.
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for byte in wire.iter() {
        buf.put_u8(*byte);
        out.extend(decode_all(&mut codec, &mut buf).unwrap());
    }
    assert_eq!(out, frames);
    assert!(buf.is_empty());
}

#[test]
fn the_decoder_lets_go_of_its_plaintext_buffer_once_a_read_is_decoded() {
    let (mut alice, bob) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    let mut codec = TransportCodec::new(bob.opener);
    let mut wire = BytesMut::new();
    // A small message: the buffer holds its plaintext while maps are left to decode, and is
    // let go once all that was read is decoded.
    let small = [chat(1, "hi"), Frame::Ack { id: 7 }];
    alice
        .sealer
        .seal_frames(&framed(&small), &mut wire)
        .unwrap();
    assert_eq!(codec.decode(&mut wire).unwrap(), Some(small[0].clone()));
    assert!(codec.plaintext.capacity() > 0);
    assert_eq!(decode_all(&mut codec, &mut wire).unwrap(), small[1..]);
    assert_eq!(codec.plaintext.capacity(), 0);
    // The thread keeps it for the next message opened, by any codec.
    let kept = crate::spare::take(&transport::SPARE_PLAINTEXT).expect("a spare kept");
    assert!(kept.capacity() > 0);
    crate::spare::keep(&transport::SPARE_PLAINTEXT, kept, |_| true);
    // A message of several maps, over 2 KiB in all: every map comes out, in order, and then
    // the buffer is let go, not kept for the connection's life.
    let big: Vec<Frame> = (0..30).map(|i| chat(i, &"x".repeat(100))).collect();
    alice.sealer.seal_frames(&framed(&big), &mut wire).unwrap();
    assert_eq!(decode_all(&mut codec, &mut wire).unwrap(), big);
    assert_eq!(codec.plaintext.capacity(), 0);
    // Grown past 2 KiB: not kept by the thread either.
    assert!(crate::spare::take(&transport::SPARE_PLAINTEXT).is_none());
    // And the codec goes on with the next message.
    alice
        .sealer
        .seal_frames(&framed(&small), &mut wire)
        .unwrap();
    assert_eq!(decode_all(&mut codec, &mut wire).unwrap(), small);
}

#[test]
fn a_batch_too_big_for_one_message_spans_several_of_whole_maps() {
    let (mut alice, mut bob) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    // 40 chats of ~4 KiB: about 2.5 messages' worth; and one as large as a map may be.
    let mut frames: Vec<Frame> = (0..40).map(|i| chat(i, &"x".repeat(4000))).collect();
    frames.push(chat(40, &"y".repeat(crate::wire::MAX_TEXT_BYTES)));
    frames.push(Frame::Ack { id: 1 });
    let buffered = framed(&frames);
    let mut wire = BytesMut::new();
    let sealed = alice.sealer.seal_frames(&buffered, &mut wire).unwrap();
    assert!(sealed >= 4, "{sealed} messages");
    // Each frame is at most 65535 bytes after its prefix and opens to whole maps.
    let mut rest = &wire[..];
    let mut opened = Vec::new();
    let mut plaintext = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(len <= MAX_NOISE_MESSAGE);
        bob.opener.open(&rest[4..4 + len], &mut plaintext).unwrap();
        assert!(plaintext.len() <= MAX_PLAINTEXT);
        for map in split_maps(&plaintext) {
            opened.push(decode_payload(map.unwrap()).unwrap());
        }
        rest = &rest[4 + len..];
    }
    assert_eq!(opened.len(), frames.len());
    assert_eq!(opened, frames);
}

#[test]
fn a_map_over_the_limit_is_refused_and_nothing_is_sealed() {
    let (mut alice, _) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    let mut wire = BytesMut::from(&b"kept"[..]);
    // One byte over what a transport message carries (the wire refuses to encode such a
    // map; the sealer refuses it too).
    let mut big = framed(&[chat(1, "a")]);
    big.extend_from_slice(&((MAX_PLAINTEXT + 1) as u32).to_be_bytes());
    big.extend_from_slice(&vec![0x80; MAX_PLAINTEXT + 1]);
    let err = alice.sealer.seal_frames(&big, &mut wire).unwrap_err();
    assert!(matches!(err, NoiseError::MapTooLarge { .. }), "{err}");
    assert_eq!(&wire[..], b"kept");
    // Not whole frames: refused.
    let mut cut = framed(&[chat(1, "a")]);
    cut.truncate(cut.len() - 1);
    assert!(matches!(
        alice.sealer.seal_frames(&cut, &mut wire),
        Err(NoiseError::BadFrames)
    ));
}

#[test]
fn a_flipped_byte_anywhere_fails_to_decrypt_and_closes_without_bye() {
    let (mut alice, bob) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    let mut wire = BytesMut::new();
    alice
        .sealer
        .seal_frames(&framed(&[chat(1, "secret")]), &mut wire)
        .unwrap();
    assert!(
        !wire.windows(6).any(|w| w == b"secret"),
        "the text is not on the wire"
    );
    let mut codec = TransportCodec::new(bob.opener);
    for at in 4..wire.len() {
        let mut tampered = wire.clone();
        tampered[at] ^= 0x01;
        let mut fresh = TransportCodec::new(Opener {
            transport: codec.opener.transport.clone(),
            nonce: 0,
        });
        let err = fresh.decode(&mut tampered).unwrap_err();
        assert!(matches!(err, NoiseError::Decrypt), "byte {at}: {err}");
        assert!(!err.says_bye());
    }
    // The untouched frame still opens.
    assert_eq!(
        decode_all(&mut codec, &mut wire.clone()).unwrap(),
        [chat(1, "secret")]
    );
    // Replayed: the nonce has moved on, so it no longer verifies.
    assert!(matches!(codec.decode(&mut wire), Err(NoiseError::Decrypt)));
}

#[test]
fn a_bad_map_after_good_ones_yields_the_good_ones_then_a_bye_error() {
    let (mut alice, bob) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    let mut plaintext = framed(&[chat(1, "ok")]).split_off(4).to_vec();
    plaintext.extend([0x92, 0x01, 0x02]); // an array, not a map
    let mut wire = BytesMut::new();
    alice.sealer.seal(&plaintext, &mut wire).unwrap();
    // And an empty plaintext.
    alice.sealer.seal(&[], &mut wire).unwrap();
    let mut codec = TransportCodec::new(bob.opener);
    assert_eq!(codec.decode(&mut wire).unwrap(), Some(chat(1, "ok")));
    let err = codec.decode(&mut wire).unwrap_err();
    assert!(
        matches!(err, NoiseError::BadPlaintext(WireError::NotAMap)),
        "{err}"
    );
    assert!(err.says_bye());
    let err = codec.decode(&mut wire).unwrap_err();
    assert!(err.says_bye(), "{err}");
}

#[test]
fn a_hostile_length_is_refused_before_buffering() {
    let (_, bob) = handshake_pair(
        &StaticKeypair::generate().unwrap(),
        &StaticKeypair::generate().unwrap(),
        Backend::CHOSEN,
    );
    let mut codec = TransportCodec::new(bob.opener);
    let mut wire = BytesMut::from(&[0x00, 0x01, 0x00, 0x00][..]);
    assert!(matches!(
        codec.decode(&mut wire),
        Err(NoiseError::TooLarge { len: 65536 })
    ));
    assert!(wire.capacity() < 65536);
    let mut wire = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        HandshakeCodec.decode(&mut wire),
        Err(NoiseError::TooLarge { .. })
    ));
    // A message shorter than a tag cannot verify.
    let mut wire = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
    assert!(matches!(codec.decode(&mut wire), Err(NoiseError::Decrypt)));
}

#[test]
fn an_initiator_expecting_another_key_stops_before_saying_who_it_is() {
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    let mallory = StaticKeypair::generate().unwrap();
    let (initiator, m1) = Handshake::initiator(
        &alice,
        &hello("alice", 1),
        HandshakeOptions {
            expected_remote: Some(bob.public()),
            ..HandshakeOptions::default()
        },
    )
    .unwrap();
    let responder =
        Handshake::responder(&mallory, &hello("bob", 2), HandshakeOptions::default()).unwrap();
    let Step::Reply(_, m2) = responder.read(message(&m1)).unwrap() else {
        panic!()
    };
    match initiator.read(message(&m2)) {
        Err(NoiseError::UnexpectedKey {
            expected,
            presented,
        }) => {
            assert_eq!(expected, bob.public());
            assert_eq!(presented, mallory.public());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_public_key_without_its_private_key_cannot_finish_a_handshake() {
    // Mallory knows bob's public key and claims it: her static key is her own, so the
    // responder learns mallory's key, never bob's.
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    let mallory = StaticKeypair::generate().unwrap();
    let (at_alice, _) = handshake_pair(&mallory, &alice, Backend::CHOSEN);
    assert_eq!(at_alice.remote_key, alice.public());
    let (_, at_alice) = handshake_pair(&mallory, &alice, Backend::CHOSEN);
    assert_ne!(at_alice.remote_key, bob.public());
    // Splicing bob's public key into message 3 in place of the encrypted static key makes
    // it fail to verify.
    let (initiator, m1) =
        Handshake::initiator(&mallory, &hello("bob", 1), HandshakeOptions::default()).unwrap();
    let responder =
        Handshake::responder(&alice, &hello("alice", 2), HandshakeOptions::default()).unwrap();
    let Step::Reply(responder, m2) = responder.read(message(&m1)).unwrap() else {
        panic!()
    };
    let Step::Done {
        reply: Some(m3), ..
    } = initiator.read(message(&m2)).unwrap()
    else {
        panic!()
    };
    let mut forged = message(&m3).to_vec();
    forged[..32].copy_from_slice(bob.public().as_bytes());
    assert!(matches!(responder.read(&forged), Err(NoiseError::Decrypt)));
}

#[test]
fn handshake_messages_that_do_not_fit_their_place_are_refused() {
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    let responder = || Handshake::responder(&bob, &hello("bob", 2), HandshakeOptions::default());
    // Message 1 with a payload, or cut short.
    for bad in [vec![7u8; 33], vec![7u8; 31], vec![]] {
        assert!(matches!(
            responder().unwrap().read(&bad),
            Err(NoiseError::BadHandshakeMessage(_))
        ));
    }
    // Message 2 that is noise, or tampered.
    let (initiator, m1) =
        Handshake::initiator(&alice, &hello("alice", 1), HandshakeOptions::default()).unwrap();
    let Step::Reply(_, m2) = responder().unwrap().read(message(&m1)).unwrap() else {
        panic!()
    };
    let mut tampered = message(&m2).to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    assert!(matches!(
        initiator.read(&tampered),
        Err(NoiseError::Decrypt)
    ));
    let (initiator, _) =
        Handshake::initiator(&alice, &hello("alice", 1), HandshakeOptions::default()).unwrap();
    assert!(initiator.read(&[1, 2, 3]).is_err());
    // Random bytes of every length up to a few hundred: errors, never a panic.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let (initiator, _) =
            Handshake::initiator(&alice, &hello("alice", 1), HandshakeOptions::default()).unwrap();
        assert!(initiator.read(&bytes).is_err());
        if len != 32 {
            assert!(responder().unwrap().read(&bytes).is_err());
        }
    }
}

#[test]
fn a_hello_of_another_protocol_or_not_a_hello_is_refused() {
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    let wrong = Hello {
        protocol: 3,
        ..hello("bob", 2)
    };
    let (initiator, m1) =
        Handshake::initiator(&alice, &hello("alice", 1), HandshakeOptions::default()).unwrap();
    let responder = Handshake::responder(&bob, &wrong, HandshakeOptions::default()).unwrap();
    let Step::Reply(_, m2) = responder.read(message(&m1)).unwrap() else {
        panic!()
    };
    assert!(matches!(
        initiator.read(message(&m2)),
        Err(NoiseError::UnsupportedProtocol(3))
    ));
    // A responder whose "hello" is a peers map: a bad hello.
    let peers = encode_map(&Frame::Peers {
        peers: vec![PeerEntry {
            addr: "1.2.3.4:5".into(),
            name: "x".into(),
            key: PeerKey::from_bytes([1; 32]),
        }],
    })
    .unwrap();
    let peers = BytesMut::from(&peers[..]);
    let (initiator, m1) =
        Handshake::initiator(&alice, &hello("alice", 1), HandshakeOptions::default()).unwrap();
    let mut responder =
        Handshake::responder(&bob, &hello("bob", 2), HandshakeOptions::default()).unwrap();
    responder.hello = peers;
    let Step::Reply(_, m2) = responder.read(message(&m1)).unwrap() else {
        panic!()
    };
    let err = initiator.read(message(&m2)).unwrap_err();
    assert!(matches!(err, NoiseError::BadHello(_)), "{err}");
    assert!(!err.says_bye());
}

#[test]
fn keypairs_round_trip_through_their_private_half() {
    let keys = StaticKeypair::generate().unwrap();
    let again = StaticKeypair::from_private(*keys.private_bytes()).unwrap();
    assert_eq!(again.public(), keys.public());
    assert!(!format!("{keys:?}").contains(&hex(keys.private_bytes())));
}

#[tokio::test]
async fn run_handshake_over_a_real_socket_keeps_what_was_read_ahead() {
    use futures::StreamExt;
    use tokio::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    let bob_public = bob.public();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = FramedRead::new(read, HandshakeCodec);
        let start =
            Handshake::responder(&bob, &hello("bob", 2), HandshakeOptions::default()).unwrap();
        let established = run_handshake(&mut reader, &mut write, (start, None))
            .await
            .unwrap();
        let mut frames = reader.map_decoder(|_| TransportCodec::new(established.opener));
        let mut got = Vec::new();
        while let Some(frame) = frames.next().await {
            got.push(frame.unwrap());
        }
        (established.remote_key, got)
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut reader = FramedRead::new(read, HandshakeCodec);
    let start = Handshake::initiator(
        &alice,
        &hello("alice", 1),
        HandshakeOptions {
            expected_remote: Some(bob_public),
            ..HandshakeOptions::default()
        },
    )
    .unwrap();
    let mut established = run_handshake(&mut reader, &mut write, (start.0, Some(start.1)))
        .await
        .unwrap();
    // Message 3 and the chats leave in one write: the responder reads them together.
    let frames: Vec<Frame> = (0..10).map(|i| chat(i, "over tcp")).collect();
    let mut wire = BytesMut::new();
    established
        .sealer
        .seal_frames(&framed(&frames), &mut wire)
        .unwrap();
    write.write_all(&wire).await.unwrap();
    write.shutdown().await.unwrap();
    let (key, got) = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key, alice.public());
    assert_eq!(got, frames);
}

/// Figures for choosing [`Backend::CHOSEN`]. Run in release:
/// `cargo test -p peerchat-actors --release --lib noise::tests::measure_backends -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: run it in release, it prints figures"]
fn measure_backends() {
    let alice = StaticKeypair::generate().unwrap();
    let bob = StaticKeypair::generate().unwrap();
    // A chat as the stream bench sends it: a short text.
    let one_chat = framed(&[chat(123_456, "stream message 123456 of the benchmark")]);
    let chats: Vec<Frame> = (0..1024)
        .map(|i| chat(i, "stream message 123456 of the benchmark"))
        .collect();
    let batch = framed(&chats);
    for backend in [Backend::RustCrypto, Backend::Ring] {
        // Handshakes: both ends' work, in one thread.
        let n = 2000;
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(handshake_pair(&alice, &bob, backend));
        }
        let handshakes = n as f64 / started.elapsed().as_secs_f64();

        let (mut at_alice, mut at_bob) = handshake_pair(&alice, &bob, backend);
        let mut plaintext = Vec::new();
        // One transport message per chat: seal and open.
        let rounds = 200_000;
        let mut wire = BytesMut::with_capacity(256);
        let started = Instant::now();
        for _ in 0..rounds {
            wire.clear();
            at_alice.sealer.seal_frames(&one_chat, &mut wire).unwrap();
            at_bob.opener.open(&wire[4..], &mut plaintext).unwrap();
        }
        let single = rounds as f64 / started.elapsed().as_secs_f64();

        // Batched: 1024 chats per write, sealed into as few messages as fit.
        let rounds = 500;
        let mut wire = BytesMut::with_capacity(batch.len() * 2);
        let started = Instant::now();
        for _ in 0..rounds {
            wire.clear();
            at_alice.sealer.seal_frames(&batch, &mut wire).unwrap();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                at_bob
                    .opener
                    .open(&rest[4..4 + len], &mut plaintext)
                    .unwrap();
                rest = &rest[4 + len..];
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let batched = (rounds * chats.len()) as f64 / elapsed;
        let mib = (rounds * batch.len()) as f64 / elapsed / (1024.0 * 1024.0);
        println!(
            "{backend:?}: {handshakes:.0} handshakes/s (both ends); one message per chat \
             {:.2} M chats/s; batched {:.2} M chats/s ({mib:.0} MiB/s of maps)",
            single / 1e6,
            batched / 1e6
        );
    }
}
