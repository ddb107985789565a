//! The values control frames carry: handles, source descriptions,
//! subscriptions, capabilities.

use bytes::BufMut;
use geomesh_core::ParticipantId;

use super::reader::{Reader, put_str, put_varint_max};
use super::{
    DecodeError, EncodeError, MAX_CODEC_NAME_LEN, MAX_ID_LEN, MAX_LAYERS, MAX_RID_LEN, varint,
};

/// A conference's number on one link, chosen by the edge that opened it
/// there (each side numbers its own conferences). At most 2^14 − 1, so it
/// takes at most 2 bytes in a media header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceHandle(u16);

impl ConferenceHandle {
    /// The largest handle.
    pub const MAX: u16 = varint::MAX_2 as u16;

    /// `Some` if `v` is in range.
    pub fn new(v: u64) -> Option<Self> {
        (v <= u64::from(Self::MAX)).then_some(Self(v as u16))
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let v = r.varint_max("conference handle", u64::from(Self::MAX))?;
        // In range: checked by varint_max.
        Ok(Self(v as u16))
    }

    pub(crate) fn put(self, buf: &mut impl BufMut) {
        varint::put(buf, u64::from(self.0));
    }
}

/// A source's number on one link, chosen by the edge that announced it
/// there. At most 2^30 − 1, so it takes at most 4 bytes in a media header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceHandle(u32);

impl SourceHandle {
    /// The largest handle.
    pub const MAX: u32 = varint::MAX_4 as u32;

    /// `Some` if `v` is in range.
    pub fn new(v: u64) -> Option<Self> {
        (v <= u64::from(Self::MAX)).then_some(Self(v as u32))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let v = r.varint_max("source handle", u64::from(Self::MAX))?;
        // In range: checked by varint_max.
        Ok(Self(v as u32))
    }

    pub(crate) fn put(self, buf: &mut impl BufMut) {
        varint::put(buf, u64::from(self.0));
    }
}

/// A source's stable id, chosen by the publishing edge and unique on that
/// edge for the source's life. Unlike its handle it survives reconnects, so
/// the receiving edge can recognise a re-announced source. At most 2^62 − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u64);

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio (wire value 0).
    Audio,
    /// Video (wire value 1).
    Video,
}

/// The codec a source is sent with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Codec {
    /// MIME subtype as in SDP: `opus`, `VP8`, `H264` (1–32 printable ASCII bytes).
    pub name: String,
    /// The RTP payload type the packets carry (0–127).
    pub payload_type: u8,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
}

/// One simulcast layer (or the only encoding of a plain source).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layer {
    /// The RID (RFC 8851), if the publisher used one: 1–16 of `[A-Za-z0-9_-]`.
    pub rid: Option<String>,
    /// The layer's media SSRC.
    pub ssrc: u32,
    /// Its retransmission (RTX) SSRC, if any.
    pub rtx_ssrc: Option<u32>,
    /// The layer's frame height in pixels, 0 if unknown or audio.
    pub max_height: u16,
}

/// Everything the receiving edge needs to know about a source.
/// Layers are ordered lowest quality first: the layer index used by
/// [`Subscription`] and keyframe requests is the position in this list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceInfo {
    /// The participant publishing it.
    pub owner: ParticipantId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its codec.
    pub codec: Codec,
    /// Its encodings, lowest first (1–8).
    pub layers: Vec<Layer>,
}

const LAYER_HAS_RTX: u8 = 0x01;

impl SourceInfo {
    /// Checks every wire limit, so encoding cannot fail.
    pub fn validate(&self) -> Result<(), EncodeError> {
        let mut scratch = Vec::new();
        self.put(&mut scratch)
    }

    /// The layer index whose media or RTX SSRC is `ssrc`.
    pub fn layer_of_ssrc(&self, ssrc: u32) -> Option<u8> {
        self.layers
            .iter()
            .position(|l| l.ssrc == ssrc || l.rtx_ssrc == Some(ssrc))
            // At most MAX_LAYERS (8) layers: fits a u8.
            .map(|i| i as u8)
    }

