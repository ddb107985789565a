//! One forwarded RTP packet and what a subscriber's leg does with it.
//!
//! The media loop turns every incoming RTP packet, from a local publisher's
//! `Rtc` (str0m RTP mode) or from an octo link, into an [`InPacket`].
//! [`OutForward`], one per (subscriber, source), decides whether this leg
//! sends it (only the simulcast layer the leg takes), rewrites sequence
//! number and timestamp so the subscriber sees one continuous stream
//! whatever the input does (layer switches, a publisher behind an octo link
//! that reconnected), maps the payload type to the subscriber's, and writes
//! it to the subscriber's `StreamTx`. Nothing here allocates per packet.

use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite};

use crate::layers::{LayerInfo, LayerSwitch, SeqRewriter, Verdict};

/// What codec an incoming packet carries, as far as its origin tells.
#[derive(Debug, Clone, Copy)]
pub enum CodecRef {
    /// A local publisher's negotiated parameters (exact match, fmtp included).
    Local(PayloadParams),
    /// A source announced over an octo link: codec and clock rate.
    Remote {
        /// The codec.
        codec: Codec,
        /// Its RTP clock rate.
        clock_rate: u32,
    },
}

impl CodecRef {
    /// The codec.
    pub fn codec(&self) -> Codec {
        match self {
            CodecRef::Local(p) => p.spec().codec,
            CodecRef::Remote { codec, .. } => *codec,
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        match self {
            CodecRef::Local(p) => p.spec().clock_rate.get(),
            CodecRef::Remote { clock_rate, .. } => *clock_rate,
        }
    }
}

/// One incoming RTP packet, whatever its origin.
#[derive(Debug, Clone)]
pub struct InPacket {
    /// Simulcast layer (0 = lowest, or the only one).
    pub layer: u8,
    /// The SSRC it arrived with.
    pub ssrc: u32,
    /// Extended sequence number in that SSRC's stream.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// RTP marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type it arrived with (key of the per-leg PT cache).
    pub pt: u8,
    /// Its codec.
    pub codec: CodecRef,
    /// RTP payload (shared by every leg: no copy).
    pub payload: Arc<[u8]>,
    /// RFC 6464 audio level (−dBov, 0 loudest … −127) and voice activity.
    pub audio_level: Option<(i8, Option<bool>)>,
    /// When it reached this edge: the wallclock str0m puts in sender reports.
    pub arrival: Instant,
    /// Starts a video keyframe.
    pub keyframe: bool,
    /// Video (NACK-able) or audio.
    pub video: bool,
    /// How many simulcast layers the source has (1: not simulcast).
    pub layers: u8,
}

impl InPacket {
    /// Whether the payload starts a keyframe of its codec.
    pub fn detect_keyframe(codec: Codec, payload: &[u8]) -> bool {
        match codec {
            Codec::Vp8 => str0m::format::detect_vp8_keyframe(payload),
            Codec::H264 => str0m::format::detect_h264_keyframe(payload),
            _ => false,
        }
    }
}

/// Why a leg did not send a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not among the subscriber's last-N (or audio of a quiet participant).
    NotForwarded,
    /// Switched back on, waiting for a keyframe.
    AwaitingKeyframe,
    /// Another simulcast layer than the one this leg takes.
    OtherLayer,
    /// Older than the leg's last switch point, or waiting for a keyframe.
    Stale,
    /// The subscriber negotiated no matching codec.
    CodecMismatch,
    /// The subscriber's m-line has no send stream (not negotiated yet).
    NoStream,
}

impl Skip {
    /// The drop reason to count, or `None` for the skips that are simply
    /// how forwarding works (not selected, another layer, waiting for a
    /// keyframe).
    pub fn counted_reason(self) -> Option<&'static str> {
        match self {
            Skip::NotForwarded | Skip::OtherLayer | Skip::AwaitingKeyframe => None,
            Skip::Stale => Some("stale"),
            Skip::CodecMismatch => Some("codec_mismatch"),
            Skip::NoStream => Some("no_stream"),
        }
    }
}

