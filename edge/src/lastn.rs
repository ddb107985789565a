//! Last-N: which sources one subscriber receives when a conference is too
//! large to send it everything.
//!
//! **Owns**: the selection rule for video (pinned first, then the speaker
//! order, then join order, at most N), the "only the loudest few" rule for
//! audio in large conferences, and the diff between two selections so the
//! caller subscribes and unsubscribes only what changed.
//!
//! **Does not own**: the speaker order (the `speaker` module), who is a
//! candidate (the caller passes the sources the subscriber may receive,
//! never its own), or the subscriptions themselves (the router). Pure
//! functions over slices; keys are whatever the caller uses for sources or
//! participants, as long as all slices use the same kind of key.
//!
//! Cost: the selection is O((pinned + speakers + candidates) × N) with no
//! allocation once `out` has capacity; it runs when the speaker order, the
//! pins or the roster change, not per packet.

/// Last-N limits for one conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastNConfig {
    /// Most video sources sent to one subscriber. Default 9: a 3×3 grid,
    /// what a typical meeting layout shows at once.
    pub video: usize,
    /// Audio of every participant is forwarded while the conference has at
    /// most this many audio publishers. Default 20: up to there, mixing in
    /// the receiver is cheap and nobody is cut off.
    pub audio_when_over: usize,
    /// Above `audio_when_over`, only the first this-many keys of the
    /// speaker order are heard. Default 3: conversations rarely have more
    /// than three people talking over each other, and the speaker order
    /// promotes anyone who starts talking (see the `speaker` module).
    pub audio_top: usize,
}

impl Default for LastNConfig {
    fn default() -> Self {
        Self {
            video: 9,
            audio_when_over: 20,
            audio_top: 3,
        }
    }
}

/// Chooses at most `n` of `candidates` into `out` (cleared first), in this
/// order of preference:
///
/// 1. `pinned` keys that are candidates, in `pinned` order (if more than
///    `n` are pinned, the first `n` win);
/// 2. candidates in `speaker_order` order (most recent speaker first);
/// 3. the remaining candidates in `candidates` order (join order).
///
/// Keys that are not candidates are ignored wherever they appear, and
/// duplicates are taken once. `out` keeps the preference order, so the
/// caller may also use it for layout (first = most important).
pub fn select_last_n<K: Copy + Eq>(
    n: usize,
    speaker_order: &[K],
    pinned: &[K],
    candidates: &[K],
    out: &mut Vec<K>,
) {
    out.clear();
    let preferred = pinned
        .iter()
        .chain(speaker_order)
        .filter(|k| candidates.contains(k))
        .chain(candidates);
    for &k in preferred {
        if out.len() >= n {
            break;
        }
        if !out.contains(&k) {
            out.push(k);
        }
    }
}

/// Whether a subscriber should receive the audio of `key` in a conference
/// with `participants` audio publishers: always while `participants` is at
/// most `cfg.audio_when_over`, else only when `key` is among the first
/// `cfg.audio_top` of `speaker_order`.
///
/// Pass the speaker order without the subscriber itself to give it
/// `audio_top` *other* voices; with it, a subscriber that is itself among
/// the loudest hears one fewer.
pub fn audio_forwarded<K: Copy + Eq>(
    cfg: &LastNConfig,
    participants: usize,
    speaker_order: &[K],
    key: K,
) -> bool {
    participants <= cfg.audio_when_over
        || speaker_order.iter().take(cfg.audio_top).any(|&k| k == key)
}

/// What changed between two selections: `(added, removed)`, each in the
/// order of the selection it comes from. Allocation-free.
pub fn diff<'a, K: Copy + Eq>(
    previous: &'a [K],
    next: &'a [K],
) -> (impl Iterator<Item = K> + 'a, impl Iterator<Item = K> + 'a) {
    let added = next.iter().copied().filter(|k| !previous.contains(k));
    let removed = previous.iter().copied().filter(|k| !next.contains(k));
    (added, removed)
}

/// One subscriber's current selection, kept between updates so that each
/// update reports only what changed. Two buffers are swapped, so updates
/// stop allocating once they have grown to `n`.
#[derive(Debug, Clone)]
pub struct LastN<K> {
    current: Vec<K>,
    previous: Vec<K>,
}

impl<K> Default for LastN<K> {
    fn default() -> Self {
        Self {
            current: Vec::new(),
            previous: Vec::new(),
        }
    }
}

impl<K: Copy + Eq> LastN<K> {
    /// An empty selection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current selection, in preference order.
    pub fn current(&self) -> &[K] {
        &self.current
    }

    /// Re-selects (see [`select_last_n`]) and returns `(added, removed)`
    /// relative to the previous selection.
    pub fn update(
        &mut self,
        n: usize,
        speaker_order: &[K],
        pinned: &[K],
        candidates: &[K],
    ) -> (impl Iterator<Item = K> + '_, impl Iterator<Item = K> + '_) {
        std::mem::swap(&mut self.current, &mut self.previous);
        select_last_n(n, speaker_order, pinned, candidates, &mut self.current);
        diff(&self.previous, &self.current)
    }
}

#[cfg(test)]
#[path = "lastn_test.rs"]
mod tests;
