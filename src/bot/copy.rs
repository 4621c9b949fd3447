//! Bringing the copy of a bot's statistics that its handle reads up to date with what the bot
//! counted, 20 times a second per bot: reusing the copy's memory, and adding only the new
//! entries of the per-sequence logs instead of cloning them whole (a decrypting receiver's log
//! grows by every video packet it gets, up to 200,000 entries).

use super::{BotStats, TrackStats};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

impl BotStats {
    /// Makes `self` equal to `newer`, given that `self` is an earlier copy of the same bot's
    /// stats: they only grow (counters rise, logs gain entries, entries never change).
    pub(crate) fn refresh_from(&mut self, newer: &BotStats) {
        refresh_map(&mut self.tracks, &newer.tracks);
        refresh_map(&mut self.undecrypted, &newer.undecrypted);
        self.sent_packets = newer.sent_packets;
        self.keyframe_requests = newer.keyframe_requests;
        self.connected = newer.connected;
        self.reported.clone_from(&newer.reported);
    }
}

fn refresh_map<K: Hash + Eq + Copy>(
    copy: &mut HashMap<K, TrackStats>,
    newer: &HashMap<K, TrackStats>,
) {
    copy.retain(|k, _| newer.contains_key(k));
    for (k, t) in newer {
        copy.entry(*k).or_default().refresh_from(t);
    }
}

impl TrackStats {
    fn refresh_from(&mut self, newer: &TrackStats) {
        self.video = newer.video;
        self.packets = newer.packets;
        self.bytes = newer.bytes;
        self.keyframes = newer.keyframes;
        self.seq_range = newer.seq_range;
        self.layer_packets = newer.layer_packets;
        self.last_layer = newer.last_layer;
        self.delays_us.clone_from(&newer.delays_us);
        refresh_log(&mut self.by_seq, &newer.by_seq);
    }
}

/// Adds the entries of `newer` past the copy's last; a copy that then still differs in size
/// missed entries that came out of order (a retransmission filling a gap) and is copied whole.
fn refresh_log<V: Copy>(copy: &mut BTreeMap<u64, V>, newer: &BTreeMap<u64, V>) {
    if let Some((&last, _)) = copy.last_key_value() {
        if copy.len() <= newer.len() {
            copy.extend(newer.range(last + 1..).map(|(k, v)| (*k, *v)));
        }
    }
    if copy.len() != newer.len() {
        copy.clone_from(newer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TrackId;

    #[test]
    fn a_refreshed_copy_equals_the_stats_it_follows() {
        let mut core = BotStats::default();
        let mut copy = BotStats::default();
        let id = TrackId(7);
        for round in 0..5u64 {
            let t = core.tracks.entry(id).or_default();
            for seq in round * 10..round * 10 + 8 {
                t.by_seq.insert(seq, (1, seq == 0));
                t.packets += 1;
                t.delays_us.record(seq * 100);
            }
            if round == 3 {
                // A retransmission filling an earlier gap.
                t.by_seq.insert(9, (1, false));
            }
            core.undecrypted.entry(round as u32).or_default().packets = round;
            core.sent_packets += 3;
            copy.refresh_from(&core);
            let (a, b) = (&copy.tracks[&id], &core.tracks[&id]);
            assert_eq!(a.by_seq, b.by_seq);
            assert_eq!(a.packets, b.packets);
            assert_eq!(a.delays_us, b.delays_us);
            assert_eq!(copy.undecrypted.len(), core.undecrypted.len());
            assert_eq!(copy.sent_packets, core.sent_packets);
        }
        assert!(copy.tracks[&id].by_seq.contains_key(&9));
    }
}
