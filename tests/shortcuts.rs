//! The `/` shortcuts beside the numbered menu, through piped stdin (the terminal tests in
//! terminal.rs type them into a real terminal).

mod common;

use common::process::Peerchat;

#[test]
fn chatting_with_shortcuts() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let (mut alice, alice_port) = Peerchat::start_named("alice", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let alice_addr = format!("127.0.0.1:{alice_port}");

    // Nobody wrote yet: /r explains itself.
    alice.type_lines(&["/r hello?"]);
    alice.expect("No one has written to you yet: use /msg PEER text or /talk PEER.");

    bob.type_lines(&[&format!("/msg {alice_addr}   hi alice,  spaces kept")]);
    bob.expect(&format!("Sending to {alice_addr}: hi alice,  spaces kept"));
    bob.expect(&format!(
        "delivered to {alice_addr}: hi alice,  spaces kept"
    ));
    alice.expect(&format!("bob ({bob_addr}): hi alice,  spaces kept"));

    // /r answers the last sender.
    alice.type_lines(&["/r hi bob"]);
    alice.expect(&format!("delivered to {bob_addr}: hi bob"));
    bob.expect(&format!("alice ({alice_addr}): hi bob"));

    alice.type_lines(&["/peers"]);
    alice.expect(&format!("1. {bob_addr}  bob  connected"));
    alice.type_lines(&["/status"]);
    alice.expect(&format!(
        "Status: alice (key {}) at 127.0.0.1:{alice_port} | connected peers: 1 (1 known) | messages waiting: 0",
        alice.key()
    ));
    alice.type_lines(&[&format!("/connect {bob_addr}")]);
    alice.expect(&format!("Already connected to {bob_addr}."));
    alice.type_lines(&["/connect"]);
    alice.expect(&format!("{bob_addr}: already connected"));

    // A shortcut returns to the prompt, not to the whole menu.
    let after = alice.expect("Choose an option: ");
    assert!(!after.contains("***** Menu *****"), "{after}");

    alice.type_lines(&["/quit"]);
    alice.expect("Quitting (bye)...");
    alice.expect("Goodbye.");
    assert!(alice.wait().success());
    bob.expect("disconnected from alice");
}

#[test]
fn wrong_shortcuts_are_explained() {
    let (mut node, _) = Peerchat::start_named("n", &[]);
    node.type_lines(&["/help"]);
    node.expect("/msg PEER text");
    node.expect("/quit");
    node.type_lines(&["/bogus"]);
    node.expect("'/bogus' is not a shortcut: type /help for the list.");
    node.type_lines(&["/msg 127.0.0.1:9"]);
    node.expect("Usage: /msg PEER text");
    node.type_lines(&["/msg nowhere hi"]);
    node.expect("'nowhere' is not a known peer");
    node.type_lines(&["/connect x"]);
    node.expect("'x' is not a known peer");
    node.type_lines(&["/\u{1b}[2J"]);
    node.expect("'/\\u{1b}[2J' is not a shortcut");
    // At the other prompts a slash is text like any other.
    node.type_lines(&["1", "127.0.0.1:9", "/quit"]);
    node.expect("Sending to 127.0.0.1:9: /quit");
    node.type_lines(&["0"]);
    assert!(node.wait().success());
    assert!(
        !node.stdout_so_far().contains('\u{1b}'),
        "colour or a raw escape on a pipe"
    );
}
