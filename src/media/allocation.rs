//! Splitting one subscriber's downlink among the videos it wants: last-N first, then the
//! lowest layer for each in priority order, then upgrades toward what each tile needs.

use super::simulcast::Layer;

/// Why a video matters to a subscriber; lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A screen share.
    Screen,
    /// The dominant speaker's camera.
    Speaker,
    /// Pinned by the subscriber.
    Pinned,
    /// A recent speaker; lower rank spoke more recently.
    Recent(usize),
    /// Anyone else, in publication order.
    Other(u64),
}

/// One video a subscriber could receive.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its importance.
    pub priority: Priority,
    /// The best layer its tile can use; `None` when not visible.
    pub wanted: Option<Layer>,
    /// Bitrate of each layer in bits per second, lowest first (one entry without simulcast).
    pub rates: Vec<u64>,
}

/// The layer rendered at `height` device pixels best needs (layers of 180/360/720 lines).
pub fn layer_for_height(height: u32, layers: usize) -> Option<Layer> {
    if height == 0 || layers == 0 {
        return None;
    }
    let l = match height {
        0..=200 => 0,
        201..=400 => 1,
        _ => 2,
    };
    Some(l.min(layers - 1) as Layer)
}

/// Decides one layer (or none) per candidate, in the order given.
///
/// `budget` is the subscriber's bandwidth estimate for video in bits per second (`None`: no
/// estimate yet, no limit). At most `last_n` visible videos are forwarded. The most important
/// visible video always gets at least its lowest layer, even over budget.
pub fn allocate(
    budget: Option<u64>,
    last_n: usize,
    candidates: &[Candidate],
) -> Vec<Option<Layer>> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|i| candidates[*i].priority);
    let chosen: Vec<usize> = order
        .into_iter()
        .filter(|i| candidates[*i].wanted.is_some() && !candidates[*i].rates.is_empty())
        .take(last_n)
        .collect();
    let mut out = vec![None; candidates.len()];
    let mut left = budget.unwrap_or(u64::MAX);
    for (n, i) in chosen.iter().enumerate() {
        let cost = candidates[*i].rates[0];
        if n == 0 || cost <= left {
            out[*i] = Some(0);
            left = left.saturating_sub(cost);
        }
    }
    for i in &chosen {
        let Some(mut layer) = out[*i] else { continue };
        let c = &candidates[*i];
        let best = c.wanted.unwrap_or(0).min((c.rates.len() - 1) as Layer);
        while layer < best {
            let extra = c.rates[layer as usize + 1].saturating_sub(c.rates[layer as usize]);
            if extra > left {
                break;
            }
            left -= extra;
            layer += 1;
        }
        out[*i] = Some(layer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(priority: Priority, wanted: Option<Layer>) -> Candidate {
        Candidate {
            priority,
            wanted,
            rates: vec![150_000, 500_000, 1_500_000],
        }
    }

    #[test]
    fn unlimited_budget_gives_what_tiles_need() {
        let c = [
            cam(Priority::Other(1), Some(2)),
            cam(Priority::Other(2), Some(0)),
        ];
        assert_eq!(allocate(None, 10, &c), vec![Some(2), Some(0)]);
    }

    #[test]
    fn tight_budget_keeps_the_speaker_first() {
        let c = [
            cam(Priority::Other(1), Some(2)),
            cam(Priority::Speaker, Some(2)),
            cam(Priority::Other(2), Some(2)),
        ];
        // 300 kbit/s: two lowest layers fit, no upgrade.
        assert_eq!(
            allocate(Some(300_000), 10, &c),
            vec![Some(0), Some(0), None]
        );
        // 50 kbit/s: only the speaker, even over budget.
        assert_eq!(allocate(Some(50_000), 10, &c), vec![None, Some(0), None]);
        // 1.2 Mbit/s: the speaker is upgraded first, then the next in priority.
        assert_eq!(
            allocate(Some(1_200_000), 10, &c),
            vec![Some(1), Some(1), Some(0)]
        );
        // 900 kbit/s: only the speaker's upgrade fits.
        assert_eq!(
            allocate(Some(900_000), 10, &c),
            vec![Some(0), Some(1), Some(0)]
        );
    }

    #[test]
    fn last_n_and_invisible_tiles() {
        let c = [
            cam(Priority::Recent(1), Some(1)),
            cam(Priority::Screen, Some(2)),
            cam(Priority::Recent(0), Some(1)),
            cam(Priority::Other(3), None),
        ];
        assert_eq!(allocate(None, 2, &c), vec![None, Some(2), Some(1), None]);
    }

    #[test]
    fn heights_map_to_layers() {
        assert_eq!(layer_for_height(0, 3), None);
        assert_eq!(layer_for_height(120, 3), Some(0));
        assert_eq!(layer_for_height(360, 3), Some(1));
        assert_eq!(layer_for_height(1080, 3), Some(2));
        assert_eq!(layer_for_height(1080, 1), Some(0));
    }
}
