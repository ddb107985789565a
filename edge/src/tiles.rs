//! How tall a subscriber renders each participant's video: one height for
//! every tile, and heights for some participants (the stage of a speaker
//! view, a pinned tile), as Jitsi's receiver constraints and LiveKit's
//! per-track settings let a client say.
//!
//! The layer choice ([`crate::layers::pick_layer`]) and the layer an octo
//! link carries both read it per source.

use std::collections::BTreeMap;

use geomesh_core::ParticipantId;

/// At most this many per-participant heights are kept (a client cannot
/// make the edge hold an unbounded map; the rest are ignored).
pub const MAX_TILE_HEIGHTS: usize = 64;

/// A subscriber's tile heights (`video_constraints` `max_height` and
/// `max_heights`). A height of 0 means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileHeights {
    every: Option<u16>,
    per: BTreeMap<ParticipantId, u16>,
}

impl TileHeights {
    /// `every` for every tile (None or 0: no limit), `per` for those
    /// participants (0: no limit for that one). Keeps the first
    /// [`MAX_TILE_HEIGHTS`] of `per` in id order.
    pub fn new(every: Option<u16>, per: BTreeMap<ParticipantId, u16>) -> Self {
        let per = if per.len() > MAX_TILE_HEIGHTS {
            per.into_iter().take(MAX_TILE_HEIGHTS).collect()
        } else {
            per
        };
        Self {
            every: every.filter(|h| *h > 0),
            per,
        }
    }

    /// The same height for every tile.
    pub fn every(height: Option<u16>) -> Self {
        Self::new(height, BTreeMap::new())
    }

    /// The height of `participant`'s tile; `None`: no limit.
    pub fn of(&self, participant: Option<&ParticipantId>) -> Option<u16> {
        match participant.and_then(|p| self.per.get(p)) {
            Some(0) => None,
            Some(h) => Some(*h),
            None => self.every,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }

    #[test]
    fn a_participant_height_overrides_the_default_and_zero_lifts_the_limit() {
        let t = TileHeights::new(Some(180), [(id("stage"), 720), (id("free"), 0)].into());
        assert_eq!(t.of(Some(&id("stage"))), Some(720));
        assert_eq!(t.of(Some(&id("free"))), None);
        assert_eq!(t.of(Some(&id("other"))), Some(180));
        assert_eq!(t.of(None), Some(180));
        assert_eq!(TileHeights::every(Some(0)).of(Some(&id("x"))), None);
        assert_eq!(TileHeights::default().of(None), None);
    }

    #[test]
    fn at_most_max_tile_heights_are_kept() {
        let per = (0..200).map(|i| (id(&format!("p{i:03}")), 360)).collect();
        let t = TileHeights::new(Some(90), per);
        assert_eq!(t.per.len(), MAX_TILE_HEIGHTS);
        assert_eq!(t.of(Some(&id("p000"))), Some(360));
        assert_eq!(t.of(Some(&id("p199"))), Some(90));
    }
}
