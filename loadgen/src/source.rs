//! What one publisher sends and when: VP8 at 30 fps (one or three simulcast
//! layers) and optionally Opus every 20 ms, on a fixed schedule from a start
//! instant. Pure: time is passed in.

use std::time::{Duration, Instant};

use crate::opus::{self, OpusEncoder};
use crate::stamp::{Clock, Kind, Stamp, StreamKey};
use crate::vp8::{Vp8Encoder, Vp8Params};

/// Simulcast rids, lowest layer first (180p, 360p, 720p).
pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// A frame due more than this late is skipped rather than sent in a burst
/// (an encoder on a busy machine drops frames the same way).
pub const MAX_LATENESS: Duration = Duration::from_millis(100);

/// Frames of one kind produced by one `poll` at most (bounds catch-up).
const MAX_CATCH_UP: usize = 16;

/// What publishers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaConfig {
    /// Top video layer bitrate, kbit/s.
    pub video_kbps: u32,
    /// Three layers, 180p / 360p / 720p (see [`layers`]).
    pub simulcast: bool,
    /// Send Opus too.
    pub audio: bool,
}

/// One video layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSpec {
    /// rid (empty without simulcast).
    pub rid: &'static str,
    /// Encoder parameters.
    pub params: Vp8Params,
}

/// libwebrtc's target bitrates of a 180p and a 360p simulcast layer below
/// a higher one, kbit/s (`kSimulcastFormats` in its `simulcast.cc`): what
/// Chrome sends on the lower layers of a 720p camera.
pub const LOWER_LAYER_KBPS: [u32; 2] = [150, 500];

/// The video layers a configuration sends, lowest first: with simulcast,
/// 180p and 360p at libwebrtc's targets (at most ¼ and ½ of the top
/// layer) and 720p at `video_kbps`.
pub fn layers(cfg: &MediaConfig) -> Vec<LayerSpec> {
    if cfg.simulcast {
        let k = cfg.video_kbps;
        vec![
            LayerSpec {
                rid: RIDS[0],
                params: Vp8Params::new(320, 180, LOWER_LAYER_KBPS[0].min(k / 4).max(1)),
            },
            LayerSpec {
                rid: RIDS[1],
                params: Vp8Params::new(640, 360, LOWER_LAYER_KBPS[1].min(k / 2).max(1)),
            },
            LayerSpec {
                rid: RIDS[2],
                params: Vp8Params::new(1280, 720, k.max(1)),
            },
        ]
    } else {
        vec![LayerSpec {
            rid: "",
            params: Vp8Params::new(1280, 720, cfg.video_kbps.max(1)),
        }]
    }
}

/// A frame ready to write.
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// Stream and frame number (also in the stamp).
    pub key: StreamKey,
    /// Frame number in its stream.
    pub seq: u32,
    /// The frame bytes.
    pub data: Vec<u8>,
    /// RTP time in the codec clock (90 kHz video, 48 kHz audio).
    pub rtp_time: u64,
    /// A VP8 keyframe.
    pub keyframe: bool,
}

/// Where in the first frame interval publisher `source` starts: spread
/// evenly over 33 ms by a fixed hash of the number.
pub fn phase_offset(source: u32) -> Duration {
    let h = u64::from(source).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    Duration::from_micros(h % 33_333)
}

struct Layer {
    enc: Vp8Encoder,
    seq: u32,
}

/// The media schedule of one publisher.
pub struct PublisherMedia {
    source: u32,
    start: Instant,
    fps: u32,
    video: Vec<Layer>,
    video_ticks: u64,
    audio: Option<(OpusEncoder, u32)>,
    audio_ticks: u64,
    /// Audio frames per packet: 1 while talking, [`opus::DTX_FRAMES`] when silent.
    audio_step: u64,
    skipped: u64,
}

impl PublisherMedia {
    /// A publisher numbered `source` whose first frames are due at `start`.
    /// (Callers stagger publishers with [`phase_offset`]: real cameras are not
    /// frame-aligned, and aligned keyframe bursts would overflow socket buffers.)
    pub fn new(source: u32, cfg: &MediaConfig, seed: u64, start: Instant) -> Self {
        let video: Vec<Layer> = layers(cfg)
            .iter()
            .enumerate()
            .map(|(i, l)| Layer {
                enc: Vp8Encoder::new(l.params, seed ^ (0x1000 + i as u64)),
                seq: 0,
            })
            .collect();
        let fps = video.first().map_or(30, |l| l.enc.params().fps);
        Self {
            source,
            start,
            fps,
            video,
            video_ticks: 0,
            audio: cfg.audio.then(|| (OpusEncoder::new(seed ^ 0xa0d10), 0)),
            audio_ticks: 0,
            audio_step: 1,
            skipped: 0,
        }
    }

