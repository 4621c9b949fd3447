//! Prometheus counters for `/metrics` (prometheus-client's registry and text encoding).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::media::{DropReason, RoomCounters};

/// Counters labelled `reason`.
pub type ByReason = Family<Vec<(&'static str, &'static str)>, Counter>;

/// Adds `n` to `family`'s counter for `reason`; a reason never counted is not shown at all.
fn add_by_reason(family: &ByReason, reason: &'static str, n: u64) {
    if n > 0 {
        family.get_or_create(&vec![("reason", reason)]).inc_by(n);
    }
}

/// Every counter the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Datagrams received on the media port.
    pub udp_in: Counter,
    /// Datagrams that matched no participant.
    pub udp_unroutable: Counter,
    /// Datagrams dropped because a room was overloaded.
    pub udp_dropped_full: Counter,
    /// Datagrams sent.
    pub udp_out: Counter,
    /// System calls that sent datagrams: `udp_out` over this is the batching achieved.
    pub udp_send_calls: Counter,
    /// Of `udp_out`, datagrams sent as a later segment of a GSO message (one kernel send for
    /// several datagrams to one peer).
    pub udp_coalesced: Counter,
    /// `recvmmsg` calls on the media port that returned datagrams: `udp_in` over this is
    /// the receive batching, and each such call is about one wake-up of the receive task.
    pub udp_recv_calls: Counter,
    /// Of `udp_in`, datagrams read from the port's RTCP side (`transport::rtcp_split`), i.e.
    /// received without a wake-up of their own.
    pub udp_in_rtcp_side: Counter,
    /// Passes of the room tasks: an input (or a burst of media) or a timer handled, then one
    /// flush. With `udp_recv_calls`, the per-wake work behind the forwarded packets (issue 16:
    /// at 1 -> 100 light, ~350 passes per second against ~11,000 copies).
    pub room_passes: Counter,
    /// Full send batches a room sent while a burst's fan-outs were still being sealed (a
    /// keyframe to a large audience: `media::Spill`).
    pub room_spills: Counter,
    /// Send batches rooms handed to the send thread (`transport::send_thread`).
    pub udp_send_handoffs: Counter,
    /// Datagrams dropped because the send thread's queue stayed full.
    pub udp_send_dropped: Counter,
    /// RTP packets forwarded to subscribers.
    pub rtp_forwarded: Counter,
    /// SRTCP compounds authenticated (opened by the lean path, or let through to str0m by the
    /// replay guard), and those refused. Named `lean_` from when only the lean path checked
    /// them; kept so that dashboards and the browser tests still find them.
    pub lean_srtcp_opened: Counter,
    pub lean_srtcp_refused: Counter,
    /// Of those refused, the replays (an SRTCP index seen, or older than the window).
    pub lean_srtcp_replayed: Counter,
    /// Transport-wide feedback packets the lean path read from subscribers and gave to their
    /// bandwidth estimators (one per viewer about every 50 ms in browsers and the load tester).
    pub lean_twcc_feedback: Counter,
    /// Subscribers whose layers were decided: the whole room once a second and on room-wide
    /// changes, one subscriber when its own estimate moved.
    pub room_allocations: Counter,
    /// Retransmissions (RTX) the lean path sent answering subscribers' NACKs.
    pub lean_rtx_sent: Counter,
    /// Packets lean subscribers NACKed that were not retransmitted, by `reason`: `gone` (not
    /// held any more), `repeated` (already resent within a round trip), `no_rtx`.
    pub lean_nack_unanswered: ByReason,
    /// Datagrams a room took for one of its participants and could not use: neither STUN,
    /// DTLS, RTP nor RTCP, or refused by str0m (malformed STUN, a bad DTLS record, …).
    pub room_bad_datagrams: Counter,
    /// Packets not forwarded to a subscriber, by `reason` (a `DropReason` name).
    pub rtp_dropped: ByReason,
    /// Signalling messages refused (bad JSON, too large, rate limited, …).
    pub signalling_errors: Counter,
    /// Participants connected now.
    pub participants: Gauge,
    /// Rooms open now.
    pub rooms: Gauge,
    /// ICE-TCP connections carrying a participant now.
    pub tcp_connections: Gauge,
    /// ICE-TCP connections closed without carrying anyone (over the limit, no valid STUN).
    pub tcp_refused: Counter,
    /// ICE-TCP frames dropped because the room's queue was full.
    pub tcp_dropped_full: Counter,
    /// ICE-TCP connections refused because every slot was taken.
    pub tcp_refused_full: Counter,
    /// ICE-TCP connections refused because their source address held its share.
    pub tcp_refused_address: Counter,
    /// ICE-TCP connections refused because their participant held its share.
    pub tcp_refused_participant: Counter,
    /// ICE-TCP connections closed for want of STUN (no ICE consent).
    pub tcp_closed_idle: Counter,
    /// ICE-TCP connections closed because their participant left.
    pub tcp_closed_left: Counter,
    /// Joins refused by a server-wide cap (participants or rooms).
    pub joins_refused_server: Counter,
    /// HTTP(S) connections refused (every slot and the reserve taken, or the address's share).
    pub http_refused: Counter,
    /// HTTP(S) connections served from the health reserve (caps reached).
    pub http_reserve: Counter,
    /// HTTP(S)/WebSocket connections open now.
    pub http_connections: Gauge,
    /// Sessions dropped because their outbound queue was over its byte bound (slow readers).
    pub ws_queue_overflows: Counter,
    /// Sessions closed because a write to their WebSocket did not finish in time (non-readers).
    pub ws_write_timeouts: Counter,
    /// Recordings being written now.
    pub recordings: Gauge,
    /// Packets a recording's queue refused (its writer fell behind; see `record::writer`).
    pub recording_dropped: Counter,
    /// Arrival → send of each forwarded copy (`confab_forward_delay_seconds`).
    pub forward_delay: super::forward_delay::ForwardDelay,
    /// The same for the copies the lean pacer held (`confab_forward_delay_paced_seconds`).
    pub forward_delay_paced: super::forward_delay::ForwardDelay,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("confab");
        let m = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        // A counter per `reason` label.
        let by_reason = |r: &mut Registry, name: &str, help: &str| {
            let f = ByReason::default();
            r.register(name, help, f.clone());
            f
        };
        let udp_in = m(&mut registry, "udp_in_datagrams", "Datagrams received");
        let udp_unroutable = m(
            &mut registry,
            "udp_unroutable_datagrams",
            "Datagrams matching no participant",
        );
        let udp_dropped_full = m(
            &mut registry,
            "udp_dropped_datagrams",
            "Datagrams dropped because a room queue was full",
        );
        let udp_out = m(&mut registry, "udp_out_datagrams", "Datagrams sent");
        let udp_send_calls = m(
            &mut registry,
            "udp_send_calls",
            "System calls that sent datagrams (sendmmsg or sendto)",
        );
        let udp_coalesced = m(
            &mut registry,
            "udp_coalesced_datagrams",
            "Datagrams sent as a later segment of a GSO message (several to one peer in one send)",
        );
        let udp_recv_calls = m(
            &mut registry,
            "udp_recv_calls",
            "System calls on the media port that received datagrams (recvmmsg)",
        );
        let udp_in_rtcp_side = m(
            &mut registry,
            "udp_in_rtcp_side_datagrams",
            "Datagrams read from the media port's RTCP socket, with media or after a quiet spell",
        );
        let room_passes = m(
            &mut registry,
            "room_passes",
            "Room task passes: an input (or a burst of media) or a timer handled, then one flush",
        );
        let room_spills = m(
            &mut registry,
            "room_spills",
            "Full send batches sent before a burst's fan-outs were all sealed",
        );
        let udp_send_handoffs = m(
            &mut registry,
            "udp_send_handoffs",
            "Send batches handed to the send thread",
        );
        let udp_send_dropped = m(
            &mut registry,
            "udp_send_dropped_datagrams",
            "Datagrams dropped because the send thread's queue stayed full",
        );
        let rtp_forwarded = m(
            &mut registry,
            "rtp_forwarded_packets",
            "RTP packets forwarded to subscribers",
        );
        let lean_srtcp_opened = m(
            &mut registry,
            "lean_srtcp_opened",
            "SRTCP compounds authenticated by confab: opened by the lean path, or checked for \
             replays before str0m (str0m send path, peers not yet keyed)",
        );
        let lean_srtcp_refused = m(
            &mut registry,
            "lean_srtcp_refused",
            "SRTCP compounds refused before str0m: unauthenticated, malformed or replayed, on \
             any send path",
        );
        let lean_srtcp_replayed = m(
            &mut registry,
            "lean_srtcp_replayed",
            "Of the refused SRTCP compounds, the replays (index seen or older than the \
             window), on any send path",
        );
        let room_allocations = m(
            &mut registry,
            "room_allocations",
            "Subscribers' layer allocations decided (each re-decision counts one per subscriber \
             it covers)",
        );
        let lean_twcc_feedback = m(
            &mut registry,
            "lean_twcc_feedback",
            "SRTCP compounds from lean-path subscribers whose transport-cc feedback reached \
             their bandwidth estimator",
        );
        let lean_rtx_sent = m(
            &mut registry,
            "lean_rtx_sent",
            "Retransmissions (RTX) the lean send path sent answering subscribers' NACKs",
        );
        let lean_nack_unanswered = by_reason(
            &mut registry,
            "lean_nack_unanswered",
            "Packets lean-path subscribers NACKed that were not retransmitted, by reason: gone \
             (no longer held), repeated (resent within a round trip), no_rtx",
        );
        let room_bad_datagrams = m(
            &mut registry,
            "room_bad_datagrams",
            "Datagrams routed to a participant that its room could not use",
        );
        let rtp_dropped = by_reason(
            &mut registry,
            "rtp_dropped_packets",
            "Packets not forwarded to a subscriber, by reason",
        );
        let signalling_errors = m(
            &mut registry,
            "signalling_errors",
            "Signalling messages refused",
        );
        let participants = Gauge::default();
        registry.register(
            "participants",
            "Participants connected",
            participants.clone(),
        );
        let rooms = Gauge::default();
        registry.register("rooms", "Rooms open", rooms.clone());
        let tcp_connections = Gauge::default();
        registry.register(
            "ice_tcp_connections",
            "ICE-TCP connections carrying a participant",
            tcp_connections.clone(),
        );
        let tcp_refused = m(
            &mut registry,
            "ice_tcp_refused_connections",
            "ICE-TCP connections closed without a valid first STUN request",
        );
        let tcp_dropped_full = m(
            &mut registry,
            "ice_tcp_dropped_frames",
            "ICE-TCP frames dropped because a room queue was full",
        );
        let tcp_refused_full = m(
            &mut registry,
            "ice_tcp_refused_full_connections",
            "ICE-TCP connections refused: every slot taken",
        );
        let tcp_refused_address = m(
            &mut registry,
            "ice_tcp_refused_address_connections",
            "ICE-TCP connections refused: per-source-address cap",
        );
        let tcp_refused_participant = m(
            &mut registry,
            "ice_tcp_refused_participant_connections",
            "ICE-TCP connections refused: per-participant cap",
        );
        let tcp_closed_idle = m(
            &mut registry,
            "ice_tcp_closed_idle_connections",
            "ICE-TCP connections closed without STUN for the idle timeout",
        );
        let ws_queue_overflows = m(
            &mut registry,
            "ws_queue_overflows",
            "Sessions dropped because their outbound queue exceeded its byte bound",
        );
        let ws_write_timeouts = m(
            &mut registry,
            "ws_write_timeouts",
            "Sessions closed because a WebSocket write did not finish in time",
        );
        let tcp_closed_left = m(
            &mut registry,
            "ice_tcp_closed_left_connections",
            "ICE-TCP connections closed because their participant left",
        );
        let joins_refused_server = m(
            &mut registry,
            "joins_refused_server",
            "Joins refused by a server-wide cap (participants or rooms)",
        );
        let http_refused = m(
            &mut registry,
            "http_refused_connections",
            "HTTP connections closed on accept: caps and reserve full",
        );
        let http_reserve = m(
            &mut registry,
            "http_reserve_connections",
            "HTTP connections over the caps served only /healthz and /metrics",
        );
        let http_connections = Gauge::default();
        registry.register(
            "http_connections",
            "HTTP and WebSocket connections open",
            http_connections.clone(),
        );
        let recordings = Gauge::default();
        registry.register("recordings", "Recordings being written", recordings.clone());
        let recording_dropped = m(
            &mut registry,
            "recording_dropped_inputs",
            "Packets a recording's queue refused because its writer fell behind",
        );
        let forward_delay = super::forward_delay::ForwardDelay::default();
        registry.register(
            "forward_delay_seconds",
            "Time from a media datagram's arrival to each forwarded copy's hand-off to the kernel",
            forward_delay.clone(),
        );
        let forward_delay_paced = super::forward_delay::ForwardDelay::default();
        registry.register(
            "forward_delay_paced_seconds",
            "The forward delay of the copies the lean pacer held (part of forward_delay_seconds)",
            forward_delay_paced.clone(),
        );
        Metrics {
            forward_delay,
            forward_delay_paced,
            recordings,
            recording_dropped,
            registry,
            joins_refused_server,
            http_refused,
            http_reserve,
            http_connections,
            tcp_refused_full,
            tcp_refused_address,
            tcp_refused_participant,
            tcp_closed_idle,
            tcp_closed_left,
            ws_queue_overflows,
            ws_write_timeouts,
            udp_in,
            udp_unroutable,
            udp_dropped_full,
            udp_out,
            udp_send_calls,
            udp_coalesced,
            udp_recv_calls,
            udp_in_rtcp_side,
            room_passes,
            room_spills,
            udp_send_handoffs,
            udp_send_dropped,
            rtp_forwarded,
            lean_srtcp_opened,
            lean_srtcp_refused,
            lean_srtcp_replayed,
            lean_twcc_feedback,
            lean_rtx_sent,
            lean_nack_unanswered,
            room_allocations,
            room_bad_datagrams,
            rtp_dropped,
            signalling_errors,
            participants,
            rooms,
            tcp_connections,
            tcp_refused,
            tcp_dropped_full,
        }
    }
}

