//! WebSocket signaling messages (`GET /v1/rtc`), JSON with a `type` tag.
//! Documented message by message in `docs/PROTOCOL.md`.

use serde::{Deserialize, Serialize};

use geomesh_core::{ConferenceId, ParticipantId};

/// Largest signaling message accepted. A subscriber's SDP answer grows by
/// about 1.6 kB per m-line, and stopped m-lines stay in it (str0m does not
/// recycle its own m-line slots): a participant who rejoins ten times adds
/// 32 kB to everyone's next answer. 1 MiB is room for hundreds of arrivals
/// and departures in one session's life (docs/DECISIONS.md).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Largest HTTP request body (WHIP/WHEP offers: a handful of m-lines).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Client → edge.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: who I am (the token says it, signed).
    Join {
        /// Join token from the selector (or `geomesh token mint`).
        token: String,
        /// The conference the client means to join; must match the token.
        #[serde(default)]
        conference: Option<ConferenceId>,
    },
    /// The client's offer (its first; publishes its tracks).
    Offer {
        /// SDP.
        sdp: String,
    },
    /// The client's answer to an edge offer.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// The client muted or unmuted a track kind (shown to others).
    Mute {
        /// `audio` or `video`.
        kind: MediaKindName,
        /// Muted or not.
        muted: bool,
    },
    /// What the client wants to receive (all fields optional; each message
    /// replaces the previous constraints).
    VideoConstraints {
        /// At most this many video sources (last-N); absent: the edge's default.
        #[serde(default)]
        last_n: Option<u32>,
        /// Participants whose video is forwarded first, whoever speaks.
        #[serde(default)]
        pinned: Vec<ParticipantId>,
        /// Height in pixels of the largest tile: simulcast layers are
        /// chosen no taller than needed. Absent or 0: no limit.
        #[serde(default)]
        max_height: Option<u16>,
        /// Heights of some participants' tiles, overriding `max_height`
        /// for them (the stage in a speaker view; 0: no limit). At most
        /// [`crate::tiles::MAX_TILE_HEIGHTS`] are kept.
        #[serde(default)]
        max_heights: std::collections::BTreeMap<ParticipantId, u16>,
    },
    /// Keep-alive; answered with `pong`.
    Ping,
    /// Leaving; the edge closes the session.
    Leave,
}

/// `audio` or `video` in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKindName {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// A participant as shown in the roster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RosterEntry {
    /// Participant id; also the `msid` stream id of its tracks in SDP.
    pub id: ParticipantId,
    /// Display name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Audio muted.
    pub audio_muted: bool,
    /// Video muted.
    pub video_muted: bool,
    /// The edge the participant is connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// That edge's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Edge → client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join was accepted.
    Joined {
        /// Your participant id.
        participant: ParticipantId,
        /// The conference.
        conference: ConferenceId,
        /// The edge serving you.
        edge: String,
        /// Its region.
        region: String,
        /// Everyone already there.
        participants: Vec<RosterEntry>,
        /// This participant may send media (its grant).
        can_publish: bool,
        /// This participant may receive media (its grant).
        can_subscribe: bool,
    },
    /// The conference is being recorded (`active`), or no longer is. Sent
    /// right after `joined` when it is, and whenever it changes.
    Recording {
        /// Whether a recorder writes the conference now.
        active: bool,
    },
    /// Answer to the client's offer.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// The edge renegotiates (remote tracks added or removed); reply with `answer`.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: RosterEntry,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
    },
    /// Someone muted or unmuted.
    Mute {
        /// Who.
        participant: ParticipantId,
        /// Which kind.
        kind: MediaKindName,
        /// Muted or not.
        muted: bool,
    },
    /// The dominant speaker changed (also sent on join when there is one).
    DominantSpeaker {
        /// Who speaks.
        participant: ParticipantId,
    },
    /// Answer to `ping`.
    Pong,
    /// Move to another edge: join again through the selector (with the
    /// participant id and rejoin secret, excluding this edge), then leave
    /// this session. The edge is draining or shutting down.
    Migrate {
        /// Why (`draining`, `shutdown`).
        reason: String,
    },
    /// Something was wrong; `fatal` errors close the session.
    Error {
        /// Stable code: `bad_message`, `unauthorized`, `forbidden`, `bad_sdp`,
        /// `not_joined`, `already_joined`, `replaced`, `moved`,
        /// `edge_closing`, `edge_full`, `no_offer`, `internal`.
        code: String,
        /// Human-readable detail.
        message: String,
        /// Whether the edge closes the session after this.
        fatal: bool,
    },
}

impl ServerMessage {
    /// An error message.
    pub fn error(code: &str, message: impl Into<String>, fatal: bool) -> Self {
        ServerMessage::Error {
            code: code.to_string(),
            message: message.into(),
            fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_messages_and_rejects_unknown() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"join","token":"t","conference":"c"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Join { .. }));
        let m: ClientMessage = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(m, ClientMessage::Ping);
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"mute","kind":"audio","muted":true}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Mute {
                kind: MediaKindName::Audio,
                muted: true
            }
        );
        for bad in [
            r#"{"type":"dance"}"#,
            r#"{"token":"t"}"#,
            r#"{"type":"offer"}"#,
            r#"{"type":"join","token":"t","extra":1}"#,
            r#"{"type":"join","token":"t","conference":"bad name"}"#,
            "[]",
            "not json",
        ] {
            assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_are_tagged_snake_case() {
        let m = ServerMessage::ParticipantLeft {
            participant: "p1".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"participant_left","participant":"p1"}"#
        );
        let e = ServerMessage::error("bad_sdp", "x", false);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"error","code":"bad_sdp","message":"x","fatal":false}"#
        );
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::ClientMessage;

    proptest! {
        /// Anything a client sends: a typed error at worst, never a panic.
        #[test]
        fn arbitrary_signaling_text_never_panics(s in "\\PC{0,300}") {
            let _ = serde_json::from_str::<ClientMessage>(&s);
        }

        /// SDP from the network goes through str0m's parser before anything else.
        #[test]
        fn arbitrary_sdp_never_panics(lines in proptest::collection::vec("[a-z]=[ -~]{0,60}", 0..30)) {
            let sdp = lines.join("\r\n");
            let _ = str0m::change::SdpOffer::from_sdp_string(&sdp);
            let _ = str0m::change::SdpAnswer::from_sdp_string(&sdp);
        }
    }
}
