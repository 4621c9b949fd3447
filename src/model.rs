//! The domain every layer shares: ids, roles and the one permission table, sources, room mode.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Most audio slots one subscriber may declare; more are ignored.
pub const MAX_AUDIO_SLOTS: usize = 16;

/// A participant's id, unique for the life of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

/// A published track's id, unique for the life of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackId(pub u64);

/// A question's id within its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuestionId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// What a participant may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Publishes, receives and moderates.
    Host,
    /// Publishes and receives.
    #[default]
    Presenter,
    /// Receives only.
    Audience,
}

/// One thing a participant may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Send camera, microphone or screen.
    Publish,
    /// Receive the stage.
    Subscribe,
    /// Write in the room chat, send reactions.
    Chat,
    /// Ask and upvote questions, raise a hand, vote in polls.
    Ask,
    /// Change roles, mute, remove, lock, admit, end, close questions; spotlight, ask to
    /// unmute, invite on stage, run polls, set join-muted.
    Moderate,
    /// Start and stop recording; list and download the room's recordings.
    Record,
}

impl Permission {
    /// Every permission, for tables and tests.
    pub const ALL: [Permission; 6] = [
        Permission::Publish,
        Permission::Subscribe,
        Permission::Chat,
        Permission::Ask,
        Permission::Moderate,
        Permission::Record,
    ];
}

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 3] = [Role::Host, Role::Presenter, Role::Audience];

    /// The permission table: the only place that says what a role may do.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Host => true,
            Role::Presenter => matches!(permission, Publish | Subscribe | Chat | Ask),
            Role::Audience => matches!(permission, Subscribe | Chat | Ask),
        }
    }

    /// Whether this role may send media of any source.
    pub fn may_publish(self) -> bool {
        self.allows(Permission::Publish)
    }
}

/// Where a track's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A camera (video).
    Camera,
    /// A microphone (audio).
    Microphone,
    /// A shared screen or window (video).
    Screen,
    /// The audio of a shared screen or tab.
    ScreenAudio,
}

impl Source {
    /// Whether this source carries video.
    pub fn is_video(self) -> bool {
        matches!(self, Source::Camera | Source::Screen)
    }

    /// Audio or video.
    pub fn kind(self) -> Kind {
        if self.is_video() {
            Kind::Video
        } else {
            Kind::Audio
        }
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// A meeting (joiners present by default) or a webinar (joiners watch by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoomMode {
    /// Everyone on stage.
    #[default]
    Meeting,
    /// A few presenters, a large audience.
    Webinar,
}

impl RoomMode {
    /// The role of a joiner who asks for none.
    pub fn default_role(self) -> Role {
        match self {
            RoomMode::Meeting => Role::Presenter,
            RoomMode::Webinar => Role::Audience,
        }
    }
}

/// One participant as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Its id.
    pub id: ParticipantId,
    /// Its display name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// One published track as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Its id: what a subscriber names in `subscribe`.
    pub id: TrackId,
    /// Who publishes it.
    pub participant: ParticipantId,
    /// Audio or video.
    pub kind: Kind,
    /// Camera, microphone, screen.
    pub source: Source,
    /// Whether the publisher has muted it.
    pub muted: bool,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Said goodbye or closed the socket.
    Left,
    /// Its media or signalling went silent.
    Timeout,
    /// The server ended it after an error.
    Error,
    /// A host removed them, or ended the meeting.
    Removed,
}

/// One encoding a client sends for a video source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    /// The simulcast rid, `""` for a source sent without simulcast.
    pub rid: String,
    /// How many times smaller than the capture (1: full size).
    pub scale_down_by: u32,
    /// Bits per second the encoder must stay under; the server budgets this much.
    pub max_bitrate: u64,
    /// Frames per second at most.
    pub max_framerate: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        assert!(Role::Host.allows(Permission::Moderate));
        assert!(!Role::Presenter.allows(Permission::Moderate));
        assert!(Role::Presenter.allows(Permission::Publish));
        assert!(!Role::Audience.allows(Permission::Publish));
        assert!(Role::Audience.allows(Permission::Ask));
        assert!(Role::Audience.allows(Permission::Subscribe));
        // Everyone receives and talks; only moderation and publishing differ.
        for r in Role::ALL {
            for p in [Permission::Subscribe, Permission::Chat, Permission::Ask] {
                assert!(r.allows(p), "{r:?} should have {p:?}");
            }
            assert_eq!(r.may_publish(), r.allows(Permission::Publish));
        }
        let hosts = Permission::ALL.iter().all(|p| Role::Host.allows(*p));
        assert!(hosts, "a host may do everything");
    }

    #[test]
    fn source_kinds() {
        assert_eq!(Source::Camera.kind(), Kind::Video);
        assert_eq!(Source::Screen.kind(), Kind::Video);
        assert_eq!(Source::Microphone.kind(), Kind::Audio);
        assert_eq!(Source::ScreenAudio.kind(), Kind::Audio);
    }
}
