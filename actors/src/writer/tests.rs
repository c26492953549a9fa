use super::*;
use crate::noise::{StaticKeypair, TransportCodec};
use crate::wire::decode_payload;
use futures::StreamExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

/// Length-prefixed frames as the writer queues them before any sealing.
struct WireCodec;

impl tokio_util::codec::Decoder for WireCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if src.len() < 4 + len {
            return Ok(None);
        }
        let frame = src.split_to(4 + len);
        decode_payload(&frame[4..]).map(Some)
    }
}

/// Our write half, our read half (kept open), and the peer's socket.
async fn pair() -> (OwnedWriteHalf, OwnedReadHalf, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ours, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (read, write) = ours.unwrap().into_split();
    (write, read, accepted.unwrap().0)
}

#[actix_rt::test]
async fn frames_arrive_in_order_and_close_shuts_the_socket() {
    let (write, _keep, theirs) = pair().await;
    let mut writer = FrameWriter::spawn(write, 1 << 20, Duration::from_secs(5));
    for id in 0..1000 {
        writer.send(&Frame::Ack { id }).unwrap();
    }
    writer.close();
    assert!(matches!(
        writer.send(&Frame::Ack { id: 0 }),
        Err(WriteRefused::Closed)
    ));
    let mut frames = FramedRead::new(theirs, WireCodec);
    for id in 0..1000 {
        assert_eq!(frames.next().await.unwrap().unwrap(), Frame::Ack { id });
    }
    assert!(frames.next().await.is_none(), "socket shut after the queue");
}

#[actix_rt::test]
async fn dropping_the_handle_flushes_then_shuts() {
    let (write, _keep, theirs) = pair().await;
    let mut writer = FrameWriter::spawn(write, 1 << 20, Duration::from_secs(5));
    writer.send(&Frame::Ping { nonce: 9 }).unwrap();
    drop(writer);
    let mut frames = FramedRead::new(theirs, WireCodec);
    assert_eq!(
        frames.next().await.unwrap().unwrap(),
        Frame::Ping { nonce: 9 }
    );
    assert!(frames.next().await.is_none());
}

#[actix_rt::test]
async fn reset_cuts_the_connection_both_ways() {
    let (write, mut ours, theirs) = pair().await;
    let mut writer = FrameWriter::spawn(write, 1 << 20, Duration::from_secs(5));
    writer.send(&Frame::Ping { nonce: 1 }).unwrap();
    writer.reset();
    assert!(matches!(
        writer.send(&Frame::Ping { nonce: 2 }),
        Err(WriteRefused::Closed)
    ));
    // Our reads end...
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut ours, &mut byte),
    )
    .await
    .expect("reads end at once");
    assert!(matches!(read, Ok(0) | Err(_)));
    // ...and so do the peer's, without the frame queued before the reset (the writing
    // task had not run yet).
    let mut frames = FramedRead::new(theirs, WireCodec);
    let next = tokio::time::timeout(Duration::from_secs(5), frames.next())
        .await
        .expect("the peer sees the end");
    assert!(matches!(next, None | Some(Err(_))), "{next:?}");
    // After the writing task is gone, a reset touches nothing.
    drop(frames);
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.reset();
}

#[actix_rt::test]
async fn reset_ends_a_write_stuck_on_a_peer_that_does_not_read() {
    let (write, _keep, _theirs) = pair().await;
    let mut writer = FrameWriter::spawn(write, 64 << 20, Duration::from_secs(60));
    let chat = Frame::Chat {
        id: 1,
        text: "x".repeat(60_000),
        sent_at_ms: 0,
    };
    // More than the socket buffers hold: the writing task waits for the peer to read.
    for _ in 0..1000 {
        writer.send(&chat).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(writer.queued_bytes() > 0);
    writer.reset();
    // The task is not left waiting out its stall timeout: its write fails and it ends.
    tokio::time::timeout(Duration::from_secs(5), async {
        while writer.queued_bytes() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the writing task ends at once");
}

#[actix_rt::test]
async fn a_peer_that_does_not_read_fills_the_bounded_queue() {
    let (write, _keep, _theirs) = pair().await;
    let mut writer = FrameWriter::spawn(write, 64 * 1024, Duration::from_secs(5));
    let chat = Frame::Chat {
        id: 1,
        text: "x".repeat(1000),
        sent_at_ms: 0,
    };
    let mut refused = None;
    for _ in 0..100_000 {
        match writer.send(&chat) {
            Ok(()) => tokio::task::yield_now().await,
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(WriteRefused::QueueFull)),
        "{refused:?}"
    );
    assert!(writer.queued_bytes() <= 64 * 1024);
    // Past the bound on purpose: the last bye.
    writer.send_bytes(Bytes::from_static(b"bye")).unwrap();
}

/// The two ends of a completed handshake, in memory.
fn established() -> (crate::noise::Established, crate::noise::Established) {
    let (a, b) = (
        StaticKeypair::generate().unwrap(),
        StaticKeypair::generate().unwrap(),
    );
    crate::noise::handshake_in_memory(&a, &b).unwrap()
}

#[actix_rt::test]
async fn after_start_sealing_frames_are_sealed_per_batch_and_raw_bytes_stay_raw() {
    let (write, _keep, mut theirs) = pair().await;
    let (ours, peer) = established();
    let mut writer = FrameWriter::spawn(write, 1 << 20, Duration::from_secs(5));
    // Before: raw bytes as they are (a handshake message).
    writer
        .send_bytes(Bytes::from_static(&[0, 0, 0, 2, 7, 7]))
        .unwrap();
    writer.start_sealing(ours.sealer);
    // 1000 acks queued in one turn: one write, one transport message.
    for id in 0..1000 {
        writer.send(&Frame::Ack { id }).unwrap();
    }
    let mut prefix = [0u8; 6];
    tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut prefix)
        .await
        .unwrap();
    assert_eq!(prefix, [0, 0, 0, 2, 7, 7]);
    let mut first = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut first)
        .await
        .unwrap();
    let len = u32::from_be_bytes(first) as usize;
    // Each ack map is 14-16 bytes: all of them fit in one message, plus the tag.
    assert!(
        len < 20_000 && len > 12_000,
        "one message for the batch: {len}"
    );
    let mut rest = vec![0u8; len];
    tokio::io::AsyncReadExt::read_exact(&mut theirs, &mut rest)
        .await
        .unwrap();
    let mut sealed = BytesMut::from(&first[..]);
    sealed.extend_from_slice(&rest);
    let mut codec = TransportCodec::new(peer.opener);
    for id in 0..1000 {
        let frame = tokio_util::codec::Decoder::decode(&mut codec, &mut sealed).unwrap();
        assert_eq!(frame, Some(Frame::Ack { id }));
    }
    // Garbage injected after sealing goes out raw, and the bye sealed behind it.
    writer
        .send_bytes(Bytes::from_static(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]))
        .unwrap();
    writer
        .send_past_limit(&Frame::Bye { reason: "x".into() })
        .unwrap();
    writer.close();
    let mut tail = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut tail)
        .await
        .unwrap();
    assert_eq!(&tail[..7], &[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]);
    let mut sealed = BytesMut::from(&tail[7..]);
    let frame = tokio_util::codec::Decoder::decode(&mut codec, &mut sealed).unwrap();
    assert_eq!(frame, Some(Frame::Bye { reason: "x".into() }));
}

