use super::*;

const PACKET: Duration = Duration::from_millis(20);
const A: u32 = 1;
const B: u32 = 2;
const C: u32 = 3;
const LOUD: u8 = 30;

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Drives a detector in virtual time: a packet per key every 20 ms, timers
/// fired exactly when due, events recorded with their time since start.
struct Sim {
    d: SpeakerDetector<u32>,
    t0: Instant,
    now: Instant,
    next_packet: Instant,
    events: Vec<(Duration, SpeakerEvent<u32>)>,
}

impl Sim {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            d: SpeakerDetector::default(),
            t0,
            now: t0,
            next_packet: t0,
            events: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Runs until `until` (since start). `level(key, elapsed)` gives each
    /// key's packet level, `None` for no packet.
    fn run_until(
        &mut self,
        until: Duration,
        keys: &[u32],
        level: impl Fn(u32, Duration) -> Option<u8>,
    ) {
        let end = self.t0 + until;
        loop {
            let next = self
                .d
                .poll_timeout()
                .map_or(self.next_packet, |t| t.min(self.next_packet));
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            if next == self.next_packet {
                let at = self.elapsed();
                for &k in keys {
                    if let Some(l) = level(k, at) {
                        self.d.handle_level(self.now, k, l, None).unwrap();
                    }
                }
                self.next_packet += PACKET;
            }
            self.d.handle_timeout(self.now);
            while let Some(e) = self.d.poll_event() {
                let at = self.elapsed();
                self.events.push((at, e));
            }
        }
    }

    fn changes(&self) -> Vec<(Option<u32>, Option<u32>)> {
        self.events
            .iter()
            .map(|(_, SpeakerEvent::DominantChanged { previous, current })| (*previous, *current))
            .collect()
    }
}

/// `LOUD` while `talking`, else silence packets.
fn talk(talking: bool) -> Option<u8> {
    Some(if talking { LOUD } else { SILENCE })
}

#[test]
fn loud_speaker_becomes_dominant_quickly() {
    let mut s = Sim::new();
    s.run_until(ms(1000), &[A, B], |k, _| talk(k == A));
    assert_eq!(s.changes(), vec![(None, Some(A))]);
    assert!(s.events[0].0 <= ms(250), "took {:?}", s.events[0].0);
    assert_eq!(s.d.dominant(), Some(A));
    assert_eq!(s.d.order(), &[A, B]);
    assert!(s.d.is_speaking(A) && !s.d.is_speaking(B));
}

#[test]
fn alternating_talk_does_not_flap() {
    for turn in [100u64, 200, 300] {
        let mut s = Sim::new();
        s.run_until(ms(20_000), &[A, B], |k, at| {
            let a_turn = (at.as_millis() as u64 / turn).is_multiple_of(2);
            talk(a_turn == (k == A))
        });
        assert_eq!(s.changes().len(), 1, "turns of {turn} ms: {:?}", s.events);
    }
}

#[test]
fn speaker_changes_when_the_other_talks_for_two_seconds() {
    // Loud A against the quietest speech B: the slowest takeover. A's
    // silence is sent as silence packets, or not sent at all (muted/DTX).
    for (b_level, a_sends_silence) in [(LOUD, true), (LOUD, false), (0, true), (50, true)] {
        let mut s = Sim::new();
        s.run_until(ms(5000), &[A, B], |k, at| match (k, at < ms(3000)) {
            (A, true) => Some(0),
            (A, false) => a_sends_silence.then_some(SILENCE),
            (_, true) => Some(SILENCE),
            (_, false) => Some(b_level),
        });
        let changes = s.changes();
        assert_eq!(
            changes,
            vec![(None, Some(A)), (Some(A), Some(B))],
            "{b_level}"
        );
        let took = s.events[1].0 - ms(3000);
        assert!(
            took >= ms(500) && took <= ms(1600),
            "B at {b_level}, silence {a_sends_silence}: took {took:?}"
        );
    }
}

#[test]
fn silent_dominant_stays_and_the_timer_goes_idle() {
    let mut s = Sim::new();
    s.run_until(ms(1000), &[A, B], |k, _| talk(k == A));
    s.run_until(ms(30_000), &[A, B], |_, _| talk(false));
    assert_eq!(s.changes(), vec![(None, Some(A))]);
    assert_eq!(s.d.dominant(), Some(A));
    assert!(!s.d.is_speaking(A));
    assert_eq!(s.d.poll_timeout(), None, "nothing left to decide");
    // Speech re-arms the timer.
    s.run_until(ms(30_100), &[A, B], |k, _| talk(k == B));
    assert!(s.d.poll_timeout().is_some());
}

#[test]
fn interjections_do_not_steal() {
    let mut s = Sim::new();
    // A talks throughout but for a pause at 3.0–3.4 s, which B fills; B
    // also talks over A (equally loud) at 5–6 s.
    s.run_until(ms(8000), &[A, B], |k, at| {
        let pause = at >= ms(3000) && at < ms(3400);
        let b = pause || (at >= ms(5000) && at < ms(6000));
        talk(if k == A { !pause } else { b })
    });
    assert_eq!(s.changes(), vec![(None, Some(A))]);
}

