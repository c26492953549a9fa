//! What `--trace` costs when it is off: every message between actors goes through
//! `trace::tell`, which checks one atomic flag before `do_send`. This scenario sends the same
//! no-op messages to the same actor both ways, in alternating rounds, and compares.

use std::time::Instant;

use actix::prelude::*;
use peerchat_actors::trace::{self, Role, Traced};

use crate::sys::Res;

struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Traced for Sink {
    const ROLE: Role = Role::Registry;
}

#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Nothing(#[allow(dead_code)] u64);

impl Handler<Nothing> for Sink {
    type Result = ();

    fn handle(&mut self, _: Nothing, _: &mut Context<Self>) {}
}

#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for Sink {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {}
}

/// Nanoseconds per message: (through `trace::tell` with tracing off, through `do_send`),
/// each the median of `rounds` alternating rounds of `messages` messages, sent and handled.
pub fn tell_vs_do_send(messages: u64, rounds: usize) -> Res<(f64, f64)> {
    trace::disable();
    actix_rt::System::new().block_on(async move {
        let sink = Sink.start();
        let mut traced = Vec::with_capacity(rounds);
        let mut plain = Vec::with_capacity(rounds);
        // Alternate which goes first, so that neither always meets a warm (or cold) mailbox.
        for round in 0..rounds {
            for traced_turn in [round % 2 == 0, round % 2 == 1] {
                let started = Instant::now();
                if traced_turn {
                    for i in 0..messages {
                        trace::tell(Role::Session, &sink, Nothing(i));
                    }
                } else {
                    for i in 0..messages {
                        sink.do_send(Nothing(i));
                    }
                }
                sink.send(Flush).await?;
                let nanos = started.elapsed().as_nanos() as f64 / messages as f64;
                if traced_turn {
                    traced.push(nanos);
                } else {
                    plain.push(nanos);
                }
            }
        }
        Ok((
            crate::report::median(&mut traced),
            crate::report::median(&mut plain),
        ))
    })
}
