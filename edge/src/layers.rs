//! Simulcast layer choice and switching for one (subscriber, video source).
//!
//! **Owns**: which layer a subscriber should get ([`pick_layer`], from its
//! tile height and bandwidth share), when the forwarder may actually move
//! to that layer ([`LayerSwitch`]: only at a keyframe of the new layer),
//! and the rewriting that makes the packets it forwards one continuous RTP
//! stream whatever input they came from ([`SeqRewriter`]: layers, or a
//! stream restarted after an octo reconnect).
//!
//! **Does not own**: bandwidth estimation, layer bitrate measurement,
//! keyframe detection (str0m's `detect_*_keyframe`, used by `forward`) or sending the keyframe
//! request (the caller, rate-limited by the router). Sans-IO: time comes in
//! as `Instant`, no clock is read, and the per-packet functions
//! ([`LayerSwitch::accept`], [`SeqRewriter::rewrite`]) do not allocate.

use std::time::{Duration, Instant};

/// What is known about one simulcast layer of a source. Layers are passed
/// as a slice ordered lowest first (the order of the publisher's `rid`s,
/// typically `q`, `h`, `f`); a layer's position stands for its size when
/// its height is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerInfo {
    /// Frame height in pixels; 0 = unknown.
    pub height: u16,
    /// Measured bitrate; 0 = unknown (not measured yet).
    pub bitrate_bps: u64,
    /// Whether the publisher is currently sending this layer.
    pub active: bool,
}

/// The layer to forward: the highest *eligible* active layer that fits the
/// budget, else the lowest active layer, else `None` (nothing is active).
///
/// - Height: with a tile height `h > 0`, the cap is the lowest active layer
///   whose known height is at least `h` (the smallest layer that fills the
///   tile); layers above the cap are not eligible. When no active layer is
///   that tall, or `max_height` is `None` or 0, every layer is eligible.
///   Heights of 0 never set the cap.
/// - Budget: with `available_bps = Some(b)`, a layer fits when its measured
///   bitrate is known and at most `b`; an unmeasured layer does not fit
///   (it is measured within a second or so, and starting low then going up
///   costs one switch where overshooting costs two). `None` ignores bitrates.
pub fn pick_layer(
    layers: &[LayerInfo],
    max_height: Option<u16>,
    available_bps: Option<u64>,
) -> Option<usize> {
    let lowest = layers.iter().position(|l| l.active)?;
    let cap = max_height
        .filter(|&h| h > 0)
        .and_then(|h| layers.iter().position(|l| l.active && l.height >= h))
        .unwrap_or(layers.len() - 1);
    let fits =
        |l: &LayerInfo| available_bps.is_none_or(|b| l.bitrate_bps != 0 && l.bitrate_bps <= b);
    (0..=cap)
        .rev()
        .find(|&i| layers[i].active && fits(&layers[i]))
        .or(Some(lowest))
}

/// A keyframe of this layer should be requested from the publisher: a
/// switch to it cannot happen before one arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeWanted(pub usize);

/// What to do with one incoming packet of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A packet of the layer being forwarded.
    Forward,
    /// The keyframe that starts the target layer: it is now the forwarded
    /// layer. The output stream changes input here.
    SwitchAndForward,
    /// Not for this subscriber (another layer, or nothing is forwarded).
    Drop,
}

/// Which layer one subscriber gets now (`current`) and which it should get
/// (`target`). Simulcast layers are independent streams, so a switch in
/// either direction happens only at a keyframe of the target layer; until
/// then the current layer keeps flowing (if it stopped, nothing flows, and
/// the switch still happens at the target's next keyframe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerSwitch {
    current: Option<usize>,
    target: Option<usize>,
}

impl LayerSwitch {
    /// Nothing forwarded, nothing wanted.
    pub fn new() -> Self {
        Self::default()
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// The layer wanted.
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// The target while a switch to it waits for its keyframe: the caller
    /// re-requests a keyframe of it if the wait gets long (a request or the
    /// keyframe can be lost).
    pub fn pending(&self) -> Option<usize> {
        self.target.filter(|&t| self.current != Some(t))
    }

    /// Sets the wanted layer. `Some(layer)` that is neither the current
    /// layer nor the already pending target returns the keyframe to request.
    /// Setting the current layer again cancels a pending switch. `None`
    /// stops forwarding at once (the subscriber paused this source or no
    /// layer is active); nothing is requested.
    pub fn set_target(&mut self, target: Option<usize>) -> Option<KeyframeWanted> {
        if target.is_none() {
            self.current = None;
        }
        if target == self.target {
            return None;
        }
        self.target = target;
        self.pending().map(KeyframeWanted)
    }

    /// Classifies one packet of `layer` of the source. `is_keyframe` means
    /// the packet starts a keyframe (`forward::InPacket::detect_keyframe`). Called per
    /// packet, every layer.
    pub fn accept(&mut self, layer: usize, is_keyframe: bool) -> Verdict {
        if Some(layer) == self.current {
            Verdict::Forward
        } else if is_keyframe && Some(layer) == self.target {
            self.current = self.target;
            Verdict::SwitchAndForward
        } else {
            Verdict::Drop
        }
    }
}

/// Timestamp steps on a switch are capped here: a receiver compares RTP
/// timestamps as signed 32-bit differences, so a larger step would look
/// like a step back.
const MAX_TS_STEP: u64 = i32::MAX as u64;

/// Maps one input stream to the output stream.
#[derive(Debug, Clone, Copy)]
struct Input {
    ssrc: u32,
    /// The input's first forwarded extended sequence number: the switch
    /// point. Anything older belongs to before the switch.
    first_seq: u64,
    /// Output = input + offset, both wrapping.
    seq_offset: u64,
    ts_offset: u32,
}

/// The newest (highest sequence) packet sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    ts: u32,
    arrival: Instant,
}

