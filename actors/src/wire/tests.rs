use super::*;
use serde::Serialize;

fn key(byte: u8) -> PeerKey {
    PeerKey::from_bytes([byte; 32])
}

/// A MessagePack `bin`, as serde writes bytes.
struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[derive(Serialize)]
struct HelloMap<'a> {
    r#type: &'static str,
    protocol: u64,
    name: &'a str,
    listen_port: u16,
}

#[derive(Serialize)]
struct EntryMap<'a> {
    addr: &'a str,
    name: &'a str,
    key: Bin<'a>,
}

#[derive(Serialize)]
struct PeersMap<'a> {
    r#type: &'static str,
    peers: Vec<EntryMap<'a>>,
}

/// What rmp-serde writes for `frame` with named fields: the canonical form.
fn serde_bytes(frame: &Frame) -> Vec<u8> {
    let plain = match frame {
        Frame::Hello(hello) => {
            return rmp_serde::to_vec_named(&HelloMap {
                r#type: "hello",
                protocol: hello.protocol,
                name: &hello.name,
                listen_port: hello.listen_port,
            })
            .unwrap()
        }
        Frame::Peers { peers } => {
            let peers = peers
                .iter()
                .map(|p| EntryMap {
                    addr: &p.addr,
                    name: &p.name,
                    key: Bin(p.key.as_bytes()),
                })
                .collect();
            return rmp_serde::to_vec_named(&PeersMap {
                r#type: "peers",
                peers,
            })
            .unwrap();
        }
        Frame::Chat {
            id,
            text,
            sent_at_ms,
        } => plain::PlainFrame::Chat {
            id: *id,
            text: text.clone(),
            sent_at_ms: *sent_at_ms,
        },
        Frame::Ack { id } => plain::PlainFrame::Ack { id: *id },
        Frame::GetPeers => plain::PlainFrame::GetPeers,
        Frame::Ping { nonce } => plain::PlainFrame::Ping { nonce: *nonce },
        Frame::Pong { nonce } => plain::PlainFrame::Pong { nonce: *nonce },
        Frame::Bye { reason } => plain::PlainFrame::Bye {
            reason: reason.clone(),
        },
        Frame::Unknown => plain::PlainFrame::Unknown,
    };
    rmp_serde::to_vec_named(&plain).unwrap()
}

/// Every map of `bytes`, frames written by [`encode_frame_into`], decoded.
fn decode_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        out.push(decode_payload(&bytes[4..4 + len]).unwrap());
        bytes = &bytes[4 + len..];
    }
    out
}

#[test]
fn round_trips_every_frame_kind() {
    let frames = vec![
        Frame::Hello(Hello::new("ünï", 65535)),
        Frame::Chat {
            id: 7,
            text: "hi".into(),
            sent_at_ms: 1,
        },
        Frame::Ack { id: 0 },
        Frame::GetPeers,
        Frame::Peers {
            peers: vec![PeerEntry {
                addr: "1.2.3.4:5".into(),
                name: "x".into(),
                key: key(1),
            }],
        },
        Frame::Ping { nonce: 3 },
        Frame::Pong { nonce: 3 },
        Frame::Bye {
            reason: "quit".into(),
        },
    ];
    let mut buf = BytesMut::new();
    for frame in &frames {
        encode_frame_into(frame, &mut buf).unwrap();
    }
    assert_eq!(decode_frames(&buf), frames);
}

#[test]
fn unknown_type_with_extra_fields_is_ignorable() {
    // {type: "typing", who: "bob", extra: [1,2]}
    let payload = rmp_serde::to_vec_named(&serde_json::json!({
        "type": "typing", "who": "bob", "extra": [1, 2]
    }))
    .unwrap();
    assert_eq!(decode_payload(&payload).unwrap(), Frame::Unknown);
}

#[test]
fn known_type_with_extra_fields_is_accepted() {
    let payload = rmp_serde::to_vec_named(&serde_json::json!({
        "type": "ack", "id": 5, "signature": "later"
    }))
    .unwrap();
    assert_eq!(decode_payload(&payload).unwrap(), Frame::Ack { id: 5 });
}

#[test]
fn refuses_arrays_trailing_bytes_and_empty_payloads() {
    let array = rmp_serde::to_vec(&("ack", 1u64)).unwrap();
    assert!(matches!(decode_payload(&array), Err(WireError::NotAMap)));
    assert!(matches!(decode_payload(&[]), Err(WireError::NotAMap)));
    let mut ack = serde_bytes(&Frame::Ack { id: 1 });
    ack.push(0xc0);
    assert!(matches!(
        decode_payload(&ack),
        Err(WireError::TrailingBytes(1))
    ));
    // a map whose type is not a string
    let payload = rmp_serde::to_vec_named(&serde_json::json!({"type": 5})).unwrap();
    assert!(decode_payload(&payload).is_err());
}

