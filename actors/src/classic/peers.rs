//! The classic peers a node knows: those that wrote to us in the classic protocol and those
//! the user named `classic:IP:PORT`. A plain struct owned by the Registry, kept apart from
//! the peer table so that a classic peer (no key, nothing encrypted) is never dialed with
//! peerchat's protocol nor passed on in `peers` frames.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::peer::PeerAddr;

/// What the node knows of one classic peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    team: Option<String>,
    last_seen: Option<SystemTime>,
    /// It said `DISCONNECTED` or `exit`, and has not written since.
    gone: bool,
    /// It asked `CONNECT_REQUEST` and we answered `CONNECTED`.
    connected: bool,
}

/// One classic peer, for menu 2 and `/peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicPeerInfo {
    /// Its address (claimed IP, or the connection's; its listening port).
    pub addr: PeerAddr,
    /// Its team name, once it gave one.
    pub team: Option<String>,
    /// When it last wrote to us.
    pub last_seen: Option<SystemTime>,
    /// It said it left.
    pub gone: bool,
    /// Its `CONNECT_REQUEST` was accepted (and it has not left since).
    pub connected: bool,
    /// Our messages to it not yet acked.
    pub waiting: usize,
}

/// Every classic peer (see the module docs).
#[derive(Debug, Default)]
pub struct ClassicPeers {
    peers: BTreeMap<PeerAddr, Record>,
}

impl ClassicPeers {
    /// No classic peer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `addr` is known to speak the classic protocol.
    pub fn is_classic(&self, addr: &PeerAddr) -> bool {
        self.peers.contains_key(addr)
    }

    /// The user named `addr` as classic.
    pub fn mark(&mut self, addr: PeerAddr) {
        self.peers.entry(addr).or_default();
    }

    /// `addr` wrote to us (as `team`, if it said).
    pub fn heard(&mut self, addr: PeerAddr, team: Option<&str>) {
        let record = self.peers.entry(addr).or_default();
        record.last_seen = Some(SystemTime::now());
        record.gone = false;
        if let Some(team) = team {
            record.team = Some(team.to_string());
        }
    }

    /// `addr` asked to connect; `accepted` is our answer.
    pub fn asked_to_connect(&mut self, addr: PeerAddr, accepted: bool) {
        self.heard(addr, None);
        if let Some(record) = self.peers.get_mut(&addr) {
            record.connected = accepted;
        }
    }

    /// `addr` said it leaves; answers its team name, if known.
    pub fn left(&mut self, addr: PeerAddr) -> Option<String> {
        self.heard(addr, None);
        let record = self.peers.get_mut(&addr)?;
        record.gone = true;
        record.connected = false;
        record.team.clone()
    }

    /// Its team name, if it gave one.
    pub fn team_of(&self, addr: &PeerAddr) -> Option<String> {
        self.peers.get(addr).and_then(|r| r.team.clone())
    }

    /// Every classic peer, in address order; `waiting` counts our unacked messages to each.
    pub fn list(&self, waiting: impl Fn(&PeerAddr) -> usize) -> Vec<ClassicPeerInfo> {
        let info = |(addr, record): (&PeerAddr, &Record)| ClassicPeerInfo {
            addr: *addr,
            team: record.team.clone(),
            last_seen: record.last_seen,
            gone: record.gone,
            connected: record.connected,
            waiting: waiting(addr),
        };
        self.peers.iter().map(info).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> PeerAddr {
        format!("10.0.0.1:{port}").parse().unwrap()
    }

    #[test]
    fn a_peer_is_classic_once_named_or_heard() {
        let mut peers = ClassicPeers::new();
        assert!(!peers.is_classic(&addr(1)));
        peers.mark(addr(1));
        peers.heard(addr(2), Some("Team2"));
        assert!(peers.is_classic(&addr(1)));
        assert!(peers.is_classic(&addr(2)));
        assert_eq!(peers.team_of(&addr(1)), None);
        assert_eq!(peers.team_of(&addr(2)).as_deref(), Some("Team2"));
        let list = peers.list(|a| if *a == addr(1) { 3 } else { 0 });
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].waiting, 3);
        assert!(list[0].last_seen.is_none());
        assert!(list[1].last_seen.is_some());
    }

    #[test]
    fn leaving_is_remembered_until_it_writes_again() {
        let mut peers = ClassicPeers::new();
        peers.asked_to_connect(addr(1), true);
        assert!(peers.list(|_| 0)[0].connected);
        peers.heard(addr(1), Some("T"));
        assert_eq!(peers.left(addr(1)).as_deref(), Some("T"));
        let info = &peers.list(|_| 0)[0];
        assert!(info.gone && !info.connected);
        // Still classic: we never dial it with peerchat's protocol.
        assert!(peers.is_classic(&addr(1)));
        peers.heard(addr(1), None);
        assert!(!peers.list(|_| 0)[0].gone);
        // Rejected: known, not connected.
        peers.asked_to_connect(addr(2), false);
        assert!(!peers.list(|_| 0)[1].connected);
    }
}
