//! Recording as people see it: who may start it, and that everyone is told when it starts,
//! stops or fails. The writer itself is the owner's (it opens a file); the conference hands
//! its handle to the media room, which feeds it.

use super::Conference;
use crate::model::{ParticipantId, Permission};
use crate::protocol::{RecordingEntry, ServerMsg};
use crate::record::RecordingHandle;
use std::time::Instant;

impl Conference {
    /// Whether the room records now.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// The owner started a writer (asked by `by`, or by the room API): the room feeds it and
    /// everyone is told.
    pub fn recording_started(
        &mut self,
        handle: RecordingHandle,
        by: Option<ParticipantId>,
        now: Instant,
    ) {
        self.room.start_recording(handle, now);
        self.recording = true;
        let by = by.and_then(|p| self.roster.get(&p)).map(|i| i.name.clone());
        self.broadcast(
            None,
            ServerMsg::Recording {
                on: true,
                by,
                error: None,
            },
        );
    }

    /// Stops feeding the recording (a host, the room API, or the room ending) and tells
    /// everyone; the writer finishes the file. Returns whether one ran.
    pub fn stop_recording(&mut self, by: Option<ParticipantId>) -> bool {
        if !self.room.stop_recording() {
            return false;
        }
        self.recording = false;
        let by = by.and_then(|p| self.roster.get(&p)).map(|i| i.name.clone());
        self.broadcast(
            None,
            ServerMsg::Recording {
                on: false,
                by,
                error: None,
            },
        );
        true
    }

    /// The writer stopped by itself (full disk, unwritable file): the meeting goes on, everyone
    /// sees the recording end, hosts are told why.
    pub fn recording_failed(&mut self, why: &str) {
        let was = self.recording;
        self.room.stop_recording();
        self.recording = false;
        let hosts: Vec<ParticipantId> = self
            .roster
            .values()
            .filter(|m| m.role.allows(Permission::Record))
            .map(|m| m.id)
            .collect();
        let others: Vec<ParticipantId> = self
            .roster
            .keys()
            .filter(|id| !hosts.contains(id))
            .copied()
            .collect();
        for id in hosts {
            self.signal(
                id,
                ServerMsg::Recording {
                    on: false,
                    by: None,
                    error: Some(why.to_string()),
                },
            );
        }
        if was {
            for id in others {
                self.signal(
                    id,
                    ServerMsg::Recording {
                        on: false,
                        by: None,
                        error: None,
                    },
                );
            }
        }
    }

    /// A host's request could not be carried out (already recording, the directory is not
    /// writable): told to that host only, with the state as it is.
    pub fn recording_refused(&mut self, to: ParticipantId, why: &str) {
        let on = self.recording;
        self.signal(
            to,
            ServerMsg::Recording {
                on,
                by: None,
                error: Some(why.to_string()),
            },
        );
    }

    /// The answer to a host's `list_recordings`.
    pub fn recordings_listed(&mut self, to: ParticipantId, recordings: Vec<RecordingEntry>) {
        self.signal(to, ServerMsg::Recordings { recordings });
    }
}
