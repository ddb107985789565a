//! Control frames: what travels on a link's reliable stream.

use bytes::BufMut;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};

use super::reader::{Reader, put_str};
use super::types::{
    Capabilities, ConferenceHandle, GoodbyeReason, SourceHandle, SourceId, SourceInfo, Subscription,
};
use super::{
    DecodeError, EncodeError, MAX_DISPLAY_NAME_LEN, MAX_FRAME_LEN, MAX_ID_LEN, MAX_MESSAGE_LEN,
    varint,
};

/// The first frame each side sends on a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version ([`super::PROTOCOL_VERSION`]).
    pub version: u64,
    /// The sender's edge id; must equal the id in its certificate.
    pub edge: EdgeId,
    /// The sender's region.
    pub region: RegionId,
    /// What the sender supports.
    pub capabilities: Capabilities,
}

/// One control frame. Handles in `ConferenceOpen`…`SourceRemoved` are the
/// *sender's*; handles in `Subscribe`, `Unsubscribe` and `KeyframeRequest`
/// name a source the *receiver* announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlFrame {
    /// Version, identity and capabilities; first on every connection.
    Hello(Hello),
    /// The sender is leaving or draining.
    Goodbye {
        /// Why.
        reason: GoodbyeReason,
        /// For the operator (≤ 255 bytes of UTF-8).
        message: String,
    },
    /// Asks for a [`ControlFrame::Pong`] with the same nonce (RTT).
    Ping {
        /// Echoed back (≤ 2^62 − 1).
        nonce: u64,
    },
    /// Answers a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The sender has announced its whole state after its Hello; anything
    /// the receiver remembers from an earlier connection and did not see
    /// again is gone.
    Announced,
    /// The sender hosts participants of a conference and names it `conference`.
    ConferenceOpen {
        /// The sender's handle for it.
        conference: ConferenceHandle,
        /// The conference.
        id: ConferenceId,
    },
    /// The sender left a conference (all its endpoints and sources with it).
    ConferenceClose {
        /// The sender's handle.
        conference: ConferenceHandle,
    },
    /// A participant on the sender's edge is in the conference (roster).
    EndpointJoined {
        /// The sender's conference handle.
        conference: ConferenceHandle,
        /// The participant.
        participant: ParticipantId,
        /// Their display name, if any (≤ 255 bytes of UTF-8).
        display_name: Option<String>,
    },
    /// A participant on the sender's edge left.
    EndpointLeft {
        /// The sender's conference handle.
        conference: ConferenceHandle,
        /// The participant.
        participant: ParticipantId,
    },
    /// A participant on the sender's edge muted or unmuted (what rosters
    /// show; media of a muted track simply stops).
    EndpointMuted {
        /// The sender's conference handle.
        conference: ConferenceHandle,
        /// The participant.
        participant: ParticipantId,
        /// Audio muted.
        audio: bool,
        /// Video muted.
        video: bool,
    },
    /// A participant on the sender's edge publishes a source.
    SourceAdded {
        /// The sender's conference handle.
        conference: ConferenceHandle,
        /// The sender's handle for the source (media datagrams carry it).
        source: SourceHandle,
        /// The source's stable id on the sender's edge.
        id: SourceId,
        /// Owner, kind, codec, layers.
        info: SourceInfo,
    },
    /// A source is gone.
    SourceRemoved {
        /// The sender's source handle.
        source: SourceHandle,
    },
    /// Send me this source (again, with a new layer choice, if already sent).
    Subscribe {
        /// The receiver's source handle.
        source: SourceHandle,
        /// Which layer.
        subscription: Subscription,
    },
    /// Stop sending this source.
    Unsubscribe {
        /// The receiver's source handle.
        source: SourceHandle,
    },
    /// Ask the publisher of this source for a keyframe.
    KeyframeRequest {
        /// The receiver's source handle.
        source: SourceHandle,
        /// The layer index, or `None` for the one being forwarded.
        layer: Option<u8>,
    },
}

/// The one-byte type that opens every control frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum FrameType {
    Hello = 0x01,
    Goodbye = 0x02,
    Ping = 0x03,
    Pong = 0x04,
    Announced = 0x05,
    ConferenceOpen = 0x10,
    ConferenceClose = 0x11,
    EndpointJoined = 0x12,
    EndpointLeft = 0x13,
    EndpointMuted = 0x14,
    SourceAdded = 0x20,
    SourceRemoved = 0x21,
    Subscribe = 0x30,
    Unsubscribe = 0x31,
    KeyframeRequest = 0x32,
}

impl FrameType {
    fn from_u8(b: u8) -> Option<Self> {
        use FrameType::*;
        Some(match b {
            0x01 => Hello,
            0x02 => Goodbye,
            0x03 => Ping,
            0x04 => Pong,
            0x05 => Announced,
            0x10 => ConferenceOpen,
            0x11 => ConferenceClose,
            0x12 => EndpointJoined,
            0x13 => EndpointLeft,
            0x14 => EndpointMuted,
            0x20 => SourceAdded,
            0x21 => SourceRemoved,
            0x30 => Subscribe,
            0x31 => Unsubscribe,
            0x32 => KeyframeRequest,
            _ => return None,
        })
    }

