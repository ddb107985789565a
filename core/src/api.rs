//! Bodies of the selector's public HTTP API (see `docs/PROTOCOL.md`).
//!
//! Requests are deserialized strictly (`deny_unknown_fields`): a client that
//! misspells `probes` learns it at once instead of being silently placed by
//! GeoIP. [`JoinRequest::validate`] checks what serde cannot.

use serde::{Deserialize, Serialize};

use crate::geo::{GeoPoint, GeoPointError};
use crate::id::{ConferenceId, EdgeId, ParticipantId, RegionId};

/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Most probe results one join may carry.
pub const MAX_PROBES: usize = 32;
/// Probe RTTs above this are not measurements (10 s).
pub const MAX_PROBE_RTT_MS: f64 = 10_000.0;
/// Most edges one join may exclude.
pub const MAX_EXCLUDE: usize = 16;
/// Longest rejoin secret accepted, in bytes (a base64url Ed25519 signature is 86).
pub const MAX_REJOIN_SECRET: usize = 128;

/// `POST /v1/join` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The conference to join.
    pub conference: ConferenceId,
    /// A stable participant id; joins with the same id are idempotent. The
    /// selector makes one up when absent. A participant an edge reports
    /// connected can only be joined again with its `rejoin_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantId>,
    /// The secret a previous join answered for this `participant`: proves
    /// the client is the one that holds the identity (failover, migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin_secret: Option<String>,
    /// The name shown to other participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Where the client says it is (wins over GeoIP of its address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    /// A region the client says it is in: its location is the region's
    /// (demos that pretend to be elsewhere). Ignored when `location` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionId>,
    /// Edges this client could not use (its connection or ICE failed there,
    /// or the edge asked it to move): never placed there by this join.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<EdgeId>,
    /// Client-measured RTTs to candidate edges (from `GET /v1/probe-targets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
}

/// One client-measured round trip to an edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The edge probed.
    pub edge: EdgeId,
    /// Measured round-trip time in milliseconds.
    pub rtt_ms: f64,
}

/// Why a join request is refused before placement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinRequestError {
    /// `location` is out of range.
    #[error("location: {0}")]
    Location(#[from] GeoPointError),
    /// A probe RTT is negative, not finite or absurd.
    #[error(
        "probes[{index}].rtt_ms: {rtt_ms} is not a round-trip time (0 to {MAX_PROBE_RTT_MS} ms)"
    )]
    ProbeRtt {
        /// Index in `probes`.
        index: usize,
        /// The value given.
        rtt_ms: f64,
    },
    /// Too many probes.
    #[error("probes: {0} entries (at most {MAX_PROBES})")]
    TooManyProbes(usize),
    /// The same edge probed twice.
    #[error("probes[{index}].edge: {edge} appears twice")]
    DuplicateProbe {
        /// Index of the second entry.
        index: usize,
        /// The edge.
        edge: EdgeId,
    },
    /// Display name too long or with control characters.
    #[error("display_name: {0}")]
    DisplayName(&'static str),
    /// Too many excluded edges.
    #[error("exclude: {0} entries (at most {MAX_EXCLUDE})")]
    TooManyExcluded(usize),
    /// A rejoin secret that cannot be one.
    #[error("rejoin_secret: longer than {MAX_REJOIN_SECRET} bytes")]
    RejoinSecret,
    /// A rejoin secret without the participant it belongs to.
    #[error("rejoin_secret: needs the participant it was issued for")]
    SecretWithoutParticipant,
}

impl JoinRequest {
    /// Checks ranges that serde does not.
    pub fn validate(&self) -> Result<(), JoinRequestError> {
        if let Some(l) = &self.location {
            l.validate()?;
        }
        if self.probes.len() > MAX_PROBES {
            return Err(JoinRequestError::TooManyProbes(self.probes.len()));
        }
        for (index, p) in self.probes.iter().enumerate() {
            if !(p.rtt_ms.is_finite() && (0.0..=MAX_PROBE_RTT_MS).contains(&p.rtt_ms)) {
                return Err(JoinRequestError::ProbeRtt {
                    index,
                    rtt_ms: p.rtt_ms,
                });
            }
            if self.probes[..index].iter().any(|q| q.edge == p.edge) {
                return Err(JoinRequestError::DuplicateProbe {
                    index,
                    edge: p.edge.clone(),
                });
            }
        }
        if self.exclude.len() > MAX_EXCLUDE {
            return Err(JoinRequestError::TooManyExcluded(self.exclude.len()));
        }
        if let Some(secret) = &self.rejoin_secret {
            if secret.len() > MAX_REJOIN_SECRET {
                return Err(JoinRequestError::RejoinSecret);
            }
            if self.participant.is_none() {
                return Err(JoinRequestError::SecretWithoutParticipant);
            }
        }
        if let Some(n) = &self.display_name {
            if n.chars().count() > MAX_DISPLAY_NAME {
                return Err(JoinRequestError::DisplayName("longer than 64 characters"));
            }
            if n.chars().any(char::is_control) {
                return Err(JoinRequestError::DisplayName("contains control characters"));
            }
        }
        Ok(())
    }
}

/// How a client reaches one edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeEndpoint {
    /// Edge id.
    pub id: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// WebSocket signaling URL (`GET /v1/rtc`).
    pub ws_url: String,
    /// WHIP endpoint for this conference.
    pub whip_url: String,
    /// WHEP endpoint for this conference.
    pub whep_url: String,
}

