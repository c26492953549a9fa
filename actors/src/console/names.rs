//! Naming a peer, the same way everywhere (menu 1, menu 5, `/msg`, `/talk`, `/forget`,
//! `/cancel`): [`resolve`] turns what the user typed into the peer meant, using [`Listed`],
//! the ONE numbered list every listing shows: the known peers, then the nearby ones (found
//! on the LAN, named by what they announced). Pure: a host name to look up comes back as
//! [`Named::Lookup`] for the Console to resolve off its thread.

use std::net::IpAddr;

use crate::key::PeerKey;
use crate::nearby::NearbyPeer;
use crate::peer::{PeerAddr, PeerInfo};
use crate::sanitize::visible;

/// One peer of the numbered list (menu 2, `/peers`, menu 5 all number the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its number in the list, from 1.
    pub number: usize,
    /// Where it listens.
    pub addr: PeerAddr,
    /// Its name, if heard.
    pub name: Option<String>,
    /// Its key's fingerprint (`4kq2-7vxe-…`); `None` for an address no handshake answered.
    pub fingerprint: Option<String>,
    /// Whether a session serves it now.
    pub connected: bool,
    /// For a nearby peer, the key it announced (a session with it must prove it); `None`
    /// for a known peer.
    pub announced: Option<PeerKey>,
}

/// The one numbered list, in the Registry's order.
pub fn numbered(peers: &[PeerInfo]) -> Vec<Listed> {
    peers
        .iter()
        .enumerate()
        .map(|(n, peer)| Listed {
            number: n + 1,
            addr: peer.addr,
            name: peer.name.clone(),
            fingerprint: peer.key.map(|key| key.fingerprint().to_string()),
            connected: peer.connected,
            announced: None,
        })
        .collect()
}

/// The one numbered list with the nearby peers after the known ones, numbered on: each
/// nearby peer that announced a key and is not at a known peer's address (there it is that
/// known peer). Two announcements of one address are both listed: which key answers there
/// shows when it is dialed.
pub fn with_nearby(mut listed: Vec<Listed>, nearby: &[NearbyPeer]) -> Vec<Listed> {
    let known_addrs: Vec<PeerAddr> = listed.iter().map(|peer| peer.addr).collect();
    for peer in nearby {
        let Some(key) = PeerKey::from_hex(&peer.id) else {
            continue;
        };
        let Some(addr) = peer.addrs.first().copied() else {
            continue;
        };
        if peer.addrs.iter().any(|at| known_addrs.contains(at)) {
            continue;
        }
        listed.push(Listed {
            number: listed.len() + 1,
            addr,
            name: Some(peer.name.clone()),
            fingerprint: Some(key.fingerprint().to_string()),
            connected: false,
            announced: Some(key),
        });
    }
    listed
}

/// The peer a name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A peerchat peer at this address.
    Peer(PeerAddr),
    /// A nearby peer: at the address it announced, which must prove the key it announced.
    Announced {
        /// Where it listens.
        addr: PeerAddr,
        /// The key it announced.
        key: PeerKey,
        /// The name it announced.
        name: String,
    },
    /// A classic peer (`classic:IP:PORT`).
    Classic(PeerAddr),
    /// `host:port`: the host is to be looked up (DNS) before it is an address.
    Lookup {
        /// The host as typed.
        host: String,
        /// The port.
        port: u16,
    },
    /// Several peers answer to it: the user must choose.
    Ambiguous(Vec<Listed>),
}

/// Shortest fingerprint prefix taken as a fingerprint (shorter ones are too easily a name).
const FINGERPRINT_PREFIX_MIN: usize = 4;

/// What `text` names: a peer's name (exact, any case; else the start of one name), its
/// number in `listed`, a fingerprint prefix, `IP:PORT`, `classic:IP:PORT` or `HOST:PORT`.
/// Digits alone are a number and, from four digits on, may also be a fingerprint prefix
/// (fingerprints have digits): see [`by_digits`]. An unspecified address (`0.0.0.0:P`) is refused with the addresses that work, made of
/// `local_ips` (this machine's) with its port.
pub fn resolve(text: &str, listed: &[Listed], local_ips: &[IpAddr]) -> Result<Named, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("No peer given.".into());
    }
    if let Some(addr) = text.strip_prefix("classic:") {
        return match addr.parse::<PeerAddr>() {
            Ok(to) => reachable(to, local_ips).map(Named::Classic),
            Err(err) => Err(format!(
                "classic:{} is not classic:IP:PORT ({})",
                visible(addr),
                visible(&err.to_string())
            )),
        };
    }
    if let Ok(to) = text.parse::<PeerAddr>() {
        return reachable(to, local_ips).map(Named::Peer);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return by_digits(text, listed);
    }
    let by_name = by_name(text, listed);
    if !by_name.is_empty() {
        return one_of(by_name);
    }
    let by_key = by_fingerprint(text, listed);
    if !by_key.is_empty() {
        return one_of(by_key);
    }
    if let Some((host, port)) = host_port(text) {
        return Ok(Named::Lookup {
            host: host.to_string(),
            port,
        });
    }
    Err(format!(
        "'{}' is not a known peer: give its name or number (see /peers), IP:PORT or \
         HOST:PORT.",
        visible(text)
    ))
}

/// Which of the addresses a host name resolved to is meant: a known peer's first, then
/// IPv4 (a node on all interfaces listens on IPv4 only), then any.
pub fn pick_looked_up(found: &[PeerAddr], listed: &[Listed]) -> Option<PeerAddr> {
    found
        .iter()
        .find(|addr| listed.iter().any(|peer| peer.addr == **addr))
        .or_else(|| found.iter().find(|addr| addr.ip().is_ipv4()))
        .or_else(|| found.first())
        .copied()
}