    /// The frame's name, for errors and logs.
    pub fn name(self) -> &'static str {
        use FrameType::*;
        match self {
            Hello => "HELLO",
            Goodbye => "GOODBYE",
            Ping => "PING",
            Pong => "PONG",
            Announced => "ANNOUNCED",
            ConferenceOpen => "CONFERENCE_OPEN",
            ConferenceClose => "CONFERENCE_CLOSE",
            EndpointJoined => "ENDPOINT_JOINED",
            EndpointLeft => "ENDPOINT_LEFT",
            EndpointMuted => "ENDPOINT_MUTED",
            SourceAdded => "SOURCE_ADDED",
            SourceRemoved => "SOURCE_REMOVED",
            Subscribe => "SUBSCRIBE",
            Unsubscribe => "UNSUBSCRIBE",
            KeyframeRequest => "KEYFRAME_REQUEST",
        }
    }
}

fn id<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    parse: fn(String) -> Result<T, geomesh_core::IdError>,
) -> Result<T, DecodeError> {
    let s = r.str(field, MAX_ID_LEN)?;
    parse(s.to_string()).map_err(|error| DecodeError::InvalidId { field, error })
}

impl ControlFrame {
    /// This frame's type.
    pub fn frame_type(&self) -> FrameType {
        use ControlFrame as F;
        match self {
            F::Hello(_) => FrameType::Hello,
            F::Goodbye { .. } => FrameType::Goodbye,
            F::Ping { .. } => FrameType::Ping,
            F::Pong { .. } => FrameType::Pong,
            F::Announced => FrameType::Announced,
            F::ConferenceOpen { .. } => FrameType::ConferenceOpen,
            F::ConferenceClose { .. } => FrameType::ConferenceClose,
            F::EndpointJoined { .. } => FrameType::EndpointJoined,
            F::EndpointLeft { .. } => FrameType::EndpointLeft,
            F::EndpointMuted { .. } => FrameType::EndpointMuted,
            F::SourceAdded { .. } => FrameType::SourceAdded,
            F::SourceRemoved { .. } => FrameType::SourceRemoved,
            F::Subscribe { .. } => FrameType::Subscribe,
            F::Unsubscribe { .. } => FrameType::Unsubscribe,
            F::KeyframeRequest { .. } => FrameType::KeyframeRequest,
        }
    }

