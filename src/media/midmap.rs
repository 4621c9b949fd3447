//! A peer's down-tracks by m-line: a few entries in a `Vec`, reached by a remembered index
//! on the per-packet path (no hash lookup, whose control bytes were a cache miss per copy at a
//! wide fan-out), by a scan elsewhere.

use str0m::media::Mid;

/// Values by mid. Bounded by the peer's negotiated m-lines, as the map it replaces was.
#[derive(Debug, Clone)]
pub struct MidMap<V> {
    entries: Vec<(Mid, V)>,
}

impl<V> Default for MidMap<V> {
    fn default() -> Self {
        MidMap {
            entries: Vec::new(),
        }
    }
}

impl<V> MidMap<V> {
    /// Where `mid` is now (what [`Self::get_mut_at`] wants remembered).
    pub fn index_of(&self, mid: &Mid) -> Option<usize> {
        self.entries.iter().position(|(m, _)| m == mid)
    }

    /// The value for `mid`.
    pub fn get(&self, mid: &Mid) -> Option<&V> {
        self.entries.iter().find(|(m, _)| m == mid).map(|(_, v)| v)
    }

    /// The value for `mid`, to change.
    pub fn get_mut(&mut self, mid: &Mid) -> Option<&mut V> {
        self.entries
            .iter_mut()
            .find(|(m, _)| m == mid)
            .map(|(_, v)| v)
    }

    /// [`Self::get_mut`] trying index `at` first: right unless the map changed since it was
    /// taken, and checked, so a stale one only costs the scan.
    pub fn get_mut_at(&mut self, mid: &Mid, at: u32) -> Option<&mut V> {
        let at = at as usize;
        match self.entries.get(at) {
            Some((m, _)) if m == mid => self.entries.get_mut(at).map(|(_, v)| v),
            _ => self.get_mut(mid),
        }
    }

    /// Prefetches the entry at index `at`, if there is one (see `peer_table::prefetch`).
    #[inline]
    pub fn prefetch_at(&self, at: u32) {
        if let Some(e) = self.entries.get(at as usize) {
            super::peer_table::prefetch(e, std::mem::size_of::<(Mid, V)>());
        }
    }

    /// The value at index `at`, if any: what [`Self::get_mut_at`] would try first.
    #[inline]
    pub fn get_at(&self, at: u32) -> Option<&V> {
        self.entries.get(at as usize).map(|(_, v)| v)
    }

    /// Sets `mid`'s value; returns the one it replaces.
    pub fn insert(&mut self, mid: Mid, value: V) -> Option<V> {
        match self.get_mut(&mid) {
            Some(v) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((mid, value));
                None
            }
        }
    }

    /// Takes `mid`'s value out (the last entry takes its index).
    pub fn remove(&mut self, mid: &Mid) -> Option<V> {
        let i = self.index_of(mid)?;
        Some(self.entries.swap_remove(i).1)
    }

    /// The values, in index order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// (mid, value) pairs in index order: the n-th is at index n.
    pub fn iter(&self) -> impl Iterator<Item = (&Mid, &V)> {
        self.entries.iter().map(|(m, v)| (m, v))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a, V> IntoIterator for &'a MidMap<V> {
    type Item = (&'a Mid, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Mid, V)>, fn(&'a (Mid, V)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(m, v)| (m, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_index_still_finds_the_mid_and_removal_keeps_the_rest() {
        let mut map = MidMap::default();
        for (i, m) in ["0", "1", "2", "3"].into_iter().enumerate() {
            assert_eq!(map.insert(Mid::from(m), i), None);
        }
        assert_eq!(map.insert(Mid::from("2"), 20), Some(2));
        assert_eq!(map.index_of(&Mid::from("2")), Some(2));
        assert_eq!(map.get_mut_at(&Mid::from("2"), 2).copied(), Some(20));
        // "0" leaves: "3" takes its index; an index remembered for "3" is stale, as is one
        // past the end, and neither misleads.
        assert_eq!(map.remove(&Mid::from("0")), Some(0));
        assert_eq!(map.index_of(&Mid::from("3")), Some(0));
        assert_eq!(map.get_mut_at(&Mid::from("3"), 3).copied(), Some(3));
        assert_eq!(map.get_mut_at(&Mid::from("1"), 99).copied(), Some(1));
        assert_eq!(map.get_mut_at(&Mid::from("0"), 0), None);
        assert_eq!(map.len(), 3);
        let seen: Vec<(String, usize)> = map.iter().map(|(m, v)| (m.to_string(), *v)).collect();
        assert_eq!(seen, [("3".into(), 3), ("1".into(), 1), ("2".into(), 20)]);
        assert_eq!((&map).into_iter().count(), 3);
        assert_eq!(map.values().sum::<usize>(), 24);
    }
}
