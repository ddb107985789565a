//! Counting without I/O: what each session sent and received, one-way
//! delays from the frames' stamps, and loss as frames expected versus
//! frames received per stream.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::histogram::Histogram;
use crate::stamp::{Kind, Stamp, StampError, StreamKey};

/// Frame numbers at or above this are refused (bounds the per-stream
/// bitmap: 2^22 frames is 38 hours of video at 30 fps).
pub const MAX_SEQ: u32 = 1 << 22;

/// Packets and bytes per kind, plus datagrams that are not media.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// RTP packets by [`Kind::index`].
    pub packets: [u64; 2],
    /// Datagram bytes of those packets.
    pub bytes: [u64; 2],
    /// Other datagrams (RTCP, STUN, DTLS, unknown payload types).
    pub other: u64,
}

impl Traffic {
    /// Counts one media datagram.
    pub fn media(&mut self, kind: Kind, len: usize) {
        self.packets[kind.index()] += 1;
        self.bytes[kind.index()] += len as u64;
    }

    /// Adds another's counts.
    pub fn merge(&mut self, o: &Traffic) {
        for i in 0..2 {
            self.packets[i] += o.packets[i];
            self.bytes[i] += o.bytes[i];
        }
        self.other += o.other;
    }

    /// Media packets of both kinds.
    pub fn media_packets(&self) -> u64 {
        self.packets.iter().sum()
    }
}

/// Frames one session wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentStats {
    /// Frames by kind.
    pub frames: [u64; 2],
    /// Frame bytes by kind.
    pub bytes: [u64; 2],
    /// Keyframes (all video layers).
    pub keyframes: u64,
    /// Writes the WebRTC stack refused (the frame never left).
    pub write_errors: u64,
}

impl SentStats {
    /// Counts a frame that left.
    pub fn frame(&mut self, kind: Kind, len: usize, keyframe: bool) {
        self.frames[kind.index()] += 1;
        self.bytes[kind.index()] += len as u64;
        self.keyframes += u64::from(keyframe);
    }

    /// Adds another's counts.
    pub fn merge(&mut self, o: &SentStats) {
        for i in 0..2 {
            self.frames[i] += o.frames[i];
            self.bytes[i] += o.bytes[i];
        }
        self.keyframes += o.keyframes;
        self.write_errors += o.write_errors;
    }
}

/// Which frames of one stream a receiver got.
#[derive(Debug, Clone, Default)]
pub struct RecvStream {
    seen: Vec<u64>,
    first: Option<u32>,
    unique: u64,
    duplicates: u64,
}

impl RecvStream {
    /// Records frame `seq` (< [`MAX_SEQ`]); false for a duplicate.
    pub fn record(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        self.first = Some(self.first.map_or(seq, |f| f.min(seq)));
        true
    }

    /// The lowest frame number received.
    pub fn first(&self) -> Option<u32> {
        self.first
    }

    /// Distinct frames received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Distinct frames received with numbers below `n`.
    pub fn count_below(&self, n: u32) -> u64 {
        let full = (n / 64) as usize;
        let mut c: u64 = self
            .seen
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if let Some(w) = self.seen.get(full) {
            let mask = (1u64 << (n % 64)) - 1;
            c += u64::from((w & mask).count_ones());
        }
        c
    }
}

/// Everything one session received.
#[derive(Debug, Clone, Default)]
pub struct RecvStats {
    /// Per stream.
    pub streams: HashMap<StreamKey, RecvStream>,
    /// One-way delay by kind, µs.
    pub delay: [Histogram; 2],
    /// Frames by kind (duplicates included).
    pub frames: [u64; 2],
    /// Frame bytes by kind.
    pub bytes: [u64; 2],
    /// Frames without a readable stamp, or of the wrong kind.
    pub bad_frames: u64,
    /// Duplicate frames.
    pub duplicates: u64,
}

impl RecvStats {
    /// Accounts a received frame of `kind` at `now_us` on the run's clock.
    pub fn on_frame(&mut self, kind: Kind, data: &[u8], now_us: u64) -> Result<Stamp, StampError> {
        let stamp = match Stamp::read(data, kind.stamp_offset()) {
            Ok(s) if s.key.kind == kind && s.seq < MAX_SEQ => s,
            Ok(_) => {
                self.bad_frames += 1;
                return Err(StampError::Kind);
            }
            Err(e) => {
                self.bad_frames += 1;
                return Err(e);
            }
        };
        self.frames[kind.index()] += 1;
        self.bytes[kind.index()] += data.len() as u64;
        if self.streams.entry(stamp.key).or_default().record(stamp.seq) {
            self.delay[kind.index()].record(now_us.saturating_sub(stamp.sent_us));
        } else {
            self.duplicates += 1;
        }
        Ok(stamp)
    }

