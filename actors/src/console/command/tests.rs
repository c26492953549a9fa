use std::time::Duration;

use super::*;
use crate::child::ChildName;
use crate::faults::ActorFault;

fn addr(text: &str) -> PeerAddr {
    text.parse().unwrap()
}

fn at_menu(line: &str) -> Parsed {
    parse(Prompt::Menu, line, &Known::default())
}

fn run(command: Command, back: Back) -> Parsed {
    Parsed::Run(command, back)
}

fn wrong(why: &str, back: Back) -> Parsed {
    Parsed::Wrong(why.into(), back)
}

#[test]
fn menu_numbers_run_commands_and_come_back_to_the_menu() {
    assert_eq!(at_menu(""), run(Command::Menu, Back::Menu));
    assert_eq!(at_menu("  "), run(Command::Menu, Back::Menu));
    assert_eq!(at_menu("1"), Parsed::Ask(Prompt::SendTo));
    assert_eq!(at_menu("2"), run(Command::ListPeers, Back::Menu));
    assert_eq!(at_menu(" 3 "), run(Command::ConnectAll, Back::Menu));
    assert_eq!(at_menu("4"), run(Command::DisconnectAll, Back::Menu));
    assert_eq!(at_menu("5"), run(Command::ChooseDisconnect, Back::Menu));
    assert_eq!(at_menu("0"), run(Command::Quit, Back::Menu));
}

#[test]
fn a_wrong_menu_choice_is_explained_safely() {
    let why = "'6' is not a menu option: type a number from 0 to 5.";
    assert_eq!(at_menu("6"), wrong(why, Back::Menu));
    let why = "'hello everyone' is not a menu option: type a number from 0 to 5.";
    assert_eq!(at_menu("hello everyone"), wrong(why, Back::Menu));
    let why = "'\\u{1b}[2J' is not a menu option: type a number from 0 to 5.";
    assert_eq!(at_menu("\u{1b}[2J"), wrong(why, Back::Menu));
}

#[test]
fn menu_1_asks_recipient_then_port_then_text() {
    let known = Known::default();
    let bob = addr("127.0.0.1:9001");
    assert_eq!(
        parse(Prompt::SendTo, "127.0.0.1:9001", &known),
        run(
            Command::ToPeer {
                name: "127.0.0.1:9001".into(),
                action: PeerAction::AskText
            },
            Back::Menu
        )
    );
    assert_eq!(
        parse(Prompt::SendTo, "localhost:9001", &known),
        run(
            Command::ToPeer {
                name: "localhost:9001".into(),
                action: PeerAction::AskText
            },
            Back::Menu
        )
    );
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        parse(Prompt::SendTo, " 127.0.0.1 ", &known),
        Parsed::Ask(Prompt::SendPort { ip })
    );
    assert_eq!(
        parse(Prompt::SendPort { ip }, "9001", &known),
        Parsed::Ask(Prompt::SendText { to: bob })
    );
    assert_eq!(
        parse(Prompt::SendText { to: bob }, "  hi  bob  \r", &known),
        run(
            Command::Send {
                to: bob,
                text: "  hi  bob  ".into()
            },
            Back::Menu
        )
    );
}

#[test]
fn menu_1_wrong_answers_are_asked_again_and_empty_cancels() {
    let known = Known::default();
    assert_eq!(
        parse(Prompt::SendTo, "999.1.1.1", &known),
        Parsed::Retry(
            "'999.1.1.1' is not an IP address or IP:PORT (e.g. 127.0.0.1:9000)".into(),
            Prompt::SendTo
        )
    );
    assert_eq!(
        parse(Prompt::SendTo, "", &known),
        Parsed::Cancelled("Nothing sent.", Back::Menu)
    );
    // A name goes to the resolver (which re-asks if it names nobody).
    assert_eq!(
        parse(Prompt::SendTo, "bob", &known),
        run(
            Command::ToPeer {
                name: "bob".into(),
                action: PeerAction::AskText
            },
            Back::Menu
        )
    );
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        parse(Prompt::SendTo, "LocalHost", &known),
        Parsed::Ask(Prompt::SendPort { ip })
    );
    assert_eq!(
        parse(Prompt::SendPort { ip }, "x", &known),
        Parsed::Retry(
            "'x' is not a port number (1-65535)".into(),
            Prompt::SendPort { ip }
        )
    );
    assert_eq!(
        parse(Prompt::SendPort { ip }, "0", &known),
        Parsed::Retry(
            "port 0 is not a port a peer can listen on".into(),
            Prompt::SendPort { ip }
        )
    );
    assert_eq!(
        parse(Prompt::SendPort { ip }, "", &known),
        Parsed::Cancelled("Nothing sent.", Back::Menu)
    );
    let to = addr("127.0.0.1:9001");
    assert_eq!(
        parse(Prompt::SendText { to }, "   ", &known),
        Parsed::Cancelled("Empty message, nothing sent.", Back::Menu)
    );
}