impl Metrics {
    /// Adds what a room counted since `seen` (its counters when last added), and moves `seen`
    /// on to `now`.
    pub fn add_room(&self, now: &RoomCounters, seen: &mut RoomCounters) {
        let (c, s) = (now, &*seen);
        self.rtp_forwarded.inc_by(c.rtp_forwarded - s.rtp_forwarded);
        for &reason in DropReason::ALL {
            self.dropped(reason.name(), c.dropped(reason) - s.dropped(reason));
        }
        self.lean_srtcp_opened
            .inc_by(c.srtcp_opened - s.srtcp_opened);
        self.lean_srtcp_refused
            .inc_by(c.srtcp_refused - s.srtcp_refused);
        self.lean_srtcp_replayed
            .inc_by(c.srtcp_replayed - s.srtcp_replayed);
        self.lean_twcc_feedback
            .inc_by(c.twcc_feedbacks - s.twcc_feedbacks);
        self.lean_rtx_sent.inc_by(c.rtx_sent - s.rtx_sent);
        let (u, v) = (c.nacks_unanswered, s.nacks_unanswered);
        for (reason, n) in [
            ("gone", u.gone - v.gone),
            ("repeated", u.repeated - v.repeated),
            ("no_rtx", u.no_rtx - v.no_rtx),
        ] {
            add_by_reason(&self.lean_nack_unanswered, reason, n);
        }
        self.room_allocations.inc_by(c.allocations - s.allocations);
        self.room_bad_datagrams
            .inc_by(c.bad_datagrams - s.bad_datagrams);
        seen.clone_from(now);
    }

    /// Adds `n` drops of `reason` (a `DropReason` name).
    pub fn dropped(&self, reason: &'static str, n: u64) {
        add_by_reason(&self.rtp_dropped, reason, n);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