#[test]
fn order_follows_who_starts_speaking() {
    let mut s = Sim::new();
    let t0 = s.t0;
    assert!(s.d.insert(t0, A));
    assert!(!s.d.insert(t0, A));
    s.run_until(ms(500), &[A, B, C], |_, _| talk(false));
    assert_eq!(s.d.order(), &[A, B, C], "first seen");
    s.run_until(ms(1000), &[A, B, C], |k, _| talk(k == C));
    assert_eq!(s.d.order(), &[C, A, B]);
    // B speaks briefly (not enough to take over): behind the dominant.
    s.run_until(ms(1300), &[A, B, C], |k, _| talk(k == B));
    assert_eq!(s.d.dominant(), Some(C));
    assert_eq!(s.d.order(), &[C, B, A]);
    // A takes over.
    s.run_until(ms(4000), &[A, B, C], |k, _| talk(k == A));
    assert_eq!(s.d.dominant(), Some(A));
    assert_eq!(s.d.order(), &[A, C, B]);
}

#[test]
fn removing_the_dominant_promotes_the_next_in_order() {
    let mut s = Sim::new();
    s.run_until(ms(1000), &[A, B, C], |k, _| talk(k == A));
    s.run_until(ms(1300), &[A, B, C], |k, _| talk(k == B));
    assert_eq!(s.d.order(), &[A, B, C]);
    s.events.clear();
    assert!(s.d.remove(A));
    assert!(!s.d.remove(A), "already gone");
    assert!(s.d.remove(C), "not dominant: no event");
    assert!(s.d.remove(B));
    let changes: Vec<_> = std::iter::from_fn(|| s.d.poll_event()).collect();
    assert_eq!(
        changes,
        vec![
            SpeakerEvent::DominantChanged {
                previous: Some(A),
                current: Some(B)
            },
            SpeakerEvent::DominantChanged {
                previous: Some(B),
                current: None
            },
        ]
    );
    assert!(s.d.order().is_empty());
    assert_eq!(s.d.dominant(), None);
}

#[test]
fn removing_a_challenger_ends_its_challenge() {
    let mut s = Sim::new();
    s.run_until(ms(2000), &[A, B], |k, _| talk(k == A));
    // B takes over the conversation, but leaves before it wins.
    s.run_until(ms(2900), &[A, B], |k, _| talk(k == B));
    assert_eq!(s.d.dominant(), Some(A));
    s.d.remove(B);
    s.run_until(ms(6000), &[A], |_, _| talk(false));
    assert_eq!(s.changes(), vec![(None, Some(A))]);
}

#[test]
fn out_of_range_levels_are_refused() {
    let mut d = SpeakerDetector::<u32>::default();
    let t0 = Instant::now();
    assert_eq!(
        d.handle_level(t0, A, 0x80 | 20, Some(true)),
        Err(SpeakerError::LevelOutOfRange(148))
    );
    assert!(d.order().is_empty(), "nothing registered");
    assert_eq!(d.poll_timeout(), None);
    assert_eq!(
        SpeakerError::LevelOutOfRange(148).to_string(),
        "audio level 148 out of range 0..=127"
    );
    assert_eq!(d.handle_level(t0, A, SILENCE, None), Ok(()));
    assert_eq!(d.order(), &[A]);
}

#[test]
fn voice_flag_vetoes_but_does_not_promote() {
    let mut d = SpeakerDetector::<u32>::default();
    let t0 = Instant::now();
    for i in 1..=100u32 {
        let now = t0 + PACKET * i;
        d.handle_level(now, A, LOUD, Some(false)).unwrap();
        d.handle_level(now, B, 90, Some(true)).unwrap();
        d.handle_timeout(now);
    }
    assert_eq!(d.dominant(), None);
    assert_eq!(d.poll_timeout(), None, "no speech, no timer");
    assert!(d.poll_event().is_none());
}

#[test]
fn bad_configs_are_refused() {
    let ok = SpeakerConfig::default();
    let bad = [
        SpeakerConfig {
            speech_level: 128,
            ..ok.clone()
        },
        SpeakerConfig {
            short_window: Duration::ZERO,
            ..ok.clone()
        },
        SpeakerConfig {
            tick: Duration::ZERO,
            ..ok.clone()
        },
        SpeakerConfig {
            speaking_off: 0.5,
            speaking_on: 0.4,
            ..ok.clone()
        },
        SpeakerConfig {
            speaking_off: 0.0,
            ..ok.clone()
        },
        SpeakerConfig {
            challenge_ratio: f32::NAN,
            ..ok.clone()
        },
    ];
    for cfg in bad {
        assert!(
            matches!(
                SpeakerDetector::<u32>::new(cfg.clone()),
                Err(SpeakerError::InvalidConfig(_))
            ),
            "{cfg:?}"
        );
    }
    // A zero challenge time and speech level are valid: switch at once,
    // only full-scale counts.
    let eager = SpeakerConfig {
        min_challenge: Duration::ZERO,
        speech_level: 0,
        ..ok
    };
    assert!(SpeakerDetector::<u32>::new(eager).is_ok());
}
