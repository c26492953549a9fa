//! Reasons in plain words: the operating system's error texts (`No route to host (os error
//! 113)`) become what a person says (`no route to host`). One helper, [`plain`], for every
//! error line the Console, the binary and `StartError` print, and [`cannot_listen`]. Pure.

/// OS error texts as the OS writes them, and as a line says them.
const WORDS: &[(&str, &str)] = &[
    ("No route to host", "no route to host"),
    ("Connection refused", "connection refused"),
    ("Connection reset by peer", "connection reset by the peer"),
    ("Connection timed out", "connection timed out"),
    ("Network is unreachable", "network unreachable"),
    ("Host is unreachable", "host unreachable"),
    (
        "Cannot assign requested address",
        "cannot assign requested address",
    ),
    ("Address already in use", "address already in use"),
    ("Broken pipe", "connection closed by the peer"),
    ("Permission denied", "permission denied"),
    ("Too many open files", "too many open files"),
];

/// `reason` with each OS error text in plain words and its `(os error N)` dropped.
pub fn plain(reason: &str) -> String {
    let mut text = reason.to_string();
    for (os, words) in WORDS {
        if text.contains(os) {
            text = text.replace(os, words);
        }
    }
    // " (os error 113)": a number means nothing to the reader.
    while let Some(start) = text.find(" (os error ") {
        match text[start..].find(')') {
            Some(len) => text.replace_range(start..start + len + 1, ""),
            None => break,
        }
    }
    text
}

/// Why the node cannot listen on `addr`, in plain words, with what to check.
pub fn cannot_listen(addr: std::net::SocketAddr, err: &std::io::Error) -> String {
    let why = plain(&err.to_string());
    match err.kind() {
        std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr}: {why} (is {} an address of this machine?)",
            addr.ip()
        ),
        // Port 0 asks the system for any free port: "in use" then means none was left.
        std::io::ErrorKind::AddrInUse if addr.port() == 0 => format!(
            "cannot listen on {addr}: no free port is left on {} (every port the system \
             hands out is in use)",
            addr.ip()
        ),
        std::io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: port {} is already in use",
            addr.port()
        ),
        _ => format!("cannot listen on {addr}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_said_in_words() {
        assert_eq!(plain("No route to host (os error 113)"), "no route to host");
        assert_eq!(
            plain("gave up after 2m: Connection refused (os error 111)"),
            "gave up after 2m: connection refused"
        );
        assert_eq!(plain("no ack within 10s"), "no ack within 10s");
        assert_eq!(plain("odd (os error 7"), "odd (os error 7");
    }

    #[test]
    fn a_bind_address_not_on_this_machine_says_so() {
        let addr = "10.9.9.9:9000".parse().unwrap();
        let err = std::io::Error::from_raw_os_error(99);
        assert_eq!(
            cannot_listen(addr, &err),
            "cannot listen on 10.9.9.9:9000: cannot assign requested address \
             (is 10.9.9.9 an address of this machine?)"
        );
    }

    #[test]
    fn a_port_in_use_is_named_and_port_zero_means_none_left() {
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let fixed = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            cannot_listen(fixed, &in_use),
            "cannot listen on 127.0.0.1:9000: port 9000 is already in use"
        );
        let any = "127.0.0.1:0".parse().unwrap();
        let said = cannot_listen(any, &in_use);
        assert!(said.contains("no free port is left on 127.0.0.1"), "{said}");
        assert!(!said.contains("port 0"), "{said}");
    }
}
