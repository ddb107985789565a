//! Dominant speaker detection from RFC 6464 audio levels.
//!
//! **Owns**: per-participant activity scores built from the audio level
//! header extension, the choice of one dominant speaker with hysteresis so
//! it does not flap, and the speaker order that last-N selects from (the
//! `lastn` module).
//!
//! **Does not own**: reading the header extension (str0m gives
//! `audio_level` as `-level`; pass `audio_level.unsigned_abs()`), telling
//! participants (the caller drains [`SpeakerDetector::poll_event`]), or
//! which keys belong together (one detector per conference).
//!
//! ## Rule
//!
//! A packet counts as speech when its level is at most
//! [`SpeakerConfig::speech_level`] dBov below full scale and its voice
//! activity flag, if present, is not `false` (the flag can veto, not
//! promote: a whisper flagged as voice is not worth a video switch). Speech
//! has an activity of 0.75 (at the threshold) to 1.0 (at full scale), so
//! loudness breaks ties without letting mic gain decide. Each key keeps two
//! exponentially smoothed activity scores in 0..=1: *short* (300 ms, "is
//! talking now") and *medium* (1 s, "has been talking lately"). A packet
//! vouches for the time since the previous one, up to 100 ms; longer gaps
//! (muted, DTX, loss) count as silence.
//!
//! Every tick (100 ms) while anyone has activity left:
//!
//! - a key *speaks* from when its short score reaches 0.3 until it falls
//!   below 0.1; a key that starts speaking moves to just behind the
//!   dominant speaker in the [order](SpeakerDetector::order);
//! - with no dominant speaker, the speaking key with the highest short
//!   score becomes dominant at once;
//! - otherwise the speaking non-dominant key with the highest short score
//!   challenges: it wins when its short score exceeds 1.5 × the dominant's
//!   and its medium score exceeds the dominant's at every tick for 500 ms.
//!   A silent dominant therefore stays dominant until someone else speaks,
//!   two people trading words every few hundred milliseconds never pass
//!   the 500 ms, and someone who takes over the conversation wins in about
//!   1.2 s (the medium scores cross after ~0.7 s).
//!
//! Sans-IO: time comes in as `Instant`. [`SpeakerDetector::handle_level`]
//! is O(1) and allocates only the first time a key is seen (call
//! [`SpeakerDetector::insert`] when a source is added to avoid even that);
//! the O(keys) work happens once per tick in
//! [`SpeakerDetector::handle_timeout`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The RFC 6464 level of silence: 127 dB below the overload point.
pub const SILENCE: u8 = 127;

/// Scores below this are zero for the purpose of keeping the tick running.
const IDLE: f32 = 1e-3;

/// Tuning. All fields are public; the defaults are documented per field
/// and explained in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerConfig {
    /// Levels at most this (dB below overload) count as speech. Default 50:
    /// speech sits around 20–40, a quiet room with a decent mic around
    /// 60–80.
    pub speech_level: u8,
    /// Time constant of the short score. Default 300 ms.
    pub short_window: Duration,
    /// Time constant of the medium score. Default 1 s.
    pub medium_window: Duration,
    /// The most time one packet vouches for. Default 100 ms: several
    /// 20 ms packets lost in a row still count, a mute or DTX pause does not.
    pub max_packet_span: Duration,
    /// Decision interval. Default 100 ms.
    pub tick: Duration,
    /// A key starts speaking when its short score reaches this. Default 0.3
    /// (about 100 ms of speech from silence).
    pub speaking_on: f32,
    /// A speaking key stops when its short score falls below this. Default
    /// 0.1 (about 700 ms of silence after steady speech).
    pub speaking_off: f32,
    /// A challenger's short score must exceed the dominant's times this.
    /// Default 1.5.
    pub challenge_ratio: f32,
    /// How long a challenge must hold at every tick. Default 500 ms.
    pub min_challenge: Duration,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            speech_level: 50,
            short_window: Duration::from_millis(300),
            medium_window: Duration::from_secs(1),
            max_packet_span: Duration::from_millis(100),
            tick: Duration::from_millis(100),
            speaking_on: 0.3,
            speaking_off: 0.1,
            challenge_ratio: 1.5,
            min_challenge: Duration::from_millis(500),
        }
    }
}

impl SpeakerConfig {
    fn validate(&self) -> Result<(), SpeakerError> {
        let bad = |what| Err(SpeakerError::InvalidConfig(what));
        if self.speech_level > SILENCE {
            return bad("speech_level above 127");
        }
        if self.short_window.is_zero() || self.medium_window.is_zero() {
            return bad("zero score window");
        }
        if self.tick.is_zero() {
            return bad("zero tick");
        }
        // Written so that NaN fails too.
        let (off, on) = (self.speaking_off, self.speaking_on);
        let ordered = 0.0 < off && off <= on && on <= 1.0;
        if !ordered {
            return bad("need 0 < speaking_off <= speaking_on <= 1");
        }
        if self.challenge_ratio.is_nan() || self.challenge_ratio < 1.0 {
            return bad("challenge_ratio below 1");
        }
        Ok(())
    }
}

