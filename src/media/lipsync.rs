//! When, on our clock, a publisher captured a packet: the moment our sender reports pair with
//! its RTP time, so that a receiver lines up audio and video as their publisher did.
//!
//! A receiver syncs a person's microphone and camera by the RTP/NTP pair in each stream's
//! sender reports. Ours used to pair a packet's RTP time with when it reached us (the
//! wallclock str0m's `write_rtp` takes, the lean sender's send instant). Every report then
//! carried the delay of the last packet before it: encoding, pacing and the network, which
//! for video (a frame encoded, then paced out as many packets) is larger than for audio and
//! wanders with the publisher's load. Chromium's sync followed that wandering: a webinar viewer
//! on a loaded CI machine measured audio 108 ms off video.
//!
//! The publisher's own sender reports put all its streams on one NTP clock. One offset per
//! publisher carries that clock onto ours ([`CaptureClock`]), so every stream of one person
//! keeps the relation its publisher stated, whatever each stream's delay. Until a stream's
//! first sender report (about a second), its packets keep their arrival time.

use std::time::{Duration, Instant, SystemTime};

/// Seconds from the NTP era (1900) to the Unix epoch (RFC 868).
const NTP_UNIX_SECS: u64 = 2_208_988_800;
/// A capture instant this much before arrival means the publisher's clock jumped (or the
/// offset drifted that far): the offset is laid again. Encoding and the network take tens
/// to hundreds of milliseconds; a jitter buffer does not wait seconds.
const MAX_LAG: Duration = Duration::from_secs(2);

/// A publisher's sender report on one stream: its NTP time in nanoseconds since 1900 and the
/// RTP time of the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ntp_ns: u64,
    pub rtp: u32,
}

impl SenderReport {
    /// From the wire: the 64-bit NTP timestamp (32.32 fixed point) and the RTP timestamp.
    pub fn from_wire(ntp: u64, rtp: u32) -> SenderReport {
        let frac_ns = ((ntp & 0xFFFF_FFFF) * 1_000_000_000) >> 32;
        let ntp_ns = (ntp >> 32).saturating_mul(1_000_000_000) + frac_ns;
        SenderReport { ntp_ns, rtp }
    }

    /// From what str0m read of one (its NTP time turned into a `SystemTime`).
    pub fn from_str0m(info: &str0m::rtp::rtcp::SenderInfo) -> SenderReport {
        let unix = info
            .ntp_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let ntp_ns = (unix.as_nanos() as u64).saturating_add(NTP_UNIX_SECS * 1_000_000_000);
        SenderReport {
            ntp_ns,
            rtp: info.rtp_time.numer() as u32,
        }
    }

    /// The publisher's NTP time (ns) of RTP time `rtp`, for a clock of `clock_rate` Hz. RTP
    /// times within 2^31 ticks of the report's (6.6 hours of video) are told apart.
    fn ntp_ns_of(&self, rtp: u32, clock_rate: u32) -> i128 {
        let ticks = i128::from(rtp.wrapping_sub(self.rtp) as i32);
        i128::from(self.ntp_ns) + ticks * 1_000_000_000 / i128::from(clock_rate.max(1))
    }
}

/// One publisher's clock carried onto ours: an instant of ours and the publisher's NTP time
/// (ns) taken to be the same moment.
#[derive(Debug, Default)]
pub struct CaptureClock {
    anchor: Option<(Instant, i128)>,
    /// Times the offset was laid (the first, then each packet that would have been captured
    /// after it arrived, and each jump).
    pub anchored: u64,
}

impl CaptureClock {
    /// When the publisher captured a packet of RTP time `rtp` that arrived at `arrival`, on
    /// our clock; `arrival` itself while its stream has had no sender report.
    ///
    /// No packet is captured after it arrives: one that would be (it came faster than the
    /// one the offset was laid on) lays the offset again on itself, so the offset settles
    /// on the fastest packet's delay. The offset is the publisher's, not the stream's, so
    /// a shift moves all its streams alike.
    pub fn capture(
        &mut self,
        report: Option<SenderReport>,
        rtp: u32,
        clock_rate: u32,
        arrival: Instant,
    ) -> Instant {
        let Some(report) = report else {
            return arrival;
        };
        self.place(report.ntp_ns_of(rtp, clock_rate), arrival)
    }