#[test]
fn invalid_utf8_is_named_as_such() {
    // {type: "chat", id: 1, text: <ff fe fd as a str>, sent_at_ms: 0}
    let payload = b"\x84\xa4type\xa4chat\xa2id\x01\xa4text\xa3\xff\xfe\xfd\xaasent_at_ms\x00";
    let err = decode_payload(payload).unwrap_err().to_string();
    assert_eq!(err, "malformed frame: a string field is not valid UTF-8");
}

#[test]
fn refuses_to_encode_a_frame_over_the_limit() {
    let frame = Frame::Chat {
        id: 1,
        text: "x".repeat(MAX_MAP_BYTES),
        sent_at_ms: 0,
    };
    let mut buf = BytesMut::from(&b"kept"[..]);
    assert!(matches!(
        encode_frame_into(&frame, &mut buf),
        Err(WireError::TooLarge { .. })
    ));
    assert_eq!(&buf[..], b"kept", "a refused frame leaves no bytes behind");
}

/// Frames of every kind, at every integer, string and array width.
fn hot_frames() -> Vec<Frame> {
    let ints = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0x100,
        0xffff,
        0x1_0000,
        0xffff_ffff,
        0x1_0000_0000,
        u64::MAX,
    ];
    let texts = [0, 1, 31, 32, 255, 256, 4096, MAX_TEXT_BYTES]
        .into_iter()
        .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
        .chain(["", "ünï ✓ 🎉", "\u{0}\u{1b}[2J"].map(String::from));
    let mut frames = Vec::new();
    for (i, text) in texts.enumerate() {
        frames.push(Frame::Chat {
            id: ints[i % ints.len()],
            text,
            sent_at_ms: ints[(i + 3) % ints.len()],
        });
    }
    for v in ints {
        frames.extend([
            Frame::Ack { id: v },
            Frame::Ping { nonce: v },
            Frame::Pong { nonce: v },
            Frame::Hello(Hello {
                protocol: v,
                name: "ünï".repeat((v % 40) as usize),
                listen_port: (v % 65536) as u16,
            }),
            Frame::Bye {
                reason: "q".repeat((v % 300) as usize),
            },
        ]);
    }
    frames.push(Frame::GetPeers);
    for n in [0, 1, 15, 16, 300] {
        let peers = (0..n)
            .map(|i| PeerEntry {
                addr: format!("10.0.{}.{}:{}", i / 256, i % 256, 1000 + i),
                name: "n".repeat(i % 40),
                key: key(i as u8),
            })
            .collect();
        frames.push(Frame::Peers { peers });
    }
    frames.push(Frame::Peers {
        peers: vec![PeerEntry {
            addr: "[::1]:9001".into(),
            name: String::new(),
            key: key(0xff),
        }],
    });
    frames
}

#[test]
fn fast_array_headers_match_rmp_serde_beyond_a_frame() {
    // 65536 entries do not fit in a frame, but the header must still be serde's.
    for n in [65535usize, 65536] {
        let peers = vec![
            PeerEntry {
                addr: String::new(),
                name: String::new(),
                key: key(0),
            };
            n
        ];
        let frame = Frame::Peers { peers };
        let mut fast = BytesMut::new();
        assert!(fast::encode(&frame, &mut fast));
        assert_eq!(&fast[..], &serde_bytes(&frame)[..]);
    }
}

#[test]
fn fast_encoding_is_byte_for_byte_rmp_serde() {
    for frame in hot_frames() {
        let mut fast = BytesMut::new();
        encode_frame_into(&frame, &mut fast).unwrap();
        let payload = serde_bytes(&frame);
        assert_eq!(&fast[4..], &payload[..], "{}", frame.kind());
        assert_eq!(&fast[..4], &(payload.len() as u32).to_be_bytes());
    }
}

