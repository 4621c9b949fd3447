//! A room task's media inbox (transport → room), apart from its signalling channel so that a
//! burst of datagrams never delays or refuses a join.

use crate::protocol::ParticipantId;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::net::Protocol;
use tokio::sync::mpsc;

/// Media messages queued toward one room before new datagrams are dropped and counted: a
/// burst of a few hundred milliseconds of a busy room. Each holds at most one datagram
/// (≤ 64 KiB for an ICE-TCP frame, ≤ 1,500 bytes in practice).
pub const MEDIA_QUEUE: usize = 8192;

/// What transport hands a room.
#[derive(Debug)]
pub enum MediaMsg {
    /// A datagram routed here, or one frame of an ICE-TCP connection.
    Datagram {
        /// For whom.
        id: ParticipantId,
        /// UDP, or TCP for a frame (without its length prefix).
        proto: Protocol,
        /// From where (for TCP, the connection's remote address).
        source: SocketAddr,
        /// The server address it was sent to (as announced).
        destination: SocketAddr,
        /// Its bytes.
        contents: Vec<u8>,
        /// When it arrived.
        at: Instant,
    },
    /// An ICE-TCP connection now carries a participant of this room.
    TcpLink {
        /// The connection's remote address.
        peer: SocketAddr,
        /// Where its transmits go.
        link: Link,
    },
    /// That connection closed.
    TcpUnlink {
        /// The connection's remote address.
        peer: SocketAddr,
    },
    /// A relayed stage datagram for an edge room (the cluster relay), not yet opened.
    Relayed {
        /// Its link id (its first 4 bytes).
        link: u32,
        /// The origin's address.
        source: SocketAddr,
        /// The whole datagram.
        contents: Vec<u8>,
        /// When it arrived.
        at: Instant,
    },
}

/// The sending side of a room's media inbox.
pub type MediaTx = mpsc::Sender<MediaMsg>;

/// What the room task keeps of an ICE-TCP connection: where its transmits go.
#[derive(Debug)]
pub struct Link {
    /// The participant it carries.
    pub id: ParticipantId,
    /// Packets to frame and write.
    pub tx: mpsc::Sender<Vec<u8>>,
}