/// Every connection's writing task holds the pump's future for its whole life: its waits
/// for a full socket are boxed, so the future stays small (docs/performance.md, "Many
/// peers").
#[actix_rt::test]
async fn the_writing_task_stays_small() {
    let (write_half, _read_half, _peer) = pair().await;
    let shared = Arc::new(Shared {
        queue: Mutex::default(),
        socket: write_half,
        task: AtomicWaker::new(),
    });
    let pump = pump(shared, Duration::from_secs(1));
    let size = std::mem::size_of_val(&pump);
    assert!(size <= 128, "the pump's future is {size} bytes");
}

#[actix_rt::test]
async fn held_frames_are_written_by_write_held_itself_and_the_rest_by_the_task_in_order() {
    let (write, _keep, theirs) = pair().await;
    // A small send buffer: a few KiB are more than the socket takes at once.
    SockRef::from(write.as_ref())
        .set_send_buffer_size(4096)
        .unwrap();
    let (ours, peer) = established();
    let mut writer = FrameWriter::spawn(write, 8 << 20, Duration::from_secs(5));
    writer.start_sealing(ours.sealer);
    // The writing task has not run since: whatever is on the wire now, write_held wrote.
    for id in 0..3 {
        writer.send_held(&Frame::Ack { id }).unwrap();
    }
    writer.write_held();
    assert_eq!(writer.queued_bytes(), 0);
    // The queue holds no buffer: the thread keeps it for the next frames queued.
    assert_eq!(writer.shared.lock().pending.capacity(), 0);
    assert!(spare::take(&SPARE_PENDING).is_some_and(|spare| spare.is_empty()));
    let mut buf = [0u8; 4096];
    let n = theirs.try_read(&mut buf).expect("already written");
    let mut sealed = BytesMut::from(&buf[..n]);
    let mut codec = TransportCodec::new(peer.opener);
    for id in 0..3 {
        let frame = tokio_util::codec::Decoder::decode(&mut codec, &mut sealed).unwrap();
        assert_eq!(frame, Some(Frame::Ack { id }));
    }
    // More than the socket takes at once: the rest, already sealed, goes first through the
    // task, then what is queued after it.
    let chat = |id| Frame::Chat {
        id,
        text: "y".repeat(1000),
        sent_at_ms: 0,
    };
    for id in 3..503 {
        writer.send_held(&chat(id)).unwrap();
    }
    writer.write_held();
    assert!(writer.queued_bytes() > 0, "the socket took everything");
    writer.send(&Frame::Ack { id: 503 }).unwrap();
    writer.close();
    let mut frames = FramedRead::new(theirs, codec);
    for id in 3..503 {
        assert_eq!(frames.next().await.unwrap().unwrap(), chat(id));
    }
    assert_eq!(
        frames.next().await.unwrap().unwrap(),
        Frame::Ack { id: 503 }
    );
    assert!(frames.next().await.is_none());
}

#[test]
fn a_spare_is_kept_only_if_the_allocation_behind_it_is_small() {
    let small = BytesMut::with_capacity(1024);
    keep_spare(&SPARE_PENDING, small, SPARE_PENDING_MAX);
    assert!(spare::take(&SPARE_PENDING).is_some_and(|kept| kept.capacity() >= 1024));

    // What is left of a 64 KiB buffer after its frames were split off: a small view of a
    // big allocation.
    let mut big = BytesMut::with_capacity(64 * 1024);
    big.extend_from_slice(&[7; 64 * 1024 - 512]);
    drop(big.split());
    assert!(big.capacity() <= SPARE_PENDING_MAX);
    keep_spare(&SPARE_PENDING, big, SPARE_PENDING_MAX);
    assert!(spare::take(&SPARE_PENDING).is_none());

    let grown = BytesMut::with_capacity(SPARE_PENDING_MAX * 2);
    keep_spare(&SPARE_PENDING, grown, SPARE_PENDING_MAX);
    assert!(spare::take(&SPARE_PENDING).is_none());
}