/// One subscriber's leg of one source.
#[derive(Debug)]
pub struct OutForward {
    /// Packets flow (last-N may switch a track off without renegotiating).
    pub active: bool,
    /// A single-layer video track switched back on: its decoder state is
    /// stale, so nothing flows until the next keyframe (re-requested by the
    /// media loop while this is set).
    pub awaiting_keyframe: bool,
    /// Which simulcast layer this leg forwards, switching at keyframes.
    pub switch: LayerSwitch,
    /// Cached PT mapping: input PT → the subscriber's PT.
    pt: Option<(u8, Pt)>,
    rewriter: SeqRewriter,
    /// VP8 PictureID / TL0PICIDX continuity across inputs.
    vp8: crate::vp8::Vp8Ids,
    /// The m-line whose `StreamTx` this leg has configured (once per stream:
    /// str0m's `set_rtx_cache` empties the cache it replaces).
    configured: Option<Mid>,
}

/// How long a leg keeps sent video for retransmission: what libwebrtc's
/// sender keeps (its packet history holds ≥ 1 s, more only past 333 ms
/// RTT). str0m's default of 3 s held ~500 entries of ~440 bytes per video
/// leg at 1.5 Mbit/s, most of an edge's memory per session.
pub const RTX_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(1);
/// The most packets a leg keeps for retransmission, whatever the bitrate
/// (1 s of a 9 Mbit/s stream).
pub const RTX_CACHE_PACKETS: usize = 1024;

impl Default for OutForward {
    fn default() -> Self {
        // Random starting points (RFC 3550 §5.1), below 2^15 so the first
        // packets never need a rollover counter.
        let mut r = [0u8; 6];
        // The OS random source failing is not recoverable for a media server.
        getrandom::fill(&mut r).expect("OS random source");
        Self {
            active: false,
            awaiting_keyframe: false,
            switch: LayerSwitch::new(),
            pt: None,
            rewriter: SeqRewriter::new(
                u16::from_be_bytes([r[0], r[1]]) & 0x7fff,
                u32::from_be_bytes([r[2], r[3], r[4], r[5]]),
            ),
            vp8: Default::default(),
            configured: None,
        }
    }
}

impl OutForward {
    /// Sends `p` to the subscriber's m-line `mid` if this leg wants it.
    /// The caller drains the `Rtc` afterwards.
    pub fn write(&mut self, rtc: &mut Rtc, mid: Mid, p: &InPacket) -> Result<(), Skip> {
        if !self.active {
            return Err(Skip::NotForwarded);
        }
        // Another stream on a single-layer leg (a remote source's edge
        // switched layers, a publisher restarted): a decoder needs its
        // keyframe before its delta frames.
        if p.video
            && p.layers <= 1
            && !p.keyframe
            && self.rewriter.input_ssrc().is_some_and(|s| s != p.ssrc)
        {
            self.awaiting_keyframe = true;
        }
        if self.awaiting_keyframe && p.layers <= 1 {
            if !p.keyframe {
                return Err(Skip::AwaitingKeyframe);
            }
            self.awaiting_keyframe = false;
        }
        // A single-layer source (or a remote one: its edge forwards one
        // layer) passes as it is; simulcast layers switch at keyframes.
        if p.layers > 1 {
            if self.switch.accept(usize::from(p.layer), p.keyframe) == Verdict::Drop {
                return Err(Skip::OtherLayer);
            }
            // The switch starts a layer at its keyframe only: nothing more
            // to wait for (left set, the leg would ask for keyframes forever).
            self.awaiting_keyframe = false;
        }
        let pt = match self.pt {
            Some((i, o)) if i == p.pt => o,
            _ => {
                let o = match_pt(rtc, &p.codec).ok_or(Skip::CodecMismatch)?;
                self.pt = Some((p.pt, o));
                o
            }
        };
        // Another input starts here (a simulcast switch, or another stream).
        let new_input = self.rewriter.input_ssrc().is_some_and(|s| s != p.ssrc);
        let (seq, ts) = self
            .rewriter
            .rewrite(p.ssrc, p.seq, p.ts, p.arrival, p.codec.clock_rate())
            .ok_or(Skip::Stale)?;
        let vp8 = (p.video && p.codec.codec() == Codec::Vp8)
            .then(|| self.vp8.patch(&p.payload, new_input))
            .flatten();
        let mut ext = ExtensionValues::default();
        if let Some((level, voice)) = p.audio_level {
            ext.audio_level = Some(level);
            ext.voice_activity = voice;
        }
        let mut api = rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).ok_or(Skip::NoStream)?;
        if self.configured != Some(mid) {
            self.configured = Some(mid);
            // Forwarded media is never held back by str0m's pacer: the edge
            // adapts by choosing layers, and a queue only adds delay (BWE
            // still estimates from TWCC feedback and probes with padding).
            tx.set_unpaced(true);
            tx.set_rtx_cache(
                RTX_CACHE_PACKETS,
                RTX_CACHE_AGE,
                // str0m's default: stop resending past 15 % of the stream.
                Some(0.15),
            );
        }
        let mut write = RtpWrite::new(pt, seq.into(), ts, p.arrival, p.payload.clone())
            .marker(p.marker)
            .ext_vals(ext)
            .nackable(p.video);
        if let Some(patch) = vp8 {
            write = write.vp8_patch(patch);
        }
        tx.write_rtp(write);
        Ok(())
    }
}