#[test]
fn menu_5_names_the_peer_as_anywhere_else_and_empty_cancels() {
    let known = Known::default();
    for answer in ["2", "127.0.0.1:9001", "bob"] {
        assert_eq!(
            parse(Prompt::DisconnectWhich, answer, &known),
            run(
                Command::ToPeer {
                    name: answer.into(),
                    action: PeerAction::Disconnect
                },
                Back::Menu
            )
        );
    }
    assert_eq!(
        parse(Prompt::DisconnectWhich, " ", &known),
        Parsed::Cancelled("Nobody disconnected.", Back::Menu)
    );
}

#[test]
fn a_conversation_sends_plain_lines_and_keeps_shortcuts() {
    let known = Known::default();
    let bob = addr("127.0.0.1:9001");
    let talk = || {
        Prompt::Talk(Talk {
            to: bob,
            classic: false,
            prompt: "bob> ".into(),
        })
    };
    assert_eq!(talk().text(), "bob> ");
    let send = |text: &str| {
        run(
            Command::Send {
                to: bob,
                text: text.into(),
            },
            Back::Prompt,
        )
    };
    assert_eq!(
        parse(talk(), "hello everyone", &known),
        send("hello everyone")
    );
    // Numbers are text in a conversation, not menu choices.
    assert_eq!(parse(talk(), "2", &known), send("2"));
    assert_eq!(
        parse(talk(), "//quit is a word", &known),
        send("/quit is a word")
    );
    assert_eq!(
        parse(talk(), "/peers", &known),
        run(Command::ListPeers, Back::Prompt)
    );
    assert_eq!(
        parse(talk(), "/menu", &known),
        run(Command::Leave, Back::Prompt)
    );
    assert_eq!(
        parse(talk(), "/leave", &known),
        run(Command::Leave, Back::Prompt)
    );
    assert_eq!(
        parse(talk(), "", &known),
        Parsed::Cancelled(TALK_HINT, Back::Prompt)
    );
}

#[test]
fn peers_are_named_the_same_way_in_every_shortcut() {
    let to_peer = |name: &str, action: PeerAction| {
        run(
            Command::ToPeer {
                name: name.into(),
                action,
            },
            Back::Prompt,
        )
    };
    assert_eq!(
        at_menu("/msg bob hi there"),
        to_peer("bob", PeerAction::Send("hi there".into()))
    );
    assert_eq!(
        at_menu("/msg 2 hi"),
        to_peer("2", PeerAction::Send("hi".into()))
    );
    assert_eq!(
        at_menu("/msg LOCALHOST:9001 hi"),
        to_peer("LOCALHOST:9001", PeerAction::Send("hi".into()))
    );
    // An unspecified address goes to the resolver, which refuses it with a hint.
    assert_eq!(
        at_menu("/msg 0.0.0.0:9001 hi"),
        to_peer("0.0.0.0:9001", PeerAction::Send("hi".into()))
    );
    assert_eq!(at_menu("/talk bob"), to_peer("bob", PeerAction::Talk));
    assert_eq!(at_menu("/t 1"), to_peer("1", PeerAction::Talk));
    assert_eq!(
        at_menu("/connect carol"),
        to_peer("carol", PeerAction::Connect)
    );
    assert_eq!(at_menu("/forget 3"), to_peer("3", PeerAction::Forget));
    assert_eq!(
        at_menu("/cancel 127.0.0.1:9"),
        to_peer("127.0.0.1:9", PeerAction::Cancel)
    );
    assert_eq!(
        at_menu("/all hi  all"),
        run(Command::All("hi  all".into()), Back::Prompt)
    );
    assert_eq!(at_menu("?"), run(Command::Menu, Back::Menu));
    for bare in ["/talk", "/all", "/forget", "/cancel"] {
        assert!(
            matches!(at_menu(bare), Parsed::Wrong(_, Back::Prompt)),
            "{bare}"
        );
    }
}

#[test]
fn choosing_among_several_peers_takes_their_list_numbers() {
    let known = Known::default();
    let candidates = vec![
        Listed {
            number: 2,
            addr: addr("127.0.0.1:9002"),
            name: Some("carol".into()),
            fingerprint: None,
            connected: true,
            announced: None,
        },
        Listed {
            number: 5,
            addr: addr("127.0.0.1:9005"),
            name: Some("carol".into()),
            fingerprint: None,
            connected: false,
            announced: None,
        },
    ];
    let which = || Prompt::WhichPeer {
        candidates: candidates.clone(),
        action: PeerAction::Talk,
    };
    assert_eq!(
        parse(which(), "5", &known),
        run(
            Command::AtPeer {
                to: addr("127.0.0.1:9005"),
                announced: None,
                action: PeerAction::Talk
            },
            Back::Prompt
        )
    );
    assert_eq!(
        parse(which(), "1", &known),
        Parsed::Retry("'1' is not one of 2 or 5.".into(), which())
    );
    assert_eq!(
        parse(which(), "", &known),
        Parsed::Cancelled("Cancelled.", Back::Prompt)
    );
}

