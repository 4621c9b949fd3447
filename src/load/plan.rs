//! Scenarios (meeting, webinar, rooms) turned into the list of bots to start, in join order.

use crate::protocol::Role;
use std::fmt;

/// A load shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One room where everyone publishes and receives everyone (N × N).
    Meeting {
        /// Participants.
        size: usize,
    },
    /// One room: `publishers` on stage, `viewers` receive only (they join with publish off).
    Webinar {
        /// Publishing participants (join first).
        publishers: usize,
        /// Receive-only participants.
        viewers: usize,
    },
    /// `rooms` independent meetings of `size` each.
    Rooms {
        /// Number of rooms.
        rooms: usize,
        /// Participants per room.
        size: usize,
    },
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Meeting { size } => write!(f, "meeting {size}x{size}"),
            Scenario::Webinar {
                publishers,
                viewers,
            } => write!(f, "webinar {publishers}->{viewers}"),
            Scenario::Rooms { rooms, size } => write!(f, "rooms {rooms}x{size}"),
        }
    }
}

/// One bot to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotPlan {
    /// Room name.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Role asked for.
    pub role: Role,
    /// Whether it publishes audio and video.
    pub publish: bool,
    /// Whether it decrypts what it receives (measures latency) or only counts it.
    pub decrypt: bool,
    /// Remote tracks it should end up receiving.
    pub expected_tracks: usize,
}

impl Scenario {
    /// Bots in every room, largest room first.
    pub fn room_sizes(&self) -> Vec<usize> {
        match *self {
            Scenario::Meeting { size } => vec![size],
            Scenario::Webinar {
                publishers,
                viewers,
            } => vec![publishers + viewers],
            Scenario::Rooms { rooms, size } => vec![size; rooms],
        }
    }

    /// Total bots.
    pub fn bots(&self) -> usize {
        self.room_sizes().iter().sum()
    }

    /// The bots in join order: publishers of a room before its viewers. In each room the
    /// first `decrypting` receivers decrypt media; the others only count it.
    pub fn plan(&self, prefix: &str, decrypting: usize) -> Vec<BotPlan> {
        let mut out = vec![];
        let mut room = |name: String, publishers: usize, viewers: usize, stage: Role| {
            let mut receivers = 0;
            for i in 0..publishers + viewers {
                let publish = i < publishers;
                let expected_tracks = 2 * (publishers - usize::from(publish));
                let receives = expected_tracks > 0;
                let decrypt = receives && receivers < decrypting;
                receivers += usize::from(receives);
                out.push(BotPlan {
                    room: name.clone(),
                    name: format!("{}{i}", if publish { "pub" } else { "view" }),
                    role: if publish { stage } else { Role::Audience },
                    publish,
                    decrypt,
                    expected_tracks,
                });
            }
        };
        match *self {
            Scenario::Meeting { size } => {
                room(format!("{prefix}-meeting"), size, 0, Role::Presenter)
            }
            Scenario::Webinar {
                publishers,
                viewers,
            } => room(format!("{prefix}-webinar"), publishers, viewers, Role::Host),
            Scenario::Rooms { rooms, size } => {
                for r in 0..rooms {
                    room(format!("{prefix}-room{r}"), size, 0, Role::Presenter);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webinar_puts_publishers_first_and_viewers_receive_only() {
        let plan = Scenario::Webinar {
            publishers: 2,
            viewers: 3,
        }
        .plan("t", 2);
        assert_eq!(plan.len(), 5);
        assert!(plan[..2]
            .iter()
            .all(|b| b.publish && b.expected_tracks == 2));
        assert!(plan[2..]
            .iter()
            .all(|b| !b.publish && b.role == Role::Audience && b.expected_tracks == 4));
        assert_eq!(plan.iter().filter(|b| b.decrypt).count(), 2);
    }

    #[test]
    fn rooms_are_independent_meetings() {
        let s = Scenario::Rooms { rooms: 3, size: 2 };
        let plan = s.plan("t", usize::MAX);
        assert_eq!(plan.len(), s.bots());
        assert!(plan.iter().all(|b| b.publish && b.expected_tracks == 2));
        assert_eq!(plan.iter().filter(|b| b.room == "t-room2").count(), 2);
    }

    #[test]
    fn a_lone_publisher_receives_nothing_and_needs_no_decryption() {
        let plan = Scenario::Webinar {
            publishers: 1,
            viewers: 1,
        }
        .plan("t", 1);
        assert!(!plan[0].decrypt);
        assert!(plan[1].decrypt);
    }
}