    /// Talking (Opus every 20 ms) or silent (Opus DTX: a comfort-noise
    /// packet per [`opus::DTX_FRAMES`] frames).
    pub fn set_talking(&mut self, talking: bool) {
        self.audio_step = if talking { 1 } else { opus::DTX_FRAMES };
    }

    /// Restarts the schedule at `start` (frame numbers go on).
    pub fn restart(&mut self, start: Instant) {
        self.start = start;
        self.video_ticks = 0;
        self.audio_ticks = 0;
    }

    fn video_due(&self) -> Instant {
        self.start + Duration::from_nanos(self.video_ticks * 1_000_000_000 / u64::from(self.fps))
    }

    fn audio_due(&self) -> Instant {
        self.start + Duration::from_millis(self.audio_ticks * opus::FRAME_MS)
    }

    /// When the next frame is due.
    pub fn next_due(&self) -> Instant {
        let v = self.video_due();
        if self.audio.is_some() {
            v.min(self.audio_due())
        } else {
            v
        }
    }

    /// Frames skipped because they were due too long ago.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Makes the next frame of `layer` (every layer if `None`) a keyframe.
    pub fn request_keyframe(&mut self, layer: Option<usize>) {
        for (i, l) in self.video.iter_mut().enumerate() {
            if layer.is_none_or(|x| x == i) {
                l.enc.request_keyframe();
            }
        }
    }

    /// Appends every frame due at `now` to `out`, stamped with `now`.
    pub fn poll(&mut self, now: Instant, clock: &Clock, out: &mut Vec<OutFrame>) {
        let sent_us = clock.micros(now);
        for _ in 0..MAX_CATCH_UP {
            let due = self.video_due();
            if due > now {
                break;
            }
            let rtp_time = self.video_ticks * 90_000 / u64::from(self.fps);
            self.video_ticks += 1;
            if now.saturating_duration_since(due) > MAX_LATENESS {
                self.skipped += 1;
                continue;
            }
            for (i, l) in self.video.iter_mut().enumerate() {
                let key = StreamKey {
                    source: self.source,
                    kind: Kind::Video,
                    layer: i as u8,
                };
                let stamp = Stamp {
                    key,
                    seq: l.seq,
                    sent_us,
                };
                let (data, keyframe) = l.enc.encode(&stamp);
                out.push(OutFrame {
                    key,
                    seq: l.seq,
                    data,
                    rtp_time,
                    keyframe,
                });
                l.seq += 1;
            }
        }
        if self.audio.is_none() {
            return;
        }
        for _ in 0..MAX_CATCH_UP {
            let due = self.audio_due();
            if due > now {
                break;
            }
            let rtp_time = self.audio_ticks * opus::TICKS_PER_FRAME;
            self.audio_ticks += self.audio_step;
            if now.saturating_duration_since(due) > MAX_LATENESS {
                self.skipped += 1;
                continue;
            }
            let key = StreamKey {
                source: self.source,
                kind: Kind::Audio,
                layer: 0,
            };
            // Checked above: audio is configured.
            let (enc, seq) = self.audio.as_mut().expect("audio configured");
            let stamp = Stamp {
                key,
                seq: *seq,
                sent_us,
            };
            out.push(OutFrame {
                key,
                seq: *seq,
                data: if self.audio_step > 1 {
                    enc.encode_silence(&stamp)
                } else {
                    enc.encode(&stamp)
                },
                rtp_time,
                keyframe: false,
            });
            *seq += 1;
        }
        // If the loop fell far behind, resynchronise rather than spin later.
        while self.video_due() + MAX_LATENESS < now {
            self.video_ticks += 1;
            self.skipped += 1;
        }
        while self.audio.is_some() && self.audio_due() + MAX_LATENESS < now {
            self.audio_ticks += 1;
            self.skipped += 1;
        }
    }