#[test]
fn every_shortcut_runs_its_command_and_comes_back_to_the_prompt() {
    let bob = addr("127.0.0.1:9001");
    let send = |text: &str| Command::Send {
        to: bob,
        text: text.into(),
    };
    let cases = [
        ("/msg 127.0.0.1:9001  hi  there", send("hi  there")),
        ("/m 127.0.0.1:9001 hi", send("hi")),
        ("/msg 127.0.0.1:9001 /quit", send("/quit")),
        ("/peers", Command::ListPeers),
        ("/connect", Command::ConnectAll),
        ("/connect 127.0.0.1:9001", Command::Connect(bob)),
        ("/history", Command::History(20)),
        ("/history 5", Command::History(5)),
        ("/status", Command::Status),
        ("/whois bob", Command::Whois("bob".into())),
        ("/trust  2 ", Command::Trust("2".into())),
        ("/help", Command::Help),
        ("/?", Command::Help),
        ("/h", Command::Help),
        ("/quit", Command::Quit),
        ("/q", Command::Quit),
        ("/exit", Command::Quit),
    ];
    for (line, command) in cases {
        assert_eq!(at_menu(line), run(command, Back::Prompt), "{line}");
    }
}

#[test]
fn reply_goes_to_whoever_wrote_last() {
    let alice = addr("127.0.0.1:9000");
    let known = Known {
        last_sender: Some(alice),
        faults: false,
    };
    let reply = Command::Send {
        to: alice,
        text: "hi  alice".into(),
    };
    assert_eq!(
        parse(Prompt::Menu, "/r hi  alice", &known),
        run(reply.clone(), Back::Prompt)
    );
    assert_eq!(
        parse(Prompt::Menu, "/reply hi  alice", &known),
        run(reply, Back::Prompt)
    );
    assert_eq!(
        parse(Prompt::Menu, "/r", &known),
        wrong("Usage: /r text (replies to 127.0.0.1:9000)", Back::Prompt)
    );
    assert_eq!(
        at_menu("/r hi"),
        wrong(
            "No one has written to you yet: use /msg PEER text or /talk PEER.",
            Back::Prompt
        )
    );
}

#[test]
fn wrong_shortcuts_are_explained() {
    let cases = [
        (
            "/bogus",
            "'/bogus' is not a shortcut: type /help for the list.",
        ),
        (
            "/\u{1b}[2J",
            "'/\\u{1b}[2J' is not a shortcut: type /help for the list.",
        ),
        ("/msg", MSG_USAGE),
        ("/msg 127.0.0.1:9001", MSG_USAGE),
        ("/history x", "Usage: /history [N] ('x' is not a number)"),
        ("/history -1", "Usage: /history [N] ('-1' is not a number)"),
    ];
    for (line, why) in cases {
        assert_eq!(at_menu(line), wrong(why, Back::Prompt), "{line}");
    }
}

#[test]
fn faults_need_the_flag_and_a_known_fault() {
    assert_eq!(
        at_menu("!crash registry"),
        wrong(
            "Fault commands (!...) need peerchat to be started with --faults.",
            Back::Prompt
        )
    );
    let known = Known {
        last_sender: None,
        faults: true,
    };
    assert_eq!(
        parse(Prompt::Menu, "!crash registry", &known),
        run(
            Command::Fault(Fault::Actor(ChildName::Registry, ActorFault::Crash)),
            Back::Prompt
        )
    );
    assert_eq!(
        parse(Prompt::Menu, "!stall listener 2s", &known),
        run(
            Command::Fault(Fault::Actor(
                ChildName::Listener,
                ActorFault::Stall(Duration::from_secs(2))
            )),
            Back::Prompt
        )
    );
    assert!(matches!(
        parse(Prompt::Menu, "!bogus", &known),
        Parsed::Wrong(_, Back::Prompt)
    ));
}

#[test]
fn shortcuts_split_into_command_and_text_as_typed() {
    assert_eq!(
        split_word("/msg 1.2.3.4:5  hi  there "),
        ("/msg", "1.2.3.4:5  hi  there ")
    );
    assert_eq!(
        split_word("1.2.3.4:5  hi  there "),
        ("1.2.3.4:5", "hi  there ")
    );
    assert_eq!(split_word("/peers"), ("/peers", ""));
    assert_eq!(split_word(""), ("", ""));
}
