//! The stable error codes a server sends, and which of them end the session.

use serde::{Deserialize, Serialize};

/// Stable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a known message, or fields of the wrong shape.
    BadMessage,
    /// The frame exceeded the size limit.
    TooLarge,
    /// Sent too many messages too fast.
    RateLimited,
    /// The room name is not valid.
    InvalidRoom,
    /// The display name is not valid.
    InvalidName,
    /// The room has reached its participant limit.
    RoomFull,
    /// A message other than `join` came first, or `join` came twice.
    NotJoined,
    /// The SDP offer could not be accepted.
    SdpRejected,
    /// Your role does not allow this.
    Forbidden,
    /// The join token is missing, invalid, expired or for another room.
    Unauthorized,
    /// The room ended (the host ended the meeting), or a lobby wait ran out.
    Closed,
    /// The session went silent and was ended: its WebSocket, or its media (never connected,
    /// or gone). Rejoining may work.
    TimedOut,
    /// The server is going away (a restart or an upgrade): rejoin when it answers again.
    ShuttingDown,
    /// Something went wrong on the server; not your fault.
    Internal,
    /// A host removed you.
    Removed,
    /// A host turned you away from the lobby.
    Refused,
    /// The room's password is missing or wrong.
    WrongPassword,
    /// The client speaks a protocol version this server does not.
    UnsupportedVersion,
    /// No such room: this server creates rooms only through "New meeting", `confab room
    /// create` or the room API, or the room expired.
    NoSuchRoom,
}

impl ErrorCode {
    /// Whether the server closes the session after sending this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::InvalidRoom
                | ErrorCode::InvalidName
                | ErrorCode::RoomFull
                | ErrorCode::Unauthorized
                | ErrorCode::Closed
                | ErrorCode::TimedOut
                | ErrorCode::ShuttingDown
                | ErrorCode::Internal
                | ErrorCode::Removed
                | ErrorCode::Refused
                | ErrorCode::WrongPassword
                | ErrorCode::UnsupportedVersion
                | ErrorCode::NoSuchRoom
        )
    }
}
