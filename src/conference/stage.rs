//! Promotion from an edge, as the conference sees it: the origin takes an edge's tracks only
//! from members served there whose role may publish; an edge room mirrors the origin's role.

use super::Conference;
use crate::media::relay::{RelayId, RelayTrack};
use crate::model::{ParticipantId, Role};
use std::time::Instant;

impl Conference {
    /// Origin: the tracks `link`'s edge publishes now. Those whose owner is not a member
    /// served on an edge, or may not publish (demoted meanwhile), are left out, and so
    /// unpublished if they were in. Returns how many were refused.
    pub fn stage_uplink(&mut self, link: RelayId, tracks: Vec<RelayTrack>, now: Instant) -> usize {
        let all = tracks.len();
        let allowed: Vec<RelayTrack> = tracks
            .into_iter()
            .filter(|t| {
                let who = t.info.participant;
                self.elsewhere.contains(&who)
                    && self.roster.get(&who).is_some_and(|i| i.role.may_publish())
            })
            .collect();
        let refused = all - allowed.len();
        let refused = refused + self.room.uplink_tracks(link, allowed, now);
        self.absorb();
        refused
    }

    /// Edge room: the origin gave this viewer `role` (a promotion to the stage lets its next
    /// offer publish here; a demotion unpublishes at once).
    pub fn relay_role(&mut self, id: ParticipantId, role: Role) {
        self.change_role(id, role);
    }
}