/// Makes one continuous outgoing RTP stream (sequence numbers and
/// timestamps) from packets of several input streams, one at a time.
///
/// - A packet from another SSRC than the current input's starts a new
///   input (the caller feeds only the input it forwards, e.g. after
///   [`LayerSwitch::accept`]): its sequence number becomes last sent + 1
///   and its timestamp last sent + the arrival time elapsed since that
///   packet, in clock units (at least 1, at most 2^31 − 1), so the
///   receiver's jitter buffer and the playout clock see no jump.
/// - Within one input, offsets are fixed: gaps stay gaps (the receiver sees
///   the loss and NACKs; the caller maps NACKed output numbers back with
///   the same offsets), reordered and repeated packets map consistently,
///   and timestamps wrap at 32 bits like the input's.
/// - Packets of the current input older than its switch point are dropped.
/// - Output sequence numbers are extended (u64) and start below 65536, so
///   the output's SRTP rollover counter starts at 0.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    input: Option<Input>,
    sent: Option<Sent>,
    initial_seq: u16,
    initial_ts: u32,
}

impl SeqRewriter {
    /// A rewriter whose first output packet gets `initial_seq` and
    /// `initial_ts` (RFC 3550 suggests random values; the caller picks).
    pub fn new(initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            input: None,
            sent: None,
            initial_seq,
            initial_ts,
        }
    }

    /// The output sequence number and timestamp of a packet, or `None` to
    /// drop it. `ext_seq` is the input's extended sequence number,
    /// `clock_rate` its RTP clock (90 000 for video).
    pub fn rewrite(
        &mut self,
        input_ssrc: u32,
        ext_seq: u64,
        rtp_ts: u32,
        arrival: Instant,
        clock_rate: u32,
    ) -> Option<(u64, u32)> {
        let input = match self.input {
            Some(i) if i.ssrc == input_ssrc => {
                if ext_seq < i.first_seq {
                    return None;
                }
                i
            }
            _ => {
                let (seq, ts) = match self.sent {
                    None => (u64::from(self.initial_seq), self.initial_ts),
                    Some(s) => {
                        let elapsed = arrival.saturating_duration_since(s.arrival);
                        (s.seq + 1, s.ts.wrapping_add(ts_step(elapsed, clock_rate)))
                    }
                };
                let i = Input {
                    ssrc: input_ssrc,
                    first_seq: ext_seq,
                    seq_offset: seq.wrapping_sub(ext_seq),
                    ts_offset: ts.wrapping_sub(rtp_ts),
                };
                self.input = Some(i);
                i
            }
        };
        let seq = ext_seq.wrapping_add(input.seq_offset);
        let ts = rtp_ts.wrapping_add(input.ts_offset);
        if self.sent.is_none_or(|s| seq > s.seq) {
            self.sent = Some(Sent { seq, ts, arrival });
        }
        Some((seq, ts))
    }

    /// Makes the next packet start a new input even if its SSRC is the
    /// current one (a publisher restarted its stream without changing SSRC).
    pub fn reset_input(&mut self) {
        self.input = None;
    }

    /// The SSRC of the input stream forwarded now, if any.
    pub fn input_ssrc(&self) -> Option<u32> {
        self.input.map(|i| i.ssrc)
    }

    /// The newest output `(sequence number, timestamp)` sent, if any.
    pub fn last(&self) -> Option<(u64, u32)> {
        self.sent.map(|s| (s.seq, s.ts))
    }

    /// Maps an output sequence number back to the current input's extended
    /// sequence number (for a NACK from the receiver), if it belongs to the
    /// current input.
    pub fn input_seq(&self, out_seq: u64) -> Option<(u32, u64)> {
        let i = self.input?;
        let first_out = i.first_seq.wrapping_add(i.seq_offset);
        let newest = self.sent?.seq;
        (first_out..=newest)
            .contains(&out_seq)
            .then(|| (i.ssrc, out_seq - first_out + i.first_seq))
    }
}

/// `elapsed` in RTP clock units, at least 1 and at most [`MAX_TS_STEP`].
fn ts_step(elapsed: Duration, clock_rate: u32) -> u32 {
    let units = elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
    let units = u64::try_from(units).unwrap_or(u64::MAX);
    u32::try_from(units.clamp(1, MAX_TS_STEP)).expect("clamped to i32::MAX")
}

#[cfg(test)]
#[path = "layers_test.rs"]
mod tests;
