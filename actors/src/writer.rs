//! The sending half of a Session's socket: a queue of encoded frames, bounded in bytes, and a
//! task that writes them, several frames per system call when they pile up.
//!
//! Why not `actix::io::FramedWrite`: it buffers without bound and cannot say how full it is;
//! a peer that stops reading must cost us a bounded amount of memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::wire::{encode_frame, Frame, WireError};

/// Most bytes gathered into one write.
const BATCH_BYTES: usize = 64 * 1024;

/// Why a frame was not queued.
#[derive(Debug)]
pub enum WriteRefused {
    /// The queue is full: the peer reads slower than we write.
    QueueFull,
    /// The connection is closing or its writer failed.
    Closed,
    /// The frame cannot be encoded (too large).
    Encode(WireError),
}

/// Handle the Session keeps; dropping it (or `close`) lets the writer finish what is queued
/// and then shut the socket's sending side.
pub struct FrameWriter {
    queue: Option<mpsc::UnboundedSender<Bytes>>,
    /// The writing task, to cut the connection at once (`abort`).
    task: tokio::task::JoinHandle<()>,
    /// Bytes queued and not yet written; shared with the writing task only.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl FrameWriter {
    /// Starts the writing task on the current thread. At most `max_queued` bytes wait; a
    /// write that makes no progress for `stall` ends the task (the peer is gone or stopped
    /// reading).
    pub fn spawn(half: OwnedWriteHalf, max_queued: usize, stall: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = actix_rt::spawn(pump(rx, half, stall, queued.clone()));
        FrameWriter {
            queue: Some(tx),
            task,
            queued,
            max_queued: max_queued.max(1),
        }
    }

    /// Queues a frame, unless the queue already holds `max_queued` bytes.
    pub fn send(&mut self, frame: &Frame) -> Result<(), WriteRefused> {
        let bytes = encode_frame(frame).map_err(WriteRefused::Encode)?;
        if self.queued.load(Ordering::Relaxed) + bytes.len() > self.max_queued {
            return Err(WriteRefused::QueueFull);
        }
        self.send_bytes(bytes)
    }

    /// Queues bytes whatever the queue holds: the last `bye`, or injected garbage.
    pub fn send_bytes(&mut self, bytes: Bytes) -> Result<(), WriteRefused> {
        let queue = self.queue.as_ref().ok_or(WriteRefused::Closed)?;
        let len = bytes.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        queue.send(bytes).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            WriteRefused::Closed
        })
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Drops the socket's sending half at once, queued frames unsent (the Reset fault).
    pub fn abort(&mut self) {
        self.queue = None;
        self.task.abort();
    }

    /// No more frames; what is queued is still written.
    pub fn close(&mut self) {
        self.queue = None;
    }
}

async fn pump(
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    mut socket: OwnedWriteHalf,
    stall: Duration,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = queue.recv().await {
        let written = if queue.is_empty() {
            // One frame alone: write it without copying.
            let len = first.len();
            let result = actix_rt::time::timeout(stall, socket.write_all(&first)).await;
            queued.fetch_sub(len, Ordering::Relaxed);
            result
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < BATCH_BYTES {
                match queue.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            let result = actix_rt::time::timeout(stall, socket.write_all(&batch)).await;
            queued.fetch_sub(batch.len(), Ordering::Relaxed);
            result
        };
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
    let _ = actix_rt::time::timeout(stall, socket.shutdown()).await;
}