/// `POST /v1/join` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The participant id (given or assigned).
    pub participant: ParticipantId,
    /// The chosen edge.
    pub edge: EdgeEndpoint,
    /// Join token for the chosen edge.
    pub token: String,
    /// Ranked fallbacks, each with its own token, for when the edge fails.
    pub fallbacks: Vec<Fallback>,
    /// Send this with `participant` to join again as the same participant
    /// (after a failure, or when an edge asks the client to move).
    pub rejoin_secret: String,
    /// Public base URLs of every selector node, this one first: where to
    /// join again when this one does not answer.
    #[serde(default)]
    pub selectors: Vec<String>,
}

/// A fallback edge and the token that admits the participant there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    /// The edge.
    pub edge: EdgeEndpoint,
    /// Join token for that edge.
    pub token: String,
}

/// `GET /v1/probe-targets` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTargets {
    /// The few nearest healthy edges.
    pub targets: Vec<ProbeTarget>,
    /// Public base URLs of every selector node, this one first (as in
    /// [`JoinResponse::selectors`]): where to join when this one cannot.
    #[serde(default)]
    pub selectors: Vec<String>,
}

/// An edge a client should time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTarget {
    /// Edge id.
    pub edge: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// URL of the edge's `GET /v1/probe`.
    pub probe_url: String,
}

/// Error body of every API endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// A stable machine-readable code (`bad_request`, `unknown_conference`, …).
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> Result<JoinRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn minimal_and_full_requests_parse() {
        let r = req(r#"{"conference":"standup"}"#).unwrap();
        assert_eq!(r.conference.as_str(), "standup");
        assert!(r.validate().is_ok());
        let r = req(
            r#"{"conference":"standup","participant":"p1","display_name":"Ada",
            "location":{"lat":48.85,"lon":2.35},"probes":[{"edge":"edge-fra-1","rtt_ms":12.5}]}"#,
        )
        .unwrap();
        assert_eq!(r.probes[0].rtt_ms, 12.5);
        assert!(r.validate().is_ok());
    }

    #[test]
    fn bad_requests_get_typed_errors() {
        assert!(
            req(r#"{"conference":"x","probez":[]}"#).is_err(),
            "unknown field"
        );
        assert!(req(r#"{"conference":"bad name"}"#).is_err());
        let r = req(r#"{"conference":"x","location":{"lat":95,"lon":0}}"#).unwrap();
        assert!(matches!(r.validate(), Err(JoinRequestError::Location(_))));
        let r = req(r#"{"conference":"x","probes":[{"edge":"e1","rtt_ms":-3}]}"#).unwrap();
        assert!(matches!(
            r.validate(),
            Err(JoinRequestError::ProbeRtt { index: 0, .. })
        ));
        let r = req(
            r#"{"conference":"x","probes":[{"edge":"e1","rtt_ms":3},{"edge":"e1","rtt_ms":4}]}"#,
        )
        .unwrap();
        assert!(matches!(
            r.validate(),
            Err(JoinRequestError::DuplicateProbe { index: 1, .. })
        ));
        let r = req(r#"{"conference":"x","display_name":"a\u0000b"}"#).unwrap();
        assert!(matches!(
            r.validate(),
            Err(JoinRequestError::DisplayName(_))
        ));
    }
}

/// One placement as the selection log keeps it (`GET /v1/selections`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Order of this entry on the selector that made it.
    pub seq: u64,
    /// When it was committed, Unix ms.
    pub at_ms: u64,
    /// The selector node that placed it.
    pub selector: String,
    /// The conference.
    pub conference: ConferenceId,
    /// The participant.
    pub participant: ParticipantId,
    /// The chosen edge.
    pub edge: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// Why it was chosen (`nearest`, `least_stressed_in_region`,
    /// `affinity_reuse`, `conference_latency`, `cap_reached`, `over_cap`).
    pub reason: String,
    /// The client's RTT to it, ms.
    pub rtt_ms: f64,
    /// Where that RTT came from: `probe` or `geo_estimate`.
    pub rtt_source: String,
    /// Where the client's location came from: `hint`, `geoip`,
    /// `default` or `unknown`.
    pub location_source: String,
    /// The edge the participant was on before, when this moved it
    /// (failover, migration, or an edge the client could not reach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<EdgeId>,
    /// The chosen edge, then the others by RTT (at most
    /// [`MAX_SELECTION_CANDIDATES`]), each with why it lost.
    pub candidates: Vec<SelectionCandidate>,
    /// Edges left out of `candidates`, counted by verdict.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub more: std::collections::BTreeMap<String, u32>,
}

/// Most candidates one [`Selection`] lists.
pub const MAX_SELECTION_CANDIDATES: usize = 8;

/// One edge as a placement saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionCandidate {
    /// The edge.
    pub edge: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// The client's RTT to it, ms (none without a location or a probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// `probe` or `geo_estimate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_source: Option<String>,
    /// Its estimated stress at the time (0 = idle, 1 = at capacity).
    pub stress: f64,
    /// `chosen`, or why it lost: `farther`, `more_stressed`, `affinity`,
    /// `conference_cap`, `unhealthy`, `draining`, `overloaded`,
    /// `unregistered`, `no_rtt`.
    pub verdict: String,
}

/// `GET /v1/selections` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selections {
    /// The selector node answering (each keeps its own log).
    pub selector: String,
    /// Entries after `since`, oldest first.
    pub selections: Vec<Selection>,
    /// Entries the node's ring has dropped since it started (the oldest go
    /// first once it is full).
    pub dropped: u64,
}