    /// Adds another session's counts (streams are merged per key).
    pub fn merge_totals(&mut self, o: &RecvStats) {
        for i in 0..2 {
            self.delay[i].merge(&o.delay[i]);
            self.frames[i] += o.frames[i];
            self.bytes[i] += o.bytes[i];
        }
        self.bad_frames += o.bad_frames;
        self.duplicates += o.duplicates;
    }
}

/// Frames expected and received for one stream, summed over its receivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamLoss {
    /// Frames the receivers should have got.
    pub expected: u64,
    /// Distinct frames they got.
    pub received: u64,
    /// Receivers that got none at all.
    pub receivers_missing: u64,
}

impl StreamLoss {
    /// Lost fraction (0 when nothing was expected).
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            1.0 - self.received as f64 / self.expected as f64
        }
    }
}

/// Loss per stream: every receiver should get every frame of every stream
/// of every other publisher in its conference, from frame 0 (publishing
/// starts only once every session is negotiated). With simulcast, a
/// receiver is held only to the layers it got at all, from the first frame
/// it got of each (switching layers is the SFU's choice); a receiver that got
/// no layer of a source is charged the lowest layer.
pub fn stream_loss<'a>(
    receivers: impl IntoIterator<Item = (&'a RecvStats, &'a [u32])>,
    sent: &BTreeMap<StreamKey, u32>,
    simulcast: bool,
) -> BTreeMap<StreamKey, StreamLoss> {
    let mut out: BTreeMap<StreamKey, StreamLoss> = BTreeMap::new();
    for (recv, sources) in receivers {
        for &source in sources {
            let streams = sent.range(
                StreamKey {
                    source,
                    kind: Kind::Audio,
                    layer: 0,
                }..=StreamKey {
                    source,
                    kind: Kind::Video,
                    layer: u8::MAX,
                },
            );
            let mut video_layers_got = 0;
            for (key, &n) in streams {
                let layered = simulcast && key.kind == Kind::Video;
                match recv.streams.get(key) {
                    Some(s) => {
                        let from = if layered { s.first().unwrap_or(0) } else { 0 };
                        let entry = out.entry(*key).or_default();
                        entry.expected += u64::from(n.saturating_sub(from));
                        entry.received += s.count_below(n);
                        if key.kind == Kind::Video {
                            video_layers_got += 1;
                        }
                    }
                    None if layered => {}
                    None => {
                        let entry = out.entry(*key).or_default();
                        entry.expected += u64::from(n);
                        entry.receivers_missing += 1;
                    }
                }
            }
            if simulcast && video_layers_got == 0 {
                let lowest = StreamKey {
                    source,
                    kind: Kind::Video,
                    layer: 0,
                };
                if let Some(&n) = sent.get(&lowest) {
                    let e = out.entry(lowest).or_default();
                    e.expected += u64::from(n);
                    e.receivers_missing += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::STAMP_LEN;

    fn key(source: u32, kind: Kind, layer: u8) -> StreamKey {
        StreamKey {
            source,
            kind,
            layer,
        }
    }

    fn frame(k: StreamKey, seq: u32, sent_us: u64) -> Vec<u8> {
        let mut f = vec![0u8; k.kind.stamp_offset() + STAMP_LEN + 4];
        Stamp {
            key: k,
            seq,
            sent_us,
        }
        .write(&mut f, k.kind.stamp_offset());
        f
    }

    #[test]
    fn recv_stream_counts_unique_below() {
        let mut s = RecvStream::default();
        for seq in [5, 0, 64, 65, 200, 5] {
            s.record(seq);
        }
        assert_eq!(s.unique(), 5);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.first(), Some(0));
        assert_eq!(s.count_below(0), 0);
        assert_eq!(s.count_below(6), 2);
        assert_eq!(s.count_below(65), 3);
        assert_eq!(s.count_below(66), 4);
        assert_eq!(s.count_below(1000), 5);
    }

    #[test]
    fn delays_come_from_stamps_and_duplicates_are_not_timed_twice() {
        let mut r = RecvStats::default();
        let v = key(1, Kind::Video, 0);
        r.on_frame(Kind::Video, &frame(v, 0, 1_000), 3_000).unwrap();
        r.on_frame(Kind::Video, &frame(v, 1, 2_000), 7_000).unwrap();
        r.on_frame(Kind::Video, &frame(v, 1, 2_000), 9_000).unwrap();
        assert_eq!(r.delay[Kind::Video.index()].count(), 2);
        assert_eq!(r.delay[Kind::Video.index()].max(), 5_000);
        assert_eq!(r.frames[Kind::Video.index()], 3);
        assert_eq!(r.duplicates, 1);
        // Clock never runs backwards into negative delays.
        r.on_frame(Kind::Video, &frame(v, 2, 10_000), 9_000)
            .unwrap();
        assert_eq!(r.delay[Kind::Video.index()].quantile(0.0), 0);
    }

    #[test]
    fn foreign_and_mislabelled_frames_are_counted_bad() {
        let mut r = RecvStats::default();
        assert!(r.on_frame(Kind::Audio, &[0u8; 50], 0).is_err());
        let v = key(1, Kind::Video, 0);
        // A video stamp read as audio: wrong offset ⇒ no magic.
        assert!(r.on_frame(Kind::Audio, &frame(v, 0, 0), 0).is_err());
        assert_eq!(r.bad_frames, 2);
        assert!(r.streams.is_empty());
    }

    #[test]
    fn loss_is_expected_versus_received_per_stream() {
        let (a0, v0, a1, v1) = (
            key(0, Kind::Audio, 0),
            key(0, Kind::Video, 0),
            key(1, Kind::Audio, 0),
            key(1, Kind::Video, 0),
        );
        let sent: BTreeMap<_, _> = [(a0, 100), (v0, 60), (a1, 100), (v1, 60)].into();
        // Receiver A hears source 0 fully but misses 6 video frames of it, and
        // got nothing at all from source 1.
        let mut ra = RecvStats::default();
        for s in 0..100 {
            ra.on_frame(Kind::Audio, &frame(a0, s, 0), 0).unwrap();
        }
        for s in (0..60).filter(|s| s % 10 != 3) {
            ra.on_frame(Kind::Video, &frame(v0, s, 0), 0).unwrap();
        }
        // A frame past what was sent (a late count) is not held against anyone.
        ra.on_frame(Kind::Video, &frame(v0, 60, 0), 0).unwrap();
        let sources = [0u32, 1];
        let loss = stream_loss([(&ra, &sources[..])], &sent, false);
        assert_eq!(
            loss[&a0],
            StreamLoss {
                expected: 100,
                received: 100,
                receivers_missing: 0
            }
        );
        assert_eq!(
            loss[&v0],
            StreamLoss {
                expected: 60,
                received: 54,
                receivers_missing: 0
            }
        );
        assert!((loss[&v0].ratio() - 0.1).abs() < 1e-9);
        assert_eq!(loss[&a1].receivers_missing, 1);
        assert_eq!(loss[&v1].ratio(), 1.0);
    }

    #[test]
    fn simulcast_holds_receivers_to_the_layers_they_got() {
        let (l0, l1, l2) = (
            key(7, Kind::Video, 0),
            key(7, Kind::Video, 1),
            key(7, Kind::Video, 2),
        );
        let sent: BTreeMap<_, _> = [(l0, 90), (l1, 90), (l2, 90)].into();
        // Receiver got layer 2 from frame 30 on, all of it.
        let mut r = RecvStats::default();
        for s in 30..90 {
            r.on_frame(Kind::Video, &frame(l2, s, 0), 0).unwrap();
        }
        // Another got nothing.
        let none = RecvStats::default();
        let src = [7u32];
        let loss = stream_loss([(&r, &src[..]), (&none, &src[..])], &sent, true);
        assert_eq!(
            loss[&l2],
            StreamLoss {
                expected: 60,
                received: 60,
                receivers_missing: 0
            }
        );
        assert_eq!(
            loss[&l0],
            StreamLoss {
                expected: 90,
                received: 0,
                receivers_missing: 1
            }
        );
        assert!(!loss.contains_key(&l1));
    }
}