    pub(crate) fn put(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        put_str(buf, "owner", self.owner.as_str(), MAX_ID_LEN)?;
        buf.put_u8(match self.kind {
            MediaKind::Audio => 0,
            MediaKind::Video => 1,
        });
        let c = &self.codec;
        if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EncodeError::invalid(
                "codec name",
                "must be 1-32 printable ASCII bytes",
            ));
        }
        put_str(buf, "codec name", &c.name, MAX_CODEC_NAME_LEN)?;
        if c.payload_type > 127 {
            return Err(EncodeError::invalid("payload type", "must be 0-127"));
        }
        buf.put_u8(c.payload_type);
        varint::put(buf, u64::from(c.clock_rate));
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(EncodeError::invalid("layers", "must have 1-8 layers"));
        }
        // 1..=8: fits a u8.
        buf.put_u8(self.layers.len() as u8);
        for l in &self.layers {
            buf.put_u8(if l.rtx_ssrc.is_some() {
                LAYER_HAS_RTX
            } else {
                0
            });
            let rid = l.rid.as_deref().unwrap_or("");
            if l.rid.is_some() && (rid.is_empty() || !valid_rid(rid)) {
                return Err(EncodeError::invalid("rid", "must be 1-16 of [A-Za-z0-9_-]"));
            }
            put_str(buf, "rid", rid, MAX_RID_LEN)?;
            buf.put_u32(l.ssrc);
            if let Some(rtx) = l.rtx_ssrc {
                buf.put_u32(rtx);
            }
            buf.put_u16(l.max_height);
        }
        Ok(())
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let owner = r.str("owner", MAX_ID_LEN)?;
        let owner = ParticipantId::new(owner).map_err(|error| DecodeError::InvalidId {
            field: "owner",
            error,
        })?;
        let kind = match r.u8()? {
            0 => MediaKind::Audio,
            1 => MediaKind::Video,
            v => {
                return Err(DecodeError::OutOfRange {
                    field: "kind",
                    value: v.into(),
                });
            }
        };
        let name = r.str("codec name", MAX_CODEC_NAME_LEN)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DecodeError::InvalidString {
                field: "codec name",
            });
        }
        let payload_type = r.u8()?;
        if payload_type > 127 {
            return Err(DecodeError::OutOfRange {
                field: "payload type",
                value: payload_type.into(),
            });
        }
        let clock_rate = r.varint_max("clock rate", u64::from(u32::MAX))? as u32;
        let n = r.u8()?;
        if n == 0 || usize::from(n) > MAX_LAYERS {
            return Err(DecodeError::OutOfRange {
                field: "layer count",
                value: n.into(),
            });
        }
        let mut layers = Vec::with_capacity(n.into());
        for _ in 0..n {
            let flags = r.u8()?;
            if flags & !LAYER_HAS_RTX != 0 {
                return Err(DecodeError::OutOfRange {
                    field: "layer flags",
                    value: flags.into(),
                });
            }
            let rid = r.str("rid", MAX_RID_LEN)?;
            if !valid_rid(rid) {
                return Err(DecodeError::InvalidString { field: "rid" });
            }
            let ssrc = r.u32()?;
            let rtx_ssrc = if flags & LAYER_HAS_RTX != 0 {
                Some(r.u32()?)
            } else {
                None
            };
            layers.push(Layer {
                rid: (!rid.is_empty()).then(|| rid.to_string()),
                ssrc,
                rtx_ssrc,
                max_height: r.u16()?,
            });
        }
        Ok(SourceInfo {
            owner,
            kind,
            codec: Codec {
                name: name.to_string(),
                payload_type,
                clock_rate,
            },
            layers,
        })
    }
}

fn valid_rid(rid: &str) -> bool {
    rid.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a remote edge wants of one of my sources: the edge forwards exactly
/// one layer, the one [`Subscription::select`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The highest layer index wanted; [`Subscription::ANY_LAYER`] for no limit.
    pub max_layer: u8,
    /// The largest frame height wanted; 0 for no limit. Layers of unknown
    /// height (0) are never excluded by it.
    pub max_height: u16,
}

impl Subscription {
    /// `max_layer` meaning "no limit".
    pub const ANY_LAYER: u8 = u8::MAX;
    /// The best layer there is.
    pub const BEST: Subscription = Subscription {
        max_layer: Self::ANY_LAYER,
        max_height: 0,
    };

    /// The layer to forward: the highest index `≤ max_layer` whose height
    /// fits `max_height`, else the lowest layer (0). Heights not known yet
    /// (0) fit only while no layer's height is known (a codec whose frame
    /// sizes the sender does not read): once one is, a guess could pick a
    /// layer the publisher is not sending yet (browsers start the higher
    /// layers as their bandwidth estimate grows) or a too tall one.
    pub fn select(&self, layers: &[Layer]) -> u8 {
        let any_known = layers.iter().any(|l| l.max_height != 0);
        layers
            .iter()
            .enumerate()
            .rev()
            .find(|(i, l)| {
                *i <= usize::from(self.max_layer)
                    && (self.max_height == 0
                        || (l.max_height == 0 && !any_known)
                        || (l.max_height != 0 && l.max_height <= self.max_height))
            })
            // At most MAX_LAYERS (8) layers: fits a u8.
            .map_or(0, |(i, _)| i as u8)
    }
}

/// Why an edge says goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoodbyeReason {
    /// The edge is shutting down; the connection closes next (wire value 0).
    Shutdown,
    /// The edge is draining: it keeps its conferences but takes no new ones
    /// (wire value 1).
    Draining,
}

/// Optional features an edge supports, a bit set in [`super::Hello`].
/// Unknown bits are ignored, so a later version can add features without a
/// new protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u64);

impl Capabilities {
    /// The edge accepts RTCP datagrams (sender reports for lip sync).
    pub const RTCP: Capabilities = Capabilities(1 << 0);
    /// The edge understands sources with more than one layer.
    pub const SIMULCAST: Capabilities = Capabilities(1 << 1);
    /// The edge sends and understands ENDPOINT_MUTED (a peer without it
    /// skips the frame, as every unknown frame).
    pub const MUTE: Capabilities = Capabilities(1 << 2);
    /// The edge accepts fragment datagrams (type 3) and reassembles them: a
    /// packet too big for the connection's datagram size may be split.
    pub const FRAGMENTS: Capabilities = Capabilities(1 << 3);
    /// Everything this version implements.
    pub const ALL: Capabilities =
        Capabilities(Self::RTCP.0 | Self::SIMULCAST.0 | Self::MUTE.0 | Self::FRAGMENTS.0);

    /// From raw bits (masked to the 62 bits a varint can hold).
    pub fn from_bits(bits: u64) -> Self {
        Capabilities(bits & varint::MAX)
    }

    /// The raw bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn put(self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        put_varint_max(buf, "capabilities", self.0, varint::MAX)
    }
}