    /// Frames sent so far per stream (the next sequence numbers).
    pub fn sent(&self) -> Vec<(StreamKey, u32)> {
        let mut v: Vec<(StreamKey, u32)> = self
            .video
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    StreamKey {
                        source: self.source,
                        kind: Kind::Video,
                        layer: i as u8,
                    },
                    l.seq,
                )
            })
            .collect();
        if let Some((_, seq)) = &self.audio {
            v.push((
                StreamKey {
                    source: self.source,
                    kind: Kind::Audio,
                    layer: 0,
                },
                *seq,
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(simulcast: bool, audio: bool) -> MediaConfig {
        MediaConfig {
            video_kbps: 1200,
            simulcast,
            audio,
        }
    }

    #[test]
    fn one_second_is_30_video_and_50_audio_frames() {
        let t0 = Instant::now();
        let clock = Clock::new(t0);
        let mut m = PublisherMedia::new(4, &cfg(false, true), 1, t0);
        let mut out = Vec::new();
        let mut now = t0;
        // Drive in 5 ms steps for one second (exclusive of the frame due at 1 s).
        while now < t0 + Duration::from_millis(995) {
            m.poll(now, &clock, &mut out);
            now += Duration::from_millis(5);
        }
        let video = out.iter().filter(|f| f.key.kind == Kind::Video).count();
        let audio = out.iter().filter(|f| f.key.kind == Kind::Audio).count();
        assert_eq!((video, audio), (30, 50));
        assert!(out[0].keyframe);
        assert_eq!(m.skipped(), 0);
        let v: Vec<_> = out.iter().filter(|f| f.key.kind == Kind::Video).collect();
        assert_eq!(v[1].rtp_time - v[0].rtp_time, 3000);
        let a: Vec<_> = out.iter().filter(|f| f.key.kind == Kind::Audio).collect();
        assert_eq!(a[1].rtp_time - a[0].rtp_time, 960);
        assert_eq!(m.sent().len(), 2);
    }

    #[test]
    fn simulcast_sends_three_growing_layers_per_tick() {
        let t0 = Instant::now();
        let clock = Clock::new(t0);
        let mut m = PublisherMedia::new(0, &cfg(true, false), 2, t0);
        let mut out = Vec::new();
        for i in 0..300 {
            m.poll(t0 + Duration::from_millis(i * 10), &clock, &mut out);
        }
        let bytes = |layer| -> usize {
            out.iter()
                .filter(|f| f.key.layer == layer)
                .map(|f| f.data.len())
                .sum()
        };
        let (q, h, f) = (bytes(0), bytes(1), bytes(2));
        assert!(q * 3 < h * 2 && h * 3 < f * 2, "{q} {h} {f}");
        let sent = m.sent();
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|(_, n)| *n == sent[0].1));
        assert_eq!(layers(&cfg(true, false))[2].rid, "f");
    }

    #[test]
    fn late_frames_are_skipped_not_burst() {
        let t0 = Instant::now();
        let clock = Clock::new(t0);
        let mut m = PublisherMedia::new(0, &cfg(false, true), 3, t0);
        let mut out = Vec::new();
        m.poll(t0, &clock, &mut out);
        out.clear();
        // Wake two seconds late: at most one catch-up frame per kind within MAX_LATENESS.
        m.poll(t0 + Duration::from_secs(2), &clock, &mut out);
        assert!(
            out.len() <= 2 * (MAX_LATENESS.as_millis() as usize / 20 + 1),
            "{}",
            out.len()
        );
        assert!(m.skipped() > 50);
        assert!(m.next_due() >= t0 + Duration::from_secs(2) - MAX_LATENESS);
    }

    #[test]
    fn a_silent_publisher_sends_opus_dtx() {
        let t0 = Instant::now();
        let clock = Clock::new(t0);
        let mut m = PublisherMedia::new(0, &cfg(false, true), 5, t0);
        m.set_talking(false);
        let mut out = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_millis(1995) {
            m.poll(now, &clock, &mut out);
            now += Duration::from_millis(5);
        }
        let a: Vec<_> = out.iter().filter(|f| f.key.kind == Kind::Audio).collect();
        // One packet per 400 ms, the RTP clock running on through the gaps,
        // frame numbers without gaps (receivers count loss by them).
        assert_eq!(a.len(), 5);
        assert_eq!(a[1].rtp_time - a[0].rtp_time, 20 * 960);
        assert_eq!(
            a.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert!(a.iter().all(|f| f.data.len() < opus::SIZE_RANGE.0));
        assert_eq!(out.iter().filter(|f| f.key.kind == Kind::Video).count(), 60);
    }

    #[test]
    fn publishers_are_staggered_within_a_frame() {
        let offsets: Vec<Duration> = (0..8).map(phase_offset).collect();
        assert!(offsets.iter().all(|o| *o < Duration::from_millis(34)));
        let distinct: std::collections::BTreeSet<_> = offsets.iter().collect();
        assert!(distinct.len() >= 7, "{offsets:?}");
    }

    #[test]
    fn keyframe_request_reaches_the_named_layer() {
        let t0 = Instant::now();
        let clock = Clock::new(t0);
        let mut m = PublisherMedia::new(0, &cfg(true, false), 4, t0);
        let mut out = Vec::new();
        m.poll(t0, &clock, &mut out);
        out.clear();
        m.request_keyframe(Some(1));
        m.poll(t0 + Duration::from_millis(34), &clock, &mut out);
        let keys: Vec<bool> = out.iter().map(|f| f.keyframe).collect();
        assert_eq!(keys, vec![false, true, false]);
    }
}