    /// Appends the frame, length prefix included. Nothing is written if a
    /// field breaks a limit.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let mut body = Vec::with_capacity(64);
        self.encode_body(&mut body)?;
        if body.len() > MAX_FRAME_LEN {
            return Err(EncodeError::invalid(
                "frame",
                format!("{} bytes exceeds {MAX_FRAME_LEN}", body.len()),
            ));
        }
        varint::put(out, body.len() as u64);
        out.put_slice(&body);
        Ok(())
    }

    /// The frame's body (type byte and payload) without the length prefix.
    pub fn encode_body(&self, b: &mut Vec<u8>) -> Result<(), EncodeError> {
        use ControlFrame as F;
        b.put_u8(self.frame_type() as u8);
        match self {
            F::Hello(h) => {
                if h.version > varint::MAX {
                    return Err(EncodeError::invalid("version", "exceeds 2^62-1"));
                }
                varint::put(b, h.version);
                put_str(b, "edge", h.edge.as_str(), MAX_ID_LEN)?;
                put_str(b, "region", h.region.as_str(), MAX_ID_LEN)?;
                h.capabilities.put(b)?;
            }
            F::Goodbye { reason, message } => {
                b.put_u8(match reason {
                    GoodbyeReason::Shutdown => 0,
                    GoodbyeReason::Draining => 1,
                });
                put_str(b, "message", message, MAX_MESSAGE_LEN)?;
            }
            F::Ping { nonce } | F::Pong { nonce } => {
                if *nonce > varint::MAX {
                    return Err(EncodeError::invalid("nonce", "exceeds 2^62-1"));
                }
                varint::put(b, *nonce);
            }
            F::Announced => {}
            F::ConferenceOpen { conference, id } => {
                conference.put(b);
                put_str(b, "conference", id.as_str(), MAX_ID_LEN)?;
            }
            F::ConferenceClose { conference } => conference.put(b),
            F::EndpointJoined {
                conference,
                participant,
                display_name,
            } => {
                conference.put(b);
                put_str(b, "participant", participant.as_str(), MAX_ID_LEN)?;
                let name = display_name.as_deref().unwrap_or("");
                if display_name.as_deref() == Some("") {
                    return Err(EncodeError::invalid(
                        "display name",
                        "Some(\"\") is not encodable: use None",
                    ));
                }
                put_str(b, "display name", name, MAX_DISPLAY_NAME_LEN)?;
            }
            F::EndpointLeft {
                conference,
                participant,
            } => {
                conference.put(b);
                put_str(b, "participant", participant.as_str(), MAX_ID_LEN)?;
            }
            F::EndpointMuted {
                conference,
                participant,
                audio,
                video,
            } => {
                conference.put(b);
                put_str(b, "participant", participant.as_str(), MAX_ID_LEN)?;
                b.put_u8(u8::from(*audio) | u8::from(*video) << 1);
            }
            F::SourceAdded {
                conference,
                source,
                id,
                info,
            } => {
                conference.put(b);
                source.put(b);
                if id.0 > varint::MAX {
                    return Err(EncodeError::invalid("source id", "exceeds 2^62-1"));
                }
                varint::put(b, id.0);
                info.put(b)?;
            }
            F::SourceRemoved { source } | F::Unsubscribe { source } => source.put(b),
            F::Subscribe {
                source,
                subscription,
            } => {
                source.put(b);
                b.put_u8(subscription.max_layer);
                b.put_u16(subscription.max_height);
            }
            F::KeyframeRequest { source, layer } => {
                source.put(b);
                match layer {
                    Some(l) if *l == u8::MAX => {
                        return Err(EncodeError::invalid("layer", "255 means none: use None"));
                    }
                    Some(l) => b.put_u8(*l),
                    None => b.put_u8(u8::MAX),
                }
            }
        }
        Ok(())
    }

    /// Decodes one frame body (type byte and payload, no length prefix).
    pub fn decode_body(body: &[u8]) -> Result<ControlFrame, DecodeError> {
        use ControlFrame as F;
        let mut r = Reader::new(body);
        let ty = r.u8().map_err(|_| DecodeError::EmptyFrame)?;
        let ty = FrameType::from_u8(ty).ok_or(DecodeError::UnknownFrameType(ty))?;
        let frame = match ty {
            FrameType::Hello => F::Hello(Hello {
                version: r.varint()?,
                edge: id(&mut r, "edge", EdgeId::new)?,
                region: id(&mut r, "region", RegionId::new)?,
                capabilities: Capabilities::from_bits(r.varint()?),
            }),
            FrameType::Goodbye => F::Goodbye {
                reason: match r.u8()? {
                    0 => GoodbyeReason::Shutdown,
                    1 => GoodbyeReason::Draining,
                    v => {
                        return Err(DecodeError::OutOfRange {
                            field: "goodbye reason",
                            value: v.into(),
                        });
                    }
                },
                message: r.str("message", MAX_MESSAGE_LEN)?.to_string(),
            },
            FrameType::Ping => F::Ping { nonce: r.varint()? },
            FrameType::Pong => F::Pong { nonce: r.varint()? },
            FrameType::Announced => F::Announced,
            FrameType::ConferenceOpen => F::ConferenceOpen {
                conference: ConferenceHandle::read(&mut r)?,
                id: id(&mut r, "conference", ConferenceId::new)?,
            },
            FrameType::ConferenceClose => F::ConferenceClose {
                conference: ConferenceHandle::read(&mut r)?,
            },
            FrameType::EndpointJoined => F::EndpointJoined {
                conference: ConferenceHandle::read(&mut r)?,
                participant: id(&mut r, "participant", ParticipantId::new)?,
                display_name: {
                    let s = r.str("display name", MAX_DISPLAY_NAME_LEN)?;
                    (!s.is_empty()).then(|| s.to_string())
                },
            },
            FrameType::EndpointLeft => F::EndpointLeft {
                conference: ConferenceHandle::read(&mut r)?,
                participant: id(&mut r, "participant", ParticipantId::new)?,
            },
            FrameType::EndpointMuted => {
                let conference = ConferenceHandle::read(&mut r)?;
                let participant = id(&mut r, "participant", ParticipantId::new)?;
                let bits = r.u8()?;
                if bits > 0b11 {
                    return Err(DecodeError::OutOfRange {
                        field: "muted",
                        value: bits.into(),
                    });
                }
                F::EndpointMuted {
                    conference,
                    participant,
                    audio: bits & 1 != 0,
                    video: bits & 2 != 0,
                }
            }
            FrameType::SourceAdded => F::SourceAdded {
                conference: ConferenceHandle::read(&mut r)?,
                source: SourceHandle::read(&mut r)?,
                id: SourceId(r.varint()?),
                info: SourceInfo::read(&mut r)?,
            },
            FrameType::SourceRemoved => F::SourceRemoved {
                source: SourceHandle::read(&mut r)?,
            },
            FrameType::Subscribe => F::Subscribe {
                source: SourceHandle::read(&mut r)?,
                subscription: Subscription {
                    max_layer: r.u8()?,
                    max_height: r.u16()?,
                },
            },
            FrameType::Unsubscribe => F::Unsubscribe {
                source: SourceHandle::read(&mut r)?,
            },
            FrameType::KeyframeRequest => F::KeyframeRequest {
                source: SourceHandle::read(&mut r)?,
                layer: match r.u8()? {
                    u8::MAX => None,
                    l => Some(l),
                },
            },
        };
        r.finish(ty.name())?;
        Ok(frame)
    }
}
