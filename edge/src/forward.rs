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

use crate::layers::SeqRewriter;

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
    /// Metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::OtherLayer => "other_layer",
            Skip::Stale => "stale",
            Skip::CodecMismatch => "codec_mismatch",
            Skip::NoStream => "no_stream",
        }
    }
}

/// One subscriber's leg of one source.
#[derive(Debug)]
pub struct OutForward {
    /// The layer this leg takes.
    pub layer: u8,
    /// Cached PT mapping: input PT → the subscriber's PT.
    pt: Option<(u8, Pt)>,
    rewriter: SeqRewriter,
}

impl Default for OutForward {
    fn default() -> Self {
        // Random starting points (RFC 3550 §5.1), below 2^15 so the first
        // packets never need a rollover counter.
        let mut r = [0u8; 6];
        // The OS random source failing is not recoverable for a media server.
        getrandom::fill(&mut r).expect("OS random source");
        Self {
            layer: 0,
            pt: None,
            rewriter: SeqRewriter::new(
                u16::from_be_bytes([r[0], r[1]]) & 0x7fff,
                u32::from_be_bytes([r[2], r[3], r[4], r[5]]),
            ),
        }
    }
}

impl OutForward {
    /// Sends `p` to the subscriber's m-line `mid` if this leg wants it.
    /// The caller drains the `Rtc` afterwards.
    pub fn write(&mut self, rtc: &mut Rtc, mid: Mid, p: &InPacket) -> Result<(), Skip> {
        if p.layer != self.layer {
            return Err(Skip::OtherLayer);
        }
        let pt = match self.pt {
            Some((i, o)) if i == p.pt => o,
            _ => {
                let o = match_pt(rtc, &p.codec).ok_or(Skip::CodecMismatch)?;
                self.pt = Some((p.pt, o));
                o
            }
        };
        let (seq, ts) = self
            .rewriter
            .rewrite(p.ssrc, p.seq, p.ts, p.arrival, p.codec.clock_rate())
            .ok_or(Skip::Stale)?;
        let mut ext = ExtensionValues::default();
        if let Some((level, voice)) = p.audio_level {
            ext.audio_level = Some(level);
            ext.voice_activity = voice;
        }
        let mut api = rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).ok_or(Skip::NoStream)?;
        tx.write_rtp(
            RtpWrite::new(pt, seq.into(), ts, p.arrival, p.payload.clone())
                .marker(p.marker)
                .ext_vals(ext)
                .nackable(p.video),
        );
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
