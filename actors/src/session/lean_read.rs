//! A Session's framed reader that holds no read buffer while it waits for its peer: the
//! buffer is made for a read and let go of once everything read has been decoded. Owned by
//! the Session's context (the stream it reads); no actor, no state of its own beyond that.
//! Thousands of sessions waiting would otherwise keep 256 bytes or more each
//! (docs/performance.md, issue 17). The buffer let go of is kept for the next read on the
//! same thread (one per thread, `SPARE`, a [`Spare`]): an actor polls its reader on every wake-up, an ack
//! to send included, and each of those polls would otherwise allocate and free it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead};

use crate::spare::{self, Spare};

thread_local! {
    /// The last read buffer let go of on this thread, emptied: the next read takes it
    /// instead of allocating. One buffer per thread, not per session.
    static SPARE: Spare<BytesMut> = const { Spare::new() };
}

/// A spare buffer kept is at most this many times the room made for a read: one grown for
/// a big frame is let go of.
const SPARE_MAX_TIMES: usize = 4;

/// `FramedRead` that lets go of its empty buffer whenever the socket has nothing more.
pub(crate) struct LeanRead<R, D> {
    inner: FramedRead<R, D>,
    /// Room made for each read (the buffer grows beyond it for a bigger frame).
    capacity: usize,
}

impl<R, D> LeanRead<R, D> {
    /// Reads `reader` through `decoder`, `capacity` bytes of room at a time.
    pub(crate) fn new(reader: R, decoder: D, capacity: usize) -> Self {
        LeanRead {
            inner: FramedRead::with_capacity(reader, decoder, 0),
            capacity,
        }
    }

    /// The bytes of buffer it holds now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.inner.read_buffer().capacity()
    }
}

impl<R: AsyncRead + Unpin, D: Decoder + Unpin> Stream for LeanRead<R, D> {
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let buffer = this.inner.read_buffer_mut();
        if buffer.capacity() == 0 {
            // FramedRead itself would make room for one byte at a time.
            *buffer = spare::take(&SPARE).unwrap_or_else(|| BytesMut::with_capacity(this.capacity));
        }
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        // Pending means it read everything the socket had: a partial frame stays, an empty
        // buffer goes.
        if polled.is_pending() && this.inner.read_buffer().is_empty() {
            let emptied = std::mem::take(this.inner.read_buffer_mut());
            keep_spare(emptied, this.capacity);
        }
        polled
    }
}

/// Keeps an emptied buffer for the next read on this thread, with all its room back, unless
/// something else still holds part of it or it grew past `SPARE_MAX_TIMES` reads' room.
/// (Whatever was kept before, by the thread's other readers, is let go of.)
fn keep_spare(emptied: BytesMut, capacity: usize) {
    spare::keep(&SPARE, emptied, |emptied| {
        emptied.try_reclaim(capacity) && emptied.capacity() <= capacity * SPARE_MAX_TIMES
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::LinesCodec;

    #[actix_rt::test]
    async fn it_holds_no_buffer_between_reads_and_keeps_a_partial_frame() {
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut reader = LeanRead::new(ours, LinesCodec::new(), 256);
        assert_eq!(reader.held(), 0);
        peer.write_all(b"one\ntwo\nthr").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "one");
        // Room for 256 was made, of which "one\n" has been taken.
        assert_eq!(reader.held(), 252);
        assert_eq!(reader.next().await.unwrap().unwrap(), "two");
        // Nothing more to read yet: the partial line is kept, so the buffer too.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(reader.poll_next_unpin(&mut cx).is_pending());
        assert!(reader.held() > 0);
        peer.write_all(b"ee\n").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "three");
        // Everything read is decoded: the buffer goes once the socket has nothing more.
        assert!(reader.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(reader.held(), 0);
        // And comes back for the next read, a line longer than the room made for one read.
        let long = "x".repeat(600);
        peer.write_all(format!("{long}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), long);
        drop(peer);
        assert!(reader.next().await.is_none());
    }

    /// The room of the thread's spare buffer, if one is kept.
    fn spare_room() -> Option<usize> {
        let kept = spare::take(&SPARE)?;
        let room = kept.capacity();
        spare::keep(&SPARE, kept, |_| true);
        Some(room)
    }

    #[actix_rt::test]
    async fn the_buffer_let_go_of_serves_the_next_read_on_the_thread_unless_it_grew() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (mut peer_a, ours_a) = tokio::io::duplex(4096);
        let (mut peer_b, ours_b) = tokio::io::duplex(4096);
        let mut a = LeanRead::new(ours_a, LinesCodec::new(), 256);
        let mut b = LeanRead::new(ours_b, LinesCodec::new(), 256);
        drop(spare::take(&SPARE));
        peer_a.write_all(b"one\n").await.unwrap();
        assert_eq!(a.next().await.unwrap().unwrap(), "one");
        assert!(a.poll_next_unpin(&mut cx).is_pending());
        // A's buffer is not held by A, but kept for the thread, with all its room back.
        assert_eq!(a.held(), 0);
        assert_eq!(spare_room(), Some(256));
        // B's read takes it: one buffer in all, not one each.
        peer_b.write_all(b"two\n").await.unwrap();
        assert_eq!(b.next().await.unwrap().unwrap(), "two");
        assert_eq!(spare_room(), None);
        assert_eq!(b.held(), 252);
        // A buffer grown for a long line is let go of, not kept.
        let long = "x".repeat(2000);
        peer_b
            .write_all(format!("{long}\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(b.next().await.unwrap().unwrap(), long);
        assert!(b.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(b.held(), 0);
        assert_eq!(spare_room(), None);
    }
}
