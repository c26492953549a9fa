//! `peerchat send IP:PORT -`: every line of standard input becomes a chat to one peer, in
//! order. Lines are sent as they come, many per request (`Node::send_chats`), with at most
//! `WINDOW` waiting for their acks, so a large file streams without being held in memory.

use std::collections::HashSet;
use std::io::BufRead;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::{SinkExt, StreamExt};
use peerchat_actors::wire::MAX_TEXT_BYTES;
use peerchat_actors::{EventStream, MessageId, Node, NodeEvent, PeerAddr};

/// Chats sent and not yet acked, at most.
const WINDOW: usize = 1024;

/// Lines given to the node in one request, at most.
const BATCH: usize = 256;

/// What the reading thread hands over.
enum Input {
    /// A non-blank line, with its number (from 1).
    Line(usize, String),
    /// Standard input failed.
    Unreadable(String),
}

/// How `send -` ended: the exit code and the line for stderr.
pub struct Outcome {
    pub code: u8,
    pub report: String,
}

impl Outcome {
    fn failed(report: String) -> Outcome {
        Outcome { code: 1, report }
    }
}

/// Reads `input` line by line into `tx`. Invalid UTF-8 is replaced (and the line still
/// sent), a CR before the LF is dropped, blank lines are skipped.
fn read_lines(mut input: impl BufRead, mut tx: mpsc::Sender<Input>) {
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let item = match input.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {
                number += 1;
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                Input::Line(number, String::from_utf8_lossy(line).into_owned())
            }
            Err(err) => Input::Unreadable(err.to_string()),
        };
        let stop = matches!(item, Input::Unreadable(_));
        // Blocks while the window is full: the file is read only as fast as it is acked.
        if futures::executor::block_on(tx.send(item)).is_err() || stop {
            return;
        }
    }
}

/// Sends standard input's lines to `to`. `ack_limit` bounds how long acks may stay away while
/// chats wait for them (reading more input has no limit: it may come from a slow pipe).
pub async fn send_stdin_lines(
    node: &Node,
    events: &mut EventStream,
    to: PeerAddr,
    ack_limit: Duration,
) -> Outcome {
    let (tx, rx) = mpsc::channel(BATCH);
    let reader = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_lines(std::io::stdin().lock(), tx));
    if let Err(err) = reader {
        return Outcome::failed(format!("error: cannot read standard input: {err}"));
    }
    send_lines(node, events, to, rx.ready_chunks(BATCH), ack_limit).await
}

async fn send_lines(
    node: &Node,
    events: &mut EventStream,
    to: PeerAddr,
    mut input: futures::stream::ReadyChunks<mpsc::Receiver<Input>>,
    ack_limit: Duration,
) -> Outcome {
    let mut waiting: HashSet<MessageId> = HashSet::new();
    let mut delivered = 0usize;
    let mut input_done = false;
    loop {
        if input_done && waiting.is_empty() {
            let plural = if delivered == 1 { "" } else { "s" };
            return Outcome {
                code: 0,
                report: format!("delivered {delivered} message{plural} to {to}"),
            };
        }
        let read_more = !input_done && waiting.len() < WINDOW;
        let next = if waiting.is_empty() {
            Either::Left(input.next().await)
        } else if read_more {
            match select(input.next(), Box::pin(events.next_within(ack_limit))).await {
                Either::Left((lines, _)) => Either::Left(lines),
                Either::Right((event, _)) => Either::Right(event),
            }
        } else {
            Either::Right(events.next_within(ack_limit).await)
        };
        match next {
            Either::Left(None) => input_done = true,
            Either::Left(Some(chunk)) => {
                let texts = match texts_of(chunk, delivered) {
                    Ok(texts) => texts,
                    Err(failed) => return failed,
                };
                match node.send_chats(to, texts).await {
                    Ok(ids) => waiting.extend(ids),
                    Err(err) => {
                        return Outcome::failed(format!(
                            "error: cannot send to {to}: {err}; {}",
                            progress(delivered)
                        ))
                    }
                }
            }
            Either::Right(None) => {
                return Outcome::failed(format!(
                    "error: no acknowledgement from {to} within {}s; {}",
                    ack_limit.as_secs(),
                    progress(delivered)
                ))
            }
            Either::Right(Some(event)) => {
                if let Some(failed) = on_event(event, to, &mut waiting, &mut delivered) {
                    return failed;
                }
            }
        }
    }
}

fn progress(delivered: usize) -> String {
    format!("{delivered} delivered before")
}

/// The texts of the lines read in one go, or why the send stops here.
fn texts_of(chunk: Vec<Input>, delivered: usize) -> Result<Vec<String>, Outcome> {
    let mut texts = Vec::with_capacity(chunk.len());
    for item in chunk {
        match item {
            Input::Line(number, text) if text.len() > MAX_TEXT_BYTES => {
                return Err(Outcome::failed(format!(
                    "error: line {number} is too long ({} bytes, at most {MAX_TEXT_BYTES}); {}",
                    text.len(),
                    progress(delivered)
                )));
            }
            Input::Line(_, text) => texts.push(text),
            Input::Unreadable(why) => {
                return Err(Outcome::failed(format!(
                    "error: cannot read standard input: {why}; {}",
                    progress(delivered)
                )));
            }
        }
    }
    Ok(texts)
}

/// Counts a delivery; a failure, or the first failed attempt (as for one message), ends the
/// send with its reason.
fn on_event(
    event: NodeEvent,
    to: PeerAddr,
    waiting: &mut HashSet<MessageId>,
    delivered: &mut usize,
) -> Option<Outcome> {
    let reason = match event {
        NodeEvent::Delivered { id, .. } => {
            if waiting.remove(&id) {
                *delivered += 1;
            }
            return None;
        }
        NodeEvent::DeliveryFailed { id, reason, .. } if waiting.contains(&id) => reason,
        NodeEvent::DeliveryDelayed {
            to: peer, reason, ..
        } if peer == to => reason,
        _ => return None,
    };
    Some(Outcome::failed(format!(
        "error: not delivered to {to}: {reason}; {}",
        progress(*delivered)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8]) -> Vec<(usize, String)> {
        let (tx, rx) = mpsc::channel(16);
        let input = input.to_vec();
        let reader = std::thread::spawn(move || read_lines(&input[..], tx));
        let got: Vec<Input> = futures::executor::block_on(rx.collect());
        reader.join().unwrap();
        got.into_iter()
            .map(|item| match item {
                Input::Line(n, text) => (n, text),
                Input::Unreadable(why) => panic!("unreadable: {why}"),
            })
            .collect()
    }

    #[test]
    fn lines_are_numbered_stripped_and_blank_ones_skipped() {
        let got = lines_of(b"one\r\n\n  \ntwo\nbad \xff byte\nlast without newline");
        assert_eq!(
            got,
            vec![
                (1, "one".to_string()),
                (4, "two".to_string()),
                (5, "bad \u{fffd} byte".to_string()),
                (6, "last without newline".to_string()),
            ]
        );
    }
}
