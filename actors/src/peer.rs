//! Plain data types every actor speaks about: who a peer is and what we know of it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::SystemTime;

/// Random id a node picks at start-up and announces in its `hello`; it tells two
/// connections to the same process apart from connections to different processes.
pub type NodeId = u64;

/// Id of one chat message, unique among the messages one node sends.
pub type MessageId = u64;

/// Message ids carried between a Session and the Registry (acks read, acks to send): up to
/// two inline. Most batches hold one id, and a `Vec` per message was an allocation (a line
/// out of the cache) per chat in a fan-out (docs/performance.md, fan-out, ninth round).
pub type MessageIds = smallvec::SmallVec<[MessageId; 2]>;

/// Node-local id of one Session (one TCP connection), used to tell an old
/// connection to a peer from its replacement.
pub type SessionId = u64;

/// The address that identifies a peer: the IP it is reached at and the port it *listens* on
/// (not the ephemeral port of an inbound connection).
///
/// Kept as the IP and the port alone, 20 bytes where a `SocketAddr` takes 32 (an IPv6
/// one's flow info and scope id are never kept anyway): it keys maps with an entry per peer
/// in the Registry, the Inbox and the Console (thousands: docs/performance.md). Ordered as
/// the `SocketAddr` it stands for: IPv4 before IPv6, then by IP, then by port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr {
    ip: IpAddr,
    port: u16,
}

/// Printed as `127.0.0.1:9001`, in traces and test failures alike.
impl fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.socket_addr(), f)
    }
}

impl PeerAddr {
    /// Wraps a socket address; an IPv4-mapped IPv6 address becomes plain IPv4 so that the
    /// same peer never shows up under two spellings.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        PeerAddr {
            ip,
            port: addr.port(),
        }
    }

    /// The peer listening on `port` at `ip`.
    pub fn from_ip_port(ip: IpAddr, port: u16) -> Self {
        Self::new(SocketAddr::new(ip, port))
    }

    /// As a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// Its IP.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Its listening port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket_addr().fmt(f)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr::new(addr)
    }
}

/// Stored as its text, `IP:PORT` (history.jsonl, docs/storage.md).
impl serde::Serialize for PeerAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a text could not be read as a peer address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPeerAddr(pub String);

impl fmt::Display for BadPeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for BadPeerAddr {}

impl FromStr for PeerAddr {
    type Err = BadPeerAddr;

    /// Accepts `IP:PORT`, `[IPv6]:PORT` and `localhost:PORT`. No DNS lookups: a chat
    /// address is typed by a person and must mean exactly one socket.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(port) = text.strip_prefix("localhost:") {
            let port = parse_port(port)?;
            return Ok(PeerAddr::from_ip_port(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            ));
        }
        match SocketAddr::from_str(text) {
            Ok(addr) if addr.port() == 0 => Err(BadPeerAddr(format!(
                "'{text}': port 0 is not a port a peer can listen on"
            ))),
            Ok(addr) => Ok(PeerAddr::new(addr)),
            Err(_) => Err(BadPeerAddr(format!(
                "'{text}' is not an address of the form IP:PORT (e.g. 127.0.0.1:9000)"
            ))),
        }
    }
}

/// Parses a port typed by a person: 1..=65535.
pub fn parse_port(text: &str) -> Result<u16, BadPeerAddr> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err(BadPeerAddr(
            "port 0 is not a port a peer can listen on".into(),
        )),
        Ok(port) => Ok(port),
        Err(_) => Err(BadPeerAddr(format!(
            "'{}' is not a port number (1-65535)",
            text.trim()
        ))),
    }
}

/// What the Registry tells others about one peer (menu 2, `Node::peers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Where it listens.
    pub addr: PeerAddr,
    /// The name from its `hello`, or the one another peer told us; `None` if never heard.
    pub name: Option<String>,
    /// Whether a Session serves it now.
    pub connected: bool,
    /// When a frame from it was last handled (connect, chat, peers, ...).
    pub last_seen: Option<SystemTime>,
    /// Messages to it that wait for an ack.
    pub waiting: usize,
    /// The key it proved (or was introduced with); `None` for an address no handshake has
    /// answered yet.
    pub key: Option<crate::key::PeerKey>,
    /// Its other known addresses (`addr` is the one it is reached at).
    pub also: Vec<PeerAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!(
            "127.0.0.1:9000".parse::<PeerAddr>().unwrap().to_string(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            " localhost:9001 ".parse::<PeerAddr>().unwrap().to_string(),
            "127.0.0.1:9001"
        );
        assert_eq!(
            "[::1]:9001".parse::<PeerAddr>().unwrap().to_string(),
            "[::1]:9001"
        );
        assert_eq!(
            "[::ffff:10.0.0.1]:80"
                .parse::<PeerAddr>()
                .unwrap()
                .to_string(),
            "10.0.0.1:80"
        );
    }

    #[test]
    fn an_address_is_small_and_sorts_as_its_socket_address() {
        let size = std::mem::size_of::<PeerAddr>();
        assert!(size <= 20, "a PeerAddr is {size} bytes");
        let spelled = [
            "[::1]:80",
            "10.0.0.2:9000",
            "10.0.0.1:9001",
            "[::1]:7",
            "10.0.0.1:80",
        ];
        let mut addrs: Vec<PeerAddr> = spelled.iter().map(|a| a.parse().unwrap()).collect();
        let mut sockets: Vec<SocketAddr> = spelled.iter().map(|a| a.parse().unwrap()).collect();
        addrs.sort();
        sockets.sort();
        let back: Vec<SocketAddr> = addrs.iter().map(PeerAddr::socket_addr).collect();
        assert_eq!(back, sockets);
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in ["", "bob", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", "x:1"] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad} parsed");
        }
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert_eq!(parse_port(" 9000 ").unwrap(), 9000);
    }
}
