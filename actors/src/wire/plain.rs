//! serde's reading of the maps v2 keeps from v1 unchanged (`chat`, `ack`, `get_peers`,
//! `ping`, `pong`, `bye`), in any valid form: keys in any order, extra keys, any integer
//! width. The fast path reads their canonical form; this decides everything else, and words
//! the errors. A map of a `type` it does not know is [`Frame::Unknown`].

use serde::{Deserialize, Serialize};

use super::{Frame, WireError};

/// The maps serde reads. Field order is the protocol's, so that serde's encoding of one is
/// the canonical form (the fast path's tests compare the two).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum PlainFrame {
    Chat {
        id: u64,
        text: String,
        sent_at_ms: u64,
    },
    Ack {
        id: u64,
    },
    GetPeers,
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Bye {
        reason: String,
    },
    #[serde(other)]
    Unknown,
}

impl From<PlainFrame> for Frame {
    fn from(frame: PlainFrame) -> Frame {
        match frame {
            PlainFrame::Chat {
                id,
                text,
                sent_at_ms,
            } => Frame::Chat {
                id,
                text,
                sent_at_ms,
            },
            PlainFrame::Ack { id } => Frame::Ack { id },
            PlainFrame::GetPeers => Frame::GetPeers,
            PlainFrame::Ping { nonce } => Frame::Ping { nonce },
            PlainFrame::Pong { nonce } => Frame::Pong { nonce },
            PlainFrame::Bye { reason } => Frame::Bye { reason },
            PlainFrame::Unknown => Frame::Unknown,
        }
    }
}

/// Reads one map (already known to start with a map header) through serde.
pub(crate) fn decode(payload: &[u8]) -> Result<Frame, WireError> {
    let mut rest = payload;
    let frame: PlainFrame = rmp_serde::from_read(&mut rest).map_err(|e| {
        let why = e.to_string();
        // rmp-serde hands a string that is not UTF-8 on as bytes, which serde then
        // refuses as "a byte array, expected a string": say what it means.
        if why.contains("byte array, expected a string") {
            WireError::Malformed("a string field is not valid UTF-8".into())
        } else {
            WireError::Malformed(why)
        }
    })?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(frame.into())
}