#[test]
fn fast_decoding_agrees_with_serde() {
    for frame in hot_frames() {
        let payload = serde_bytes(&frame);
        assert_eq!(decode_payload(&payload).unwrap(), frame);
        if matches!(frame, Frame::Hello(_) | Frame::Peers { .. }) {
            // Read by the strict reader, never by the fast path.
            assert!(fast::decode(&payload).is_none());
        } else {
            assert_eq!(fast::decode(&payload).as_ref(), Some(&frame));
            assert_eq!(plain::decode(&payload).unwrap(), frame);
        }
        // Cut short, or with a byte more: not the fast path's to judge.
        assert!(fast::decode(&payload[..payload.len() - 1]).is_none());
        let mut longer = payload.clone();
        longer.push(0xc0);
        assert!(fast::decode(&longer).is_none());
        assert!(matches!(
            decode_payload(&longer),
            Err(WireError::TrailingBytes(1))
        ));
    }
}

#[test]
fn non_canonical_hot_frames_still_decode_through_serde() {
    // Keys in another order, a signed integer, a bin text, an extra key: all valid.
    let cases = [
        serde_json::json!({"id": 7, "type": "ack"}),
        serde_json::json!({"type": "ack", "id": 7, "extra": true}),
        serde_json::json!({"type": "chat", "sent_at_ms": 1, "text": "hi", "id": 7}),
    ];
    for case in cases {
        let payload = rmp_serde::to_vec_named(&case).unwrap();
        assert!(fast::decode(&payload).is_none());
        assert!(decode_payload(&payload).is_ok(), "{case}");
    }
    // ack with id as int8 (0xd0 0x07): serde accepts it, the fast path leaves it.
    let signed = [
        0x82, 0xa4, b't', b'y', b'p', b'e', 0xa3, b'a', b'c', b'k', 0xa2, b'i', b'd', 0xd0, 7,
    ];
    assert!(fast::decode(&signed).is_none());
    assert_eq!(decode_payload(&signed).unwrap(), Frame::Ack { id: 7 });
    // chat whose text is invalid UTF-8: refused through serde, with a reason that says so.
    let mut bad = vec![
        0x84, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'c', b'h', b'a', b't',
    ];
    bad.extend([
        0xa2, b'i', b'd', 1, 0xa4, b't', b'e', b'x', b't', 0xa1, 0xff,
    ]);
    bad.extend([0xaa]);
    bad.extend(b"sent_at_ms");
    bad.push(1);
    assert!(fast::decode(&bad).is_none());
    let err = decode_payload(&bad).unwrap_err().to_string();
    assert!(err.contains("not valid UTF-8"), "{err}");
    // hello with listen_port out of range: the strict reader's error
    let hello = rmp_serde::to_vec_named(&serde_json::json!({
        "type": "hello", "protocol": 2, "name": "x", "listen_port": 70000
    }))
    .unwrap();
    assert!(fast::decode(&hello).is_none());
    let err = decode_payload(&hello).unwrap_err().to_string();
    assert!(err.contains("listen_port is over 65535"), "{err}");
    // a peers entry with its keys the other way round, or an extra key: still valid
    #[derive(Serialize)]
    struct Reordered<'a> {
        key: Bin<'a>,
        name: &'a str,
        addr: &'a str,
        x: u8,
    }
    let k = key(3);
    let entry = Reordered {
        key: Bin(k.as_bytes()),
        name: "n",
        addr: "1.2.3.4:5",
        x: 1,
    };
    #[derive(Serialize)]
    struct Map<'a> {
        peers: Vec<Reordered<'a>>,
        r#type: &'a str,
    }
    let peers = rmp_serde::to_vec_named(&Map {
        peers: vec![entry],
        r#type: "peers",
    })
    .unwrap();
    assert!(fast::decode(&peers).is_none());
    let Ok(Frame::Peers { peers }) = decode_payload(&peers) else {
        panic!("reordered peers refused");
    };
    assert_eq!((peers[0].addr.as_str(), peers[0].key), ("1.2.3.4:5", k));
    // a key that is not a 32-byte bin: a str, an array of integers, 31 or 33 bytes
    for bad in [
        serde_json::json!({"type": "peers", "peers": [{"addr": "1.2.3.4:5", "name": "n", "key": "ab"}]}),
        serde_json::json!({"type": "peers", "peers": [{"addr": "1.2.3.4:5", "name": "n", "key": vec![1u8; 32]}]}),
        serde_json::json!({"type": "peers", "peers": [{"addr": "1.2.3.4:5", "name": "n"}]}),
    ] {
        let payload = rmp_serde::to_vec_named(&bad).unwrap();
        assert!(decode_payload(&payload).is_err(), "{bad}");
    }
    for len in [31usize, 33] {
        let mut payload = serde_bytes(&Frame::Peers {
            peers: vec![PeerEntry {
                addr: "a".into(),
                name: "n".into(),
                key: key(1),
            }],
        });
        // The entry ends with c4 20 and the 32 key bytes: give it another length.
        let at = payload.len() - 33;
        payload.truncate(at);
        payload.push(len as u8);
        payload.extend(std::iter::repeat_n(1u8, len));
        let err = decode_payload(&payload).unwrap_err().to_string();
        assert!(err.contains(&format!("`key` is {len} bytes")), "{err}");
    }
    // a peers frame announcing more entries than it holds
    let mut short = vec![0x82, 0xa4, b't', b'y', b'p', b'e', 0xa5];
    short.extend(b"peers");
    short.push(0xa5);
    short.extend(b"peers");
    short.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    assert!(fast::decode(&short).is_none());
    assert!(decode_payload(&short).is_err());
    // a key twice is an error, never a fast-path frame
    let twice = [
        0x82, 0xa4, b't', b'y', b'p', b'e', 0xa3, b'a', b'c', b'k', 0xa4, b't', b'y', b'p', b'e',
        0xa3, b'a', b'c', b'k',
    ];
    assert!(fast::decode(&twice).is_none());
    assert!(decode_payload(&twice).is_err());
}