/// Bad input to the detector.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpeakerError {
    /// An audio level above 127: RFC 6464 levels are 7 bits. Most likely
    /// the raw extension byte with the voice activity bit still set; the
    /// packet is ignored rather than guessed at.
    LevelOutOfRange(u8),
    /// A configuration that cannot work; says which part.
    InvalidConfig(&'static str),
}

impl fmt::Display for SpeakerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LevelOutOfRange(l) => write!(f, "audio level {l} out of range 0..=127"),
            Self::InvalidConfig(what) => write!(f, "invalid speaker config: {what}"),
        }
    }
}

impl std::error::Error for SpeakerError {}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerEvent<K> {
    /// The dominant speaker changed.
    DominantChanged {
        /// The one before (`None` at the start).
        previous: Option<K>,
        /// The new one (`None` when the last key was removed).
        current: Option<K>,
    },
}

/// One key's scores.
#[derive(Debug, Clone, Copy)]
struct Voice {
    /// Short and medium scores as of `updated`.
    short: f32,
    medium: f32,
    updated: Instant,
    speaking: bool,
}

/// The factor an exponentially smoothed score keeps over `dt`.
fn keep(dt: Duration, window: Duration) -> f32 {
    if dt.is_zero() {
        1.0
    } else {
        (-dt.as_secs_f32() / window.as_secs_f32()).exp()
    }
}

impl Voice {
    fn new(now: Instant) -> Self {
        Self {
            short: 0.0,
            medium: 0.0,
            updated: now,
            speaking: false,
        }
    }

    /// Scores at `now`, the time since the last packet counting as silence.
    fn at(&self, now: Instant, cfg: &SpeakerConfig) -> (f32, f32) {
        let dt = now.saturating_duration_since(self.updated);
        (
            self.short * keep(dt, cfg.short_window),
            self.medium * keep(dt, cfg.medium_window),
        )
    }

    /// Folds in a packet of `activity` that vouches for up to
    /// `max_packet_span` before `now`; the rest of the gap is silence.
    fn update(&mut self, now: Instant, activity: f32, cfg: &SpeakerConfig) {
        let dt = now.saturating_duration_since(self.updated);
        let held = dt.min(cfg.max_packet_span);
        let silent = dt - held;
        let blend = |score: f32, window| {
            let decayed = score * keep(silent, window);
            activity + (decayed - activity) * keep(held, window)
        };
        self.short = blend(self.short, cfg.short_window);
        self.medium = blend(self.medium, cfg.medium_window);
        self.updated = self.updated.max(now);
    }
}

/// Dominant speaker detector for one conference. See the module docs.
#[derive(Debug)]
pub struct SpeakerDetector<K> {
    cfg: SpeakerConfig,
    voices: HashMap<K, Voice>,
    /// Every known key once; the dominant speaker, when there is one, first.
    order: Vec<K>,
    dominant: Option<K>,
    /// The current challenger and since when it has held.
    challenge: Option<(K, Instant)>,
    /// `None` while nobody has any activity: no timer needed.
    next_tick: Option<Instant>,
    events: VecDeque<SpeakerEvent<K>>,
}

impl<K: Copy + Eq + Hash + fmt::Debug> Default for SpeakerDetector<K> {
    fn default() -> Self {
        Self::new(SpeakerConfig::default()).expect("the default config is valid")
    }
}

