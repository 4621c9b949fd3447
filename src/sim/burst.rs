//! The server's side of the simulated network: datagrams to it are read in bursts, as the room
//! task reads its inbox, and each burst's fan-outs are released together.

use super::Sim;
use crate::conference::Output;
use crate::media::forward_log::ForwardLog;
use crate::media::{self, Spill};
use crate::server::room_task::MEDIA_BURST;
use std::cmp::Reverse;
use std::collections::VecDeque;
use str0m::net::Protocol;

impl Sim {
    /// Hands every datagram due by now to its receiver; returns whether there was any.
    pub(super) fn deliver_due(&mut self) -> bool {
        let mut any = false;
        // Datagrams to the server read in a row, as the room task reads them: the room holds
        // their fan-outs until the burst ends (`Router::hold_fan_outs`).
        let mut burst = 0;
        while self
            .in_flight
            .peek()
            .is_some_and(|Reverse(f)| f.at <= self.now)
        {
            let Some(Reverse(f)) = self.in_flight.pop() else {
                break;
            };
            any = true;
            if f.to_server {
                if let Some(id) = self.by_addr.get(&f.from).copied() {
                    self.timed(|c, now| {
                        c.room.hold_fan_outs();
                        c.room
                            .handle_receive(id, Protocol::Udp, f.from, f.to, &f.data, now)
                    });
                    burst += 1;
                    if burst == MEDIA_BURST {
                        burst = 0;
                        self.release();
                    }
                }
            } else if let Some(id) = self.by_addr.get(&f.to).copied() {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.core.handle_datagram(f.from, &f.data, self.now);
                }
            }
        }
        if burst > 0 {
            self.release();
        }
        any
    }

    /// Ends a burst as the room task does, the datagrams handed over sent at once.
    fn release(&mut self) {
        let (every, mut spilled, mut times) = (self.spill.every, Vec::new(), 0);
        self.timed(|c, now| {
            let mut take = |q: &mut VecDeque<media::Output>, _: &mut ForwardLog| {
                times += 1;
                spilled.extend(Spill::transmits(q));
            };
            c.room
                .release_fan_outs_spilling(now, &mut Spill::new(every, &mut take));
        });
        self.spill.handed += times;
        for t in spilled {
            self.carry_out(Output::Transmit(t));
        }
    }
}
