//! A session's media as RTP packets: its `Rtc` runs in str0m's RTP mode,
//! so publishers send the packets a browser sends ([`crate::rtp`]: VP8 with
//! libwebrtc's descriptor and PictureID) and receivers rebuild frames from
//! packets themselves. str0m still does ICE, DTLS, SRTP, header extensions
//! (mid, rid), RTCP, NACK and RTX: a repaired packet reaches
//! [`RtpIo::on_packet`] with its original sequence number.
//!
//! str0m's frame API would packetize VP8 with a one-byte descriptor and no
//! PictureID, which no browser sends and in which mediasoup finds no
//! keyframe (it never forwards such a stream).

use std::collections::HashMap;
use std::time::Instant;

use str0m::Rtc;
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo};

use crate::rtp::{Packetizer, Reassembler};
use crate::source::OutFrame;
use crate::stamp::Kind;

/// A session's packetizers (per kind and simulcast layer) and reassemblers
/// (per incoming SSRC).
#[derive(Default)]
pub struct RtpIo {
    send: HashMap<(Kind, u8), Packetizer>,
    recv: HashMap<u32, Reassembler>,
}

/// How every load-generator session configures its `Rtc`: Opus and VP8,
/// as the edge and the peers are configured, in RTP mode (this module
/// packetizes and reassembles).
pub fn rtc_config(crypto: std::sync::Arc<str0m::crypto::CryptoProvider>) -> str0m::RtcConfig {
    Rtc::builder()
        .set_crypto_provider(crypto)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .set_rtp_mode(true)
}

/// The `Rtc` has no send stream for the frame's m-line (and rid): not
/// negotiated (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no send stream for the frame's m-line")]
pub struct NoStream;

impl RtpIo {
    /// Packetizes `f` and writes its packets to `rtc`'s stream of `mid`
    /// (and simulcast `rid`) with payload type `pt`. `seed` varies the
    /// first sequence number between sessions.
    pub fn write_frame(
        &mut self,
        rtc: &mut Rtc,
        (mid, rid, pt): (Mid, Option<Rid>, Pt),
        f: &OutFrame,
        seed: u64,
        now: Instant,
    ) -> Result<(), NoStream> {
        let mut api = rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, rid).ok_or(NoStream)?;
        let (kind, layer) = (f.key.kind, f.key.layer);
        let packetizer = self.send.entry((kind, layer)).or_insert_with(|| {
            let first = (seed as u16) ^ (u16::from(layer) << 8) ^ kind as u16;
            Packetizer::new(kind, 0, first)
        });
        packetizer.payloads(&f.data, |seq, marker, payload| {
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), f.rtp_time as u32, now, payload)
                    .marker(marker)
                    .nackable(kind == Kind::Video),
            );
        });
        Ok(())
    }

    /// An incoming packet of `kind`; the frame it completes, if any.
    pub fn on_packet(&mut self, kind: Kind, p: &RtpPacket) -> Option<Vec<u8>> {
        self.recv.entry(*p.header.ssrc).or_default().push_kind(
            kind,
            p.header.sequence_number,
            p.header.marker,
            &p.payload,
        )
    }
}
