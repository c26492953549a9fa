//! Addresses others can use: where a node listening on `0.0.0.0:P` can be reached (each
//! non-loopback interface's address with the port), for the start-up line and `/status`.
//! `0.0.0.0` is where a node listens, never an address to give a peer.

use std::net::{IpAddr, SocketAddr};

/// The addresses peers can reach a node listening on `listen` at: that address if it is a
/// specific one; for `0.0.0.0` (`[::]`), every non-loopback IPv4 (IPv6) interface address
/// with the port, or loopback when the machine has no other.
pub fn reachable(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let interfaces: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|found| found.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    pick(listen, &interfaces)
}

/// [`reachable`] for these interface addresses.
fn pick(listen: SocketAddr, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    let port = listen.port();
    let v6 = listen.is_ipv6();
    let mut found: Vec<SocketAddr> = interfaces
        .iter()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            // Link-local IPv6 needs a scope a peer cannot type; only on `[::]`.
            IpAddr::V6(v6ip) => v6 && (v6ip.segments()[0] & 0xffc0) != 0xfe80,
        })
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    found.dedup();
    if found.is_empty() {
        let loopback: IpAddr = if v6 {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        };
        found.push(SocketAddr::new(loopback, port));
    }
    found
}

/// `A:P` or `A:P and B:P and C:P`: as the start-up line and `/status` show them.
pub fn joined(addrs: &[SocketAddr]) -> String {
    let texts: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    texts.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_specific_address_is_itself() {
        let listen: SocketAddr = "127.0.0.1:9101".parse().unwrap();
        assert_eq!(reachable(listen), vec![listen]);
    }

    #[test]
    fn all_interfaces_means_each_lan_address_never_0_0_0_0() {
        let listen: SocketAddr = "0.0.0.0:9101".parse().unwrap();
        let interfaces = [
            ip("127.0.0.1"),
            ip("192.168.1.20"),
            ip("10.8.0.2"),
            ip("fe80::1"),
            ip("::1"),
        ];
        let shown = pick(listen, &interfaces);
        assert_eq!(
            joined(&shown),
            "192.168.1.20:9101 and 10.8.0.2:9101",
            "{shown:?}"
        );
        // Only loopback on the machine: loopback it is.
        assert_eq!(
            pick(listen, &[ip("127.0.0.1")]),
            vec!["127.0.0.1:9101".parse::<SocketAddr>().unwrap()]
        );
        // And the real machine never shows 0.0.0.0.
        assert!(reachable(listen).iter().all(|a| !a.ip().is_unspecified()));
    }

    #[test]
    fn ipv6_any_lists_global_ipv6_too() {
        let listen: SocketAddr = "[::]:9101".parse().unwrap();
        let shown = pick(
            listen,
            &[ip("192.168.1.20"), ip("2001:db8::5"), ip("fe80::1")],
        );
        assert_eq!(joined(&shown), "192.168.1.20:9101 and [2001:db8::5]:9101");
    }
}
