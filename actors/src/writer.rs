//! The sending half of a Session's socket: a bounded queue of encoded frames and a task that
//! writes them, several frames per system call when they pile up.
//!
//! Why not `actix::io::FramedWrite`: it buffers without bound and cannot say how full it is;
//! a peer that stops reading must cost us a bounded amount of memory.

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
    queue: Option<mpsc::Sender<Bytes>>,
}

impl FrameWriter {
    /// Starts the writing task on the current thread. A write that makes no progress for
    /// `stall` ends the task (the peer is gone or stopped reading).
    pub fn spawn(half: OwnedWriteHalf, queue_frames: usize, stall: Duration) -> Self {
        let (tx, rx) = mpsc::channel(queue_frames.max(1));
        actix_rt::spawn(pump(rx, half, stall));
        FrameWriter { queue: Some(tx) }
    }

    pub fn send(&mut self, frame: &Frame) -> Result<(), WriteRefused> {
        let queue = self.queue.as_ref().ok_or(WriteRefused::Closed)?;
        let bytes = encode_frame(frame).map_err(WriteRefused::Encode)?;
        queue.try_send(bytes).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => WriteRefused::QueueFull,
            mpsc::error::TrySendError::Closed(_) => WriteRefused::Closed,
        })
    }

    /// No more frames; what is queued is still written.
    pub fn close(&mut self) {
        self.queue = None;
    }
}

async fn pump(mut queue: mpsc::Receiver<Bytes>, mut socket: OwnedWriteHalf, stall: Duration) {
    let mut batch = BytesMut::new();
    while let Some(first) = queue.recv().await {
        let written = if queue.is_empty() {
            // One frame alone: write it without copying.
            actix_rt::time::timeout(stall, socket.write_all(&first)).await
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < BATCH_BYTES {
                match queue.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            actix_rt::time::timeout(stall, socket.write_all(&batch)).await
        };
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
    let _ = actix_rt::time::timeout(stall, socket.shutdown()).await;
}