    /// When a packet captured at `ntp` ns on the other clock (the publisher's NTP time, or
    /// another node's `fast::clock` for a relayed packet) and arriving at `arrival` was
    /// captured, on ours: the same offset, laid and moved as [`Self::capture`] says.
    pub fn place(&mut self, ntp: i128, arrival: Instant) -> Instant {
        let (base, base_ntp) = *self.anchor.get_or_insert_with(|| {
            self.anchored += 1;
            (arrival, ntp)
        });
        let at = match u64::try_from(ntp - base_ntp) {
            Ok(after) => base.checked_add(Duration::from_nanos(after)),
            Err(_) => u64::try_from(base_ntp - ntp)
                .ok()
                .and_then(|before| base.checked_sub(Duration::from_nanos(before))),
        };
        match at {
            Some(at) if at <= arrival && arrival - at <= MAX_LAG => at,
            _ => {
                self.anchor = Some((arrival, ntp));
                self.anchored += 1;
                arrival
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A publisher whose clock reads `ntp_s` seconds at our `t0`, reporting audio (48 kHz,
    /// RTP 1000 at that moment) and video (90 kHz, RTP 50,000).
    fn reports(ntp_s: u64) -> (SenderReport, SenderReport) {
        let ntp = ntp_s << 32;
        (
            SenderReport::from_wire(ntp, 1000),
            SenderReport::from_wire(ntp, 50_000),
        )
    }

    #[test]
    fn audio_and_video_keep_their_publishers_relation_whatever_their_delays() {
        let t0 = Instant::now();
        let (audio, video) = reports(3_900_000_000);
        let mut clock = CaptureClock::default();
        // Both captured 1 s after the reports; audio arrives 30 ms later, video 110 ms.
        let a = clock.capture(Some(audio), 1000 + 48_000, 48_000, t0 + 1030 * MS);
        let v = clock.capture(Some(video), 50_000 + 90_000, 90_000, t0 + 1110 * MS);
        assert_eq!(a, t0 + 1030 * MS, "the first packet lays the offset");
        assert_eq!(v, a, "captured together, so one instant");
        // Later frames keep it, and so does audio arriving with more delay.
        let v2 = clock.capture(Some(video), 50_000 + 3 * 90_000, 90_000, t0 + 3150 * MS);
        assert_eq!(v2, t0 + 3030 * MS);
        let a2 = clock.capture(Some(audio), 1000 + 2 * 48_000, 48_000, t0 + 2090 * MS);
        assert_eq!(a2, t0 + 2030 * MS);
        assert_eq!(clock.anchored, 1);
    }

    #[test]
    fn no_packet_is_captured_after_it_arrived() {
        let t0 = Instant::now();
        let (audio, video) = reports(3_900_000_000);
        let mut clock = CaptureClock::default();
        clock.capture(Some(video), 50_000, 90_000, t0 + 80 * MS);
        // Audio of the same moment comes after 20 ms: the offset moves to it, for both.
        let a = clock.capture(Some(audio), 1000, 48_000, t0 + 20 * MS);
        assert_eq!(a, t0 + 20 * MS);
        let v = clock.capture(Some(video), 50_000 + 9000, 90_000, t0 + 180 * MS);
        assert_eq!(v, t0 + 120 * MS);
        assert_eq!(clock.anchored, 2);
    }

    #[test]
    fn without_a_report_a_packet_keeps_its_arrival() {
        let t0 = Instant::now();
        let mut clock = CaptureClock::default();
        assert_eq!(clock.capture(None, 123, 90_000, t0), t0);
        assert_eq!(clock.anchored, 0);
    }

    #[test]
    fn a_jump_of_the_publishers_clock_lays_the_offset_again() {
        let t0 = Instant::now();
        let mut clock = CaptureClock::default();
        let (_, video) = reports(3_900_000_000);
        clock.capture(Some(video), 50_000, 90_000, t0 + 10 * MS);
        // Its clock now says an hour earlier for the same RTP time.
        let (_, jumped) = reports(3_899_996_400);
        let at = clock.capture(Some(jumped), 50_000 + 90_000, 90_000, t0 + 1010 * MS);
        assert_eq!(at, t0 + 1010 * MS);
        assert_eq!(clock.anchored, 2);
        let next = clock.capture(Some(jumped), 50_000 + 2 * 90_000, 90_000, t0 + 2040 * MS);
        assert_eq!(next, t0 + 2010 * MS);
    }

    #[test]
    fn rtp_times_either_side_of_the_report_and_across_the_wrap() {
        let r = SenderReport::from_wire((3_900_000_000u64 << 32) | (1 << 31), u32::MAX - 44_999);
        let at_report = 3_900_000_000i128 * 1_000_000_000 + 500_000_000;
        assert_eq!(r.ntp_ns_of(u32::MAX - 44_999, 90_000), at_report);
        // 90,000 ticks later the RTP time has wrapped past zero: one second later.
        assert_eq!(r.ntp_ns_of(45_000, 90_000), at_report + 1_000_000_000);
        assert_eq!(
            r.ntp_ns_of(u32::MAX - 89_999, 90_000),
            at_report - 500_000_000
        );
    }

    #[test]
    fn str0m_and_the_wire_agree_on_a_report() {
        let ntp = (3_900_000_000u64 << 32) | (1 << 30);
        let wire = SenderReport::from_wire(ntp, 77);
        let unix = Duration::from_nanos(wire.ntp_ns - NTP_UNIX_SECS * 1_000_000_000);
        let info = str0m::rtp::rtcp::SenderInfo {
            ssrc: 1.into(),
            ntp_time: SystemTime::UNIX_EPOCH + unix,
            rtp_time: str0m::media::MediaTime::new(77, str0m::media::Frequency::NINETY_KHZ),
            sender_packet_count: 0,
            sender_octet_count: 0,
        };
        assert_eq!(SenderReport::from_str0m(&info), wire);
    }
}