/// An answer to "which one?": a number from the candidates' list numbers, or anything
/// [`resolve`] takes as long as it names one of them. Answers [`Named::Peer`] or, for a
/// nearby candidate, [`Named::Announced`].
pub fn choose(text: &str, candidates: &[Listed]) -> Result<Named, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<usize>() {
        if let Some(peer) = candidates.iter().find(|peer| peer.number == number) {
            return Ok(named(peer));
        }
    }
    match resolve(text, candidates, &[]) {
        Ok(Named::Peer(addr)) if candidates.iter().any(|peer| peer.addr == addr) => {
            Ok(Named::Peer(addr))
        }
        Ok(Named::Announced { addr, key, name })
            if candidates.iter().any(|peer| peer.addr == addr) =>
        {
            Ok(Named::Announced { addr, key, name })
        }
        _ => Err(format!(
            "'{}' is not one of {}.",
            visible(text),
            numbers(candidates)
        )),
    }
}

/// "1, 3 or 4": the numbers of `candidates`.
fn numbers(candidates: &[Listed]) -> String {
    let numbers: Vec<String> = candidates.iter().map(|p| p.number.to_string()).collect();
    match numbers.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "the list".into(),
    }
}

/// An address a peer can be reached at; `0.0.0.0:P` and `[::]:P` are where a node listens,
/// not where it is reached.
fn reachable(to: PeerAddr, local_ips: &[IpAddr]) -> Result<PeerAddr, String> {
    if !to.ip().is_unspecified() {
        return Ok(to);
    }
    let port = to.port();
    let mut works: Vec<String> = local_ips
        .iter()
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| PeerAddr::from_ip_port(*ip, port).to_string())
        .collect();
    if works.is_empty() {
        works.push(format!("127.0.0.1:{port}"));
    }
    Err(format!(
        "{to} is where a node listens, not an address to reach it at: on this machine use {} \
         (from another machine, the address its owner's start-up line shows).",
        works.join(" or ")
    ))
}

/// Digits: the peer with that number, unless they also begin the fingerprint of another
/// peer, which makes them ambiguous (the user is asked which, as for a shared name). Digits
/// that are no number in the list but begin a fingerprint name that fingerprint's peer.
fn by_digits(text: &str, listed: &[Listed]) -> Result<Named, String> {
    let by_key = by_fingerprint(text, listed);
    let numbered = text
        .parse::<usize>()
        .ok()
        .and_then(|n| listed.iter().find(|peer| peer.number == n));
    match numbered {
        Some(peer) if by_key.iter().all(|other| other.addr == peer.addr) => Ok(named(peer)),
        Some(peer) => {
            let mut found = by_key;
            if !found.iter().any(|other| other.number == peer.number) {
                found.push(peer.clone());
            }
            found.sort_by_key(|peer| peer.number);
            one_of(found)
        }
        None if !by_key.is_empty() => one_of(by_key),
        None => by_number(text, listed),
    }
}

fn by_number(text: &str, listed: &[Listed]) -> Result<Named, String> {
    match text.parse::<usize>() {
        Ok(n) => match listed.iter().find(|peer| peer.number == n) {
            Some(peer) => Ok(named(peer)),
            None if listed.is_empty() => {
                Err(format!("There is no peer {n}: no peer is known yet."))
            }
            None => Err(format!(
                "There is no peer {n}: the peers are numbered 1 to {} (see /peers).",
                listed.len()
            )),
        },
        Err(_) => Err(format!("'{}' is not a peer number.", visible(text))),
    }
}

/// Peers named `text` (any case); if none, peers whose name starts with it.
fn by_name(text: &str, listed: &[Listed]) -> Vec<Listed> {
    let wanted = text.to_lowercase();
    let name_of = |peer: &Listed| peer.name.as_deref().map(str::to_lowercase);
    let exact: Vec<Listed> = listed
        .iter()
        .filter(|peer| name_of(peer).as_deref() == Some(wanted.as_str()))
        .cloned()
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    listed
        .iter()
        .filter(|peer| name_of(peer).is_some_and(|name| name.starts_with(&wanted)))
        .cloned()
        .collect()
}

/// Peers whose fingerprint starts with `text` (dashes and case aside).
fn by_fingerprint(text: &str, listed: &[Listed]) -> Vec<Listed> {
    let plain = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = plain(text);
    if wanted.len() < FINGERPRINT_PREFIX_MIN || !wanted.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Vec::new();
    }
    listed
        .iter()
        .filter(|peer| {
            peer.fingerprint
                .as_deref()
                .is_some_and(|key| plain(key).starts_with(&wanted))
        })
        .cloned()
        .collect()
}

fn one_of(found: Vec<Listed>) -> Result<Named, String> {
    match found.as_slice() {
        [one] => Ok(named(one)),
        _ => Ok(Named::Ambiguous(found)),
    }
}

/// The peer one entry of the list names: a nearby one with the key it announced.
fn named(peer: &Listed) -> Named {
    match peer.announced {
        Some(key) => Named::Announced {
            addr: peer.addr,
            key,
            name: peer.name.clone().unwrap_or_default(),
        },
        None => Named::Peer(peer.addr),
    }
}

/// `host:port` with a host name (letters, digits, dots, dashes) and a port 1-65535.
fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    host_ok.then_some((host, port))
}

#[cfg(test)]
mod tests;
