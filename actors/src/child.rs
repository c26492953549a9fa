//! The names of a node's supervised children: a plain leaf type, so that events, faults and
//! the supervision messages can name an actor without depending on the actors themselves.

use std::fmt;

/// The supervised children of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildName {
    /// The Registry.
    Registry,
    /// The Listener.
    Listener,
    /// The Console (in the binary).
    Console,
    /// The Discovery actor (on the LAN only).
    Discovery,
}

impl fmt::Display for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChildName::Registry => "registry",
            ChildName::Listener => "listener",
            ChildName::Console => "console",
            ChildName::Discovery => "discovery",
        })
    }
}

impl std::str::FromStr for ChildName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "registry" => Ok(ChildName::Registry),
            "listener" => Ok(ChildName::Listener),
            "console" => Ok(ChildName::Console),
            "discovery" => Ok(ChildName::Discovery),
            other => Err(format!(
                "'{other}' is not an actor: registry, listener, console or discovery"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChildName;

    #[test]
    fn names_round_trip_and_a_wrong_one_says_which_exist() {
        for child in [
            ChildName::Registry,
            ChildName::Listener,
            ChildName::Console,
            ChildName::Discovery,
        ] {
            assert_eq!(child.to_string().parse::<ChildName>(), Ok(child));
        }
        assert_eq!(" Registry ".parse::<ChildName>(), Ok(ChildName::Registry));
        let err = "session".parse::<ChildName>().unwrap_err();
        assert!(
            err.contains("registry, listener, console or discovery"),
            "{err}"
        );
    }
}