/// The subscriber's payload type for a codec.
fn match_pt(rtc: &Rtc, codec: &CodecRef) -> Option<Pt> {
    let config = rtc.codec_config();
    match codec {
        CodecRef::Local(params) => config.match_params(*params).map(|p| p.pt()),
        CodecRef::Remote { codec, clock_rate } => config
            .params()
            .iter()
            .find(|p| p.spec().codec == *codec && p.spec().clock_rate.get() == *clock_rate)
            .map(|p| p.pt()),
    }
}

/// What the edge measures of one local source's simulcast layers: the
/// input of [`crate::layers::pick_layer`].
#[derive(Debug, Clone, Default)]
pub struct LayerStats {
    layers: Vec<Measured>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    info: LayerInfo,
    window_start: Option<Instant>,
    window_bytes: u64,
    last_packet: Option<Instant>,
}

/// Bitrates are measured over windows of this length.
const WINDOW: std::time::Duration = std::time::Duration::from_millis(1000);
/// A layer without packets this long is inactive (the publisher paused it).
const INACTIVE_AFTER: std::time::Duration = std::time::Duration::from_millis(1500);

impl LayerStats {
    /// Accounts one packet of `layer` (payload bytes; height read from VP8 keyframes).
    pub fn on_packet(&mut self, p: &InPacket) {
        let i = usize::from(p.layer);
        if i >= 8 {
            return;
        }
        if self.layers.len() <= i {
            self.layers.resize(i + 1, Measured::default());
        }
        let m = &mut self.layers[i];
        m.last_packet = Some(p.arrival);
        m.info.active = true;
        let start = *m.window_start.get_or_insert(p.arrival);
        m.window_bytes += p.payload.len() as u64;
        let elapsed = p.arrival.saturating_duration_since(start);
        if elapsed >= WINDOW {
            m.info.bitrate_bps = m.window_bytes * 8 * 1000 / (elapsed.as_millis() as u64).max(1);
            m.window_start = Some(p.arrival);
            m.window_bytes = 0;
        }
        if p.keyframe
            && p.codec.codec() == Codec::Vp8
            && let Some(h) = crate::vp8::keyframe_height(&p.payload)
        {
            m.info.height = h;
        }
    }

    /// The layers as of `now`, lowest first.
    pub fn infos(&self, now: Instant, out: &mut Vec<LayerInfo>) {
        out.clear();
        out.extend(self.layers.iter().map(|m| {
            LayerInfo {
                active: m
                    .last_packet
                    .is_some_and(|t| now.saturating_duration_since(t) < INACTIVE_AFTER),
                ..m.info
            }
        }));
    }

    /// Heights of the layers seen so far (0 = unknown).
    pub fn heights(&self) -> impl Iterator<Item = u16> + '_ {
        self.layers.iter().map(|m| m.info.height)
    }
}