impl<K: Copy + Eq + Hash + fmt::Debug> SpeakerDetector<K> {
    /// A detector with no keys.
    pub fn new(cfg: SpeakerConfig) -> Result<Self, SpeakerError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            voices: HashMap::new(),
            order: Vec::new(),
            dominant: None,
            challenge: None,
            next_tick: None,
            events: VecDeque::new(),
        })
    }

    /// Registers a key (silent, last in the order) ahead of its first
    /// packet. Returns false if it was known.
    pub fn insert(&mut self, now: Instant, key: K) -> bool {
        if self.voices.contains_key(&key) {
            return false;
        }
        self.voices.insert(key, Voice::new(now));
        self.order.push(key);
        true
    }

    /// One audio packet of `key`: its RFC 6464 level (0 = loudest,
    /// 127 = silence) and voice activity flag if the extension had one.
    /// Unknown keys are registered. A level above 127 is refused and the
    /// packet ignored.
    pub fn handle_level(
        &mut self,
        now: Instant,
        key: K,
        level: u8,
        voice: Option<bool>,
    ) -> Result<(), SpeakerError> {
        if level > SILENCE {
            return Err(SpeakerError::LevelOutOfRange(level));
        }
        let activity = self.activity(level, voice);
        self.insert(now, key);
        let v = self.voices.get_mut(&key).expect("just inserted");
        v.update(now, activity, &self.cfg);
        if activity > 0.0 && self.next_tick.is_none() {
            self.next_tick = Some(now + self.cfg.tick);
        }
        Ok(())
    }

    /// Forgets a key. If it was dominant, the next key in the order (the
    /// most recent other speaker) becomes dominant at once, so a stage view
    /// is never left empty while anyone remains. Returns false if unknown.
    pub fn remove(&mut self, key: K) -> bool {
        if self.voices.remove(&key).is_none() {
            return false;
        }
        self.order.retain(|&k| k != key);
        if self.challenge.is_some_and(|(c, _)| c == key) {
            self.challenge = None;
        }
        if self.dominant == Some(key) {
            let next = self.order.first().copied();
            self.dominant = next;
            self.events.push_back(SpeakerEvent::DominantChanged {
                previous: Some(key),
                current: next,
            });
        }
        true
    }

    /// Runs the decision if its tick is due. See the module docs.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_tick.is_some_and(|t| now >= t) {
            self.evaluate(now);
        }
    }

    /// When [`Self::handle_timeout`] next has work; `None` while everyone
    /// has been silent long enough that nothing can change without a packet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The next change to act on.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SpeakerEvent<K>> {
        self.events.pop_front()
    }

    /// The dominant speaker.
    pub fn dominant(&self) -> Option<K> {
        self.dominant
    }

    /// The speaker order: the dominant speaker first, then keys by when
    /// they last started speaking (most recent first), then keys never
    /// heard in the order they were first seen. Every known key appears
    /// once. Changes only at ticks and removals, not per packet.
    pub fn order(&self) -> &[K] {
        &self.order
    }

    /// Whether `key` is speaking (as of the last tick).
    pub fn is_speaking(&self, key: K) -> bool {
        self.voices.get(&key).is_some_and(|v| v.speaking)
    }

    fn activity(&self, level: u8, voice: Option<bool>) -> f32 {
        let threshold = self.cfg.speech_level;
        if level > threshold || voice == Some(false) {
            0.0
        } else if threshold == 0 {
            1.0
        } else {
            1.0 - 0.25 * f32::from(level) / f32::from(threshold)
        }
    }

    fn evaluate(&mut self, now: Instant) {
        let cfg = &self.cfg;
        // The dominant speaker sits at order[0]; newcomers go behind it.
        let front = usize::from(self.dominant.is_some());
        let mut live = false;
        let mut dominant_scores = (0.0, 0.0);
        let mut best: Option<(K, f32, f32)> = None;
        for i in 0..self.order.len() {
            let key = self.order[i];
            let v = self
                .voices
                .get_mut(&key)
                .expect("every ordered key has a voice");
            let (short, medium) = v.at(now, cfg);
            live |= short > IDLE || medium > IDLE;
            let was = v.speaking;
            // Hysteresis: harder to start speaking than to keep speaking.
            let threshold = if was {
                cfg.speaking_off
            } else {
                cfg.speaking_on
            };
            v.speaking = short >= threshold;
            if Some(key) == self.dominant {
                dominant_scores = (short, medium);
                continue;
            }
            if !v.speaking {
                continue;
            }
            if !was {
                // Rotating only visited positions keeps the loop valid.
                self.order[front..=i].rotate_right(1);
            }
            if best.is_none_or(|(_, s, _)| short > s) {
                best = Some((key, short, medium));
            }
        }

        match self.dominant {
            None => {
                if let Some((key, ..)) = best {
                    self.set_dominant(key);
                }
            }
            Some(_) => {
                let (ds, dm) = dominant_scores;
                let ratio = self.cfg.challenge_ratio;
                let challenger = best
                    .filter(|&(_, s, m)| s > ds * ratio && m > dm)
                    .map(|(k, ..)| k);
                self.challenge = challenger.map(|c| match self.challenge {
                    Some((prev, since)) if prev == c => (c, since),
                    _ => (c, now),
                });
                if let Some((c, since)) = self.challenge
                    && now.saturating_duration_since(since) >= self.cfg.min_challenge
                {
                    self.challenge = None;
                    self.set_dominant(c);
                }
            }
        }
        self.next_tick = (live || self.challenge.is_some()).then(|| now + self.cfg.tick);
    }

    fn set_dominant(&mut self, key: K) {
        let pos = self
            .order
            .iter()
            .position(|&k| k == key)
            .expect("a dominant speaker is a known key");
        self.order[..=pos].rotate_right(1);
        let previous = self.dominant.replace(key);
        self.events.push_back(SpeakerEvent::DominantChanged {
            previous,
            current: Some(key),
        });
    }
}

#[cfg(test)]
#[path = "speaker_test.rs"]
mod tests;