#[test]
fn hello_decodes_in_any_key_order_and_refuses_what_is_not_a_hello() {
    let hello = Hello::new("ünï", 9000);
    let mut canonical = BytesMut::new();
    encode_hello(&hello, &mut canonical);
    assert_eq!(decode_hello(&canonical).unwrap(), hello);
    let reordered = rmp_serde::to_vec_named(&serde_json::json!({
        "listen_port": 9000, "name": "ünï", "node_id": 5, "type": "hello", "protocol": 2
    }))
    .unwrap();
    assert_eq!(decode_hello(&reordered).unwrap(), hello);
    let bad = [
        serde_json::json!({"type": "hello", "protocol": 2, "name": "x"}),
        serde_json::json!({"type": "chat", "protocol": 2, "name": "x", "listen_port": 1}),
        serde_json::json!({"protocol": 2, "name": "x", "listen_port": 1}),
        serde_json::json!({"type": "hello", "protocol": 2, "name": 5, "listen_port": 1}),
        serde_json::json!({"type": "hello", "protocol": -1, "name": "x", "listen_port": 1}),
        serde_json::json!({"type": "hello", "protocol": 2, "name": "x", "listen_port": 70000}),
        serde_json::json!(["hello", 2, "x", 1]),
    ];
    for case in bad {
        let payload = rmp_serde::to_vec_named(&case).unwrap();
        assert!(decode_hello(&payload).is_err(), "{case}");
    }
    let mut trailing = canonical.to_vec();
    trailing.push(0xc0);
    assert!(matches!(
        decode_hello(&trailing),
        Err(WireError::TrailingBytes(1))
    ));
    // A key twice, and every truncation: errors, never a panic.
    let mut twice = vec![0x85];
    twice.extend_from_slice(&canonical[1..]);
    twice.extend_from_slice(&[0xa4, b'n', b'a', b'm', b'e', 0xa1, b'y']);
    assert!(decode_hello(&twice).is_err());
    for cut in 0..canonical.len() {
        assert!(decode_hello(&canonical[..cut]).is_err());
    }
}

