//! Media counters resolved once per worker (no label lookup per packet),
//! and the process's CPU time.

use super::*;

/// The media counters of every (direction, kind), resolved once: the
/// per-packet path increments atomics instead of looking labels up.
#[derive(Clone)]
pub struct MediaCounters {
    packets: [Counter; 4],
    bytes: [Counter; 4],
    frames: [Counter; 4],
}

impl MediaCounters {
    /// Resolves the counters of `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let label = |i: usize| Media {
            direction: if i < 2 { Direction::In } else { Direction::Out },
            kind: if i.is_multiple_of(2) {
                KindLabel::Audio
            } else {
                KindLabel::Video
            },
        };
        // One lookup per statement: a family's guard must not be held twice.
        let resolve = |f: &Family<Media, Counter>| {
            std::array::from_fn(|i| f.get_or_create(&label(i)).clone())
        };
        Self {
            packets: resolve(&metrics.packets),
            bytes: resolve(&metrics.media_bytes),
            frames: resolve(&metrics.frames),
        }
    }

    /// Counts one packet of `payload` bytes; `frame` if it ends a frame.
    pub fn count(&self, direction: Direction, kind: Kind, payload: usize, frame: bool) {
        let i = usize::from(direction == Direction::Out) * 2 + usize::from(kind == Kind::Video);
        self.packets[i].inc();
        self.bytes[i].inc_by(payload as u64);
        if frame {
            self.frames[i].inc();
        }
    }
}

/// User + system CPU seconds of this process, from /proc/self/stat.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    geomesh_core::proc_stat::cpu_seconds(&stat)
}
