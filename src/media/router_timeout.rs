//! The router's timeout visit: the due peers' lean work (reports, estimator ticks, pacer
//! releases) and their `Rtc` timeouts, then the room's own periodic work (speaker, allocation,
//! recording, reaping), all on one wake.
//!
//! Apart from `router.rs` because it is one responsibility (what time passing does) and the
//! per-wake path of every lean viewer; the timer index it reads is `timers.rs`.

use super::command::{Event as MediaEvent, Output};
use super::peer::Peer;
use super::router::Router;
use crate::model::{LeaveReason, ParticipantId};
use std::time::{Duration, Instant};

/// How often allocation runs even when nothing asked for it (bitrates drift).
const REALLOCATE_EVERY: Duration = Duration::from_secs(1);

/// How often the room looks for silent or disconnected peers. Their deadlines are
/// seconds long; checking on every wake-up made each one scan every participant twice.
const REAP_EVERY: Duration = Duration::from_millis(250);

/// Most timeouts one `Rtc` gets in a row within one [`Router::handle_timeout`]; bounded so a
/// peer that keeps asking for time now cannot stall the room.
const TIMEOUT_ROUNDS: usize = 8;

impl Router {
    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        self.timers.refresh(&self.peers);
        self.timers.take_due(now, &mut due);
        // What visited lean peers' pacers and padding put out (allocated only if anything).
        let mut sent = vec![];
        for &(id, slot) in &due {
            // Taken out of the index: handled or not, it goes back in at the next refresh.
            self.timers.touch_at(id, slot);
            let Some(peer) = self.peers.at_mut(slot, id) else {
                continue;
            };
            // A deadline that moved later unseen (see `timers.rs`) is not due yet.
            if peer.next_timeout().is_none_or(|t| t > now) {
                continue;
            }
            let Some(p) = peer.webrtc_mut() else {
                continue;
            };
            if let Some(f) = p.fast.as_deref_mut() {
                let report = f.poll_report(now);
                let received = f.poll_receiver_report(now);
                let ticked = f.tick(now);
                f.release(&mut p.rtc, now, &mut sent, &mut self.forward_log);
                if ticked {
                    f.pad(&mut p.rtc, now, &mut sent);
                }
                sent.extend(report);
                sent.extend(received);
                if !sent.is_empty() {
                    self.out.extend(sent.drain(..).map(Output::Transmit));
                }
                let estimate = ticked.then(|| f.estimate()).flatten();
                if let Some(e) = estimate {
                    let (delivered, back) = (f.delivered(), f.recovering());
                    if p.note_lean_estimate(e, delivered, back, now) {
                        self.alloc_moved.push(id);
                    }
                }
            }
            // Its `Rtc` only when its own deadline passed (a lean peer's rarely: ICE, DTLS).
            if p.next_timeout <= now {
                self.drive_rtc(id, slot, now);
            }
        }
        self.forward_log.drained();
        if let Some(speaker) = self.speaker.tick(now) {
            self.emit(MediaEvent::ActiveSpeaker(speaker));
            self.alloc_dirty = true;
        }
        if self.speaker.take_heard_changed() {
            self.slots_dirty = true;
        }
        if self.next_alloc.is_none_or(|t| t <= now) {
            self.alloc_dirty = true;
            self.next_alloc = Some(self.timers.grid(now).first(now, REALLOCATE_EVERY));
        }
        self.due = due;
        self.record_tick(now);
        self.timers.hot = true;
        self.pump(now);
        self.timers.hot = false;
        if self.next_reap.is_none_or(|t| t <= now) {
            self.next_reap = Some(self.timers.grid(now).first(now, REAP_EVERY));
            self.timers.audit(&self.peers);
            self.reap(now);
            // Scanning every peer anyway: the index is re-read with it, so a touch missed
            // somewhere costs a late wake at worst.
            self.timers.touch_all();
        }
    }

    /// Gives a peer's `Rtc` its due timeouts, each drained. str0m's pacer releases one packet
    /// per timeout and then asks for another at once: answering here saves a room wake each.
    /// The peer is reached in `slot`, where the timer index found it (checked by id), on
    /// every round and in its drain: no walk of the id map per timeout.
    fn drive_rtc(&mut self, id: ParticipantId, slot: u32, now: Instant) {
        for _ in 0..TIMEOUT_ROUNDS {
            let Some(p) = self.peers.at_mut(slot, id).and_then(Peer::webrtc_mut) else {
                break;
            };
            if p.next_timeout > now {
                break;
            }
            if p.rtc.handle_input(str0m::Input::Timeout(now)).is_err() {
                self.drop_peer(id, LeaveReason::Error);
                break;
            }
            self.drain_at(id, slot);
        }
    }
}