#[test]
fn maps_back_to_back_are_split_whole_and_anything_else_is_refused() {
    let mut plaintext = BytesMut::new();
    let frames = [
        Frame::Chat {
            id: 1,
            text: "x".repeat(300),
            sent_at_ms: 2,
        },
        Frame::Ack { id: 1 },
        Frame::Peers {
            peers: vec![PeerEntry {
                addr: "1.2.3.4:5".into(),
                name: "n".into(),
                key: key(5),
            }],
        },
    ];
    for frame in &frames {
        plaintext.extend_from_slice(&serde_bytes(frame));
    }
    // An unknown map with nested values of every kind: skipped whole.
    let unknown = rmp_serde::to_vec_named(&serde_json::json!({
        "type": "typing", "nested": {"a": [1, -2, 3.5, null, true, "s", {"b": []}]}
    }))
    .unwrap();
    plaintext.extend_from_slice(&unknown);
    let maps: Vec<&[u8]> = split_maps(&plaintext).map(|m| m.unwrap()).collect();
    assert_eq!(maps.len(), 4);
    for (map, frame) in maps.iter().zip(&frames) {
        assert_eq!(&decode_payload(map).unwrap(), frame);
    }
    assert_eq!(decode_payload(maps[3]).unwrap(), Frame::Unknown);
    // Cut anywhere inside the last map: the whole maps before it, then an error.
    let cut = &plaintext[..plaintext.len() - 1];
    let results: Vec<_> = split_maps(cut).collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    assert!(results[3].is_err());
    // Not a map, a hostile count, nesting too deep: errors.
    assert!(matches!(map_len(&[0x01]), Err(WireError::NotAMap)));
    assert!(map_len(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
    let mut deep = vec![0x81, 0xa1, b'k'];
    deep.extend(std::iter::repeat_n(0x91, 100));
    deep.push(0x01);
    assert!(map_len(&deep).is_err());
    assert!(map_len(&[0x81, 0xa1, b'k', 0xc1]).is_err());
}

/// The recursive `strict::value_len` the loop replaced: the model the property tests below
/// hold the loop to, result for result, error for error. It reads each value's header as the
/// loop does (`strict::value_header`): what is modelled is the walk, not the marker table.
fn value_len_recursive(buf: &[u8], depth: usize) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::Malformed(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let (head, body, children) = strict::value_header(buf)?;
    let mut at = head
        .checked_add(body)
        .filter(|end| *end <= buf.len())
        .ok_or_else(truncated_model)?;
    for _ in 0..children {
        if at >= buf.len() {
            return Err(truncated_model());
        }
        at += value_len_recursive(&buf[at..], depth + 1)?;
    }
    Ok(at)
}

fn truncated_model() -> WireError {
    WireError::Malformed("the map ends before its last field".into())
}

/// MessagePack values as bytes: scalars of every width, strings and binaries, and arrays and
/// maps nested a few levels, so that the walk meets every marker and deep nesting.
fn msgpack_value() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let scalar = prop_oneof![
        any::<u8>()
            .prop_filter(
                "not a container",
                |m| !matches!(m, 0x80..=0x9f | 0xdc..=0xdf)
            )
            .prop_flat_map(|marker| {
                proptest::collection::vec(any::<u8>(), 0..20).prop_map(move |mut rest| {
                    rest.insert(0, marker);
                    rest
                })
            }),
        "[a-z]{0,40}".prop_map(|text| {
            // fixstr below 32 bytes, str8 above.
            let mut out = match text.len() {
                len @ 0..=31 => vec![0xa0 | len as u8],
                len => vec![0xd9, len as u8],
            };
            out.extend(text.bytes());
            out
        }),
    ];
    scalar.prop_recursive(40, 256, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(|children| {
            // fixarray, or array16 for the rare long one.
            let mut out = match children.len() {
                len @ 0..=15 => vec![0x90 | len as u8],
                len => vec![0xdc, 0, len as u8],
            };
            for child in children {
                out.extend(child);
            }
            out
        })
    })
}

/// A result of `value_len` in a form that compares: the length, or the error's text.
fn outcome(result: Result<usize, WireError>) -> Result<usize, String> {
    result.map_err(|err| format!("{err:?}"))
}

proptest::proptest! {
    /// The loop agrees with the recursive model on any bytes: lengths, and which error.
    #[test]
    fn value_len_agrees_with_the_recursive_model(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        proptest::prop_assert_eq!(outcome(strict::value_len(&bytes, 0)), outcome(value_len_recursive(&bytes, 0)));
    }

    /// ... and on well-formed values nested up to 40 levels, whole, cut short or followed
    /// by more bytes.
    #[test]
    fn value_len_agrees_on_nested_values(value in msgpack_value(), cut in 0usize..8, tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4)) {
        let cut_short = &value[..value.len().saturating_sub(cut)];
        proptest::prop_assert_eq!(outcome(strict::value_len(cut_short, 0)), outcome(value_len_recursive(cut_short, 0)));
        let mut longer = value.clone();
        longer.extend(tail);
        proptest::prop_assert_eq!(outcome(strict::value_len(&longer, 0)), outcome(value_len_recursive(&longer, 0)));
    }
}

#[test]
fn value_len_refuses_nesting_past_the_limit_as_before() {
    for levels in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 5] {
        let mut deep = vec![0x91; levels];
        deep.push(0x01);
        assert_eq!(
            outcome(strict::value_len(&deep, 0)),
            outcome(value_len_recursive(&deep, 0)),
            "{levels} levels"
        );
    }
    let mut deep = vec![0x91; MAX_DEPTH];
    deep.push(0x01);
    assert_eq!(outcome(strict::value_len(&deep, 0)), Ok(MAX_DEPTH + 1));
}
