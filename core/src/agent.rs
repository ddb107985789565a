//! Bodies of the selector's internal **edge-agent API** (see
//! `docs/PROTOCOL.md`, "Selector internal API").
//!
//! Edges call these endpoints on every selector node's `raft` address over
//! HTTPS with **mutual TLS** (cluster CA): the edge's id is the URI SAN
//! `urn:geomesh:edge:<id>` of its client certificate, never a field of a
//! body. Requests are deserialized strictly (`deny_unknown_fields`) and
//! checked with `validate()`; errors come back as [`crate::api::ApiError`].
//!
//! - `POST /agent/v1/register` [`RegisterRequest`] → [`RegisterResponse`]
//! - `POST /agent/v1/heartbeat` [`Heartbeat`] → [`HeartbeatResponse`]
//! - `POST /agent/v1/participants` [`ParticipantReport`] → [`ParticipantReportResponse`]
//! - `GET /agent/v1/placements?after=…` → [`PlacementPage`]
//! - `POST /agent/v1/leave` [`LeaveRequest`] → [`LeaveResponse`]
//! - `POST /agent/v1/recorder` [`RecorderHeartbeat`] → [`RecorderHeartbeatResponse`]
//!   (recorders, not edges: their certificate's role is `recorder`)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::{ConferenceId, EdgeId, ParticipantId, RegionId, SelectorId};

mod recorder;
mod validate;
pub use recorder::*;
pub use validate::*;

/// Path prefix of every agent endpoint.
pub const AGENT_PREFIX: &str = "/agent/v1";
/// `POST`: register (or re-register) the calling edge.
pub const REGISTER_PATH: &str = "/agent/v1/register";
/// `POST`: one heartbeat (soft state on the receiving selector node only).
pub const HEARTBEAT_PATH: &str = "/agent/v1/heartbeat";
/// `POST`: participants that joined or left the calling edge.
pub const PARTICIPANTS_PATH: &str = "/agent/v1/participants";
/// `GET`: the placements the cluster records on the calling edge (paged).
pub const PLACEMENTS_PATH: &str = "/agent/v1/placements";
/// `POST`: the calling edge is shutting down: place nobody there, move its
/// participants.
pub const LEAVE_PATH: &str = "/agent/v1/leave";
/// `GET`: every edge of the cluster (the topology's and the registered
/// ones): whom an edge accepts octo links from.
pub const EDGES_PATH: &str = "/agent/v1/edges";
/// Most placements in one [`PlacementPage`].
pub const PLACEMENT_PAGE: usize = 5000;

/// Longest `boot_id`, in bytes.
pub const MAX_BOOT_ID_LEN: usize = 64;
/// Longest advertised `base_url`, in bytes.
pub const MAX_BASE_URL_LEN: usize = 256;
/// Most link RTTs one heartbeat may carry.
pub const MAX_LINKS: usize = 256;
/// Most entries (joined + left) in one participant report.
pub const MAX_REPORT_ENTRIES: usize = 1000;
/// Link RTTs above this are not measurements (10 s).
pub const MAX_LINK_RTT_MS: f64 = 10_000.0;
/// Stress above this is not a measurement (100 × capacity).
pub const MAX_STRESS: f64 = 100.0;

/// `POST /agent/v1/register` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A random id the edge process picks once at start-up (1–64 bytes of
    /// `[A-Za-z0-9._-]`). A new value tells the selectors the edge restarted
    /// and lost its participants.
    pub boot_id: String,
    /// Base URL clients use for this edge (`http(s)://host[:port]`, no
    /// trailing path). Default: the topology's `public_url`, else
    /// `http://{http}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How the edge describes itself, from its own topology: used only
    /// when the selector's topology does not list it (an edge added at
    /// runtime; its certificate must still come from the cluster CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe: Option<EdgeDescription>,
}

/// An edge's own account of where it is and what it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDescription {
    /// Its region (one the selectors' topology knows).
    pub region: RegionId,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// The address in its ICE candidates (GeoDNS answers with it).
    pub public_ip: std::net::IpAddr,
}

/// `POST /agent/v1/register` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The edge id taken from the client certificate.
    pub edge: EdgeId,
    /// Its region (from the topology).
    pub region: RegionId,
    /// Whether the edge is draining (takes no new participants).
    pub draining: bool,
    /// `true` when `boot_id` changed since the last registration (the
    /// participants recorded on the edge were released).
    pub restarted: bool,
    /// How often to heartbeat every selector node, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Every selector node to heartbeat, with its internal base URL.
    pub selectors: Vec<SelectorEndpoint>,
}

/// Where an edge reaches one selector node's internal API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorEndpoint {
    /// Selector id: also the DNS SAN its server certificate carries.
    pub id: SelectorId,
    /// `https://{raft address}` (verify the certificate against `id`).
    pub url: String,
    /// Its public API base URL (`http://{api address}`): where browsers
    /// that open an edge's page are sent to join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// `POST /agent/v1/heartbeat` request body (default once per second to
/// every selector node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The `boot_id` the edge registered with.
    pub boot_id: String,
    /// Participants connected now.
    pub participants: u32,
    /// Conferences with at least one local participant.
    #[serde(default)]
    pub conferences: u32,
    /// Media packets per second, in + out.
    pub packet_rate: f64,
    /// Media bitrate in bits per second, in + out.
    pub bitrate_bps: f64,
    /// CPU use of the machine, 0.0–1.0.
    pub cpu: f64,
    /// Load / capacity, 0.0–100.0 (1.0 = at capacity).
    pub stress: f64,
    /// Measured RTTs of octo links to other edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkRtt>,
    /// [`participant_digest`] of the participants connected now: a
    /// selector whose record of this edge differs answers `resync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<u64>,
    /// What the edge runs and how it is set up (operators' checks:
    /// `geomesh status`, `geomesh doctor`). Optional: edges of an older
    /// version do not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<EdgeAbout>,
}

/// An edge's description of itself in heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeAbout {
    /// The `geomesh` version it runs.
    pub version: String,
    /// When the process started, Unix ms.
    pub started_ms: u64,
    /// Its clock when it sent this heartbeat, Unix ms (clock skew).
    pub sent_ms: u64,
    /// The media address in its ICE candidates (`public_ip:media_port`).
    pub media: std::net::SocketAddr,
    /// [`topology_hash`] of the topology file it was started with.
    pub topology_hash: String,
    /// [`key_id`] of the token public key it verifies join tokens with.
    pub token_key: String,
    /// When its certificate expires, Unix seconds.
    pub cert_not_after: u64,
}

/// One octo link round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRtt {
    /// The other edge.
    pub edge: EdgeId,
    /// Smoothed RTT in milliseconds (0 while the link is down).
    pub rtt_ms: f64,
    /// `up`, or `down` (connecting, or lost and retrying). Absent: up
    /// (edges of an older version report only links that are up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Share of QUIC packets lost on the link's current connection, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
}

/// `POST /agent/v1/heartbeat` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Whether the edge is draining (take no new participants; let the
    /// current ones finish).
    pub draining: bool,
    /// Per conference this edge hosts: the other edges hosting it (its
    /// octo peers for that conference; empty when it is alone).
    pub conferences: BTreeMap<ConferenceId, Vec<EdgeId>>,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Move the current participants away (one by one; an operator's
    /// `drain --migrate`, or the edge's own shutdown).
    #[serde(default)]
    pub migrate: bool,
    /// The cluster's record of this edge's participants differs from the
    /// heartbeat's `digest`: compare with `GET /agent/v1/placements` and
    /// report the difference.
    #[serde(default)]
    pub resync: bool,
    /// Every selector node now (nodes are added and removed at runtime):
    /// heartbeat each of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<SelectorEndpoint>,
    /// Changes whenever an edge is registered anew, removed or forgotten:
    /// read `GET /agent/v1/edges` again.
    #[serde(default)]
    pub edges_version: u64,
    /// This edge's conferences that are being recorded: their
    /// participants are told (the meeting page shows it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recording: Vec<ConferenceId>,
}

/// `GET /agent/v1/edges` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeDirectory {
    /// The `edges_version` this list is of.
    pub version: u64,
    /// The topology's edges and every registered one, and the topology's
    /// recorders: every node an edge accepts octo links from.
    pub edges: Vec<EdgeId>,
}

/// `POST /agent/v1/participants` request body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantReport {
    /// Participants that connected to this edge (confirms the placement).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<ParticipantRef>,
    /// Participants that left this edge (releases the placement).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<ParticipantRef>,
}

/// A participant in a conference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantRef {
    /// The conference.
    pub conference: ConferenceId,
    /// The participant.
    pub participant: ParticipantId,
    /// When the session started on the reporting edge, Unix ms (`joined`
    /// only): when two edges hold the same participant, the newer session
    /// is the real one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

impl ParticipantRef {
    /// A reference without a session time.
    pub fn new(conference: ConferenceId, participant: ParticipantId) -> Self {
        Self {
            conference,
            participant,
            since_ms: None,
        }
    }
}

/// The digest of a set of participants: the XOR of each one's 64-bit
/// FNV-1a hash over `conference \0 participant`. Order-free, so an edge and
/// a selector compute it the same way and both keep it up to date in O(1)
/// per change (XOR in on join, XOR out on leave).
pub fn participant_digest<'a>(
    set: impl IntoIterator<Item = (&'a ConferenceId, &'a ParticipantId)>,
) -> u64 {
    set.into_iter()
        .fold(0, |d, (c, p)| d ^ participant_hash(c, p))
}

/// One participant's term of [`participant_digest`].
pub fn participant_hash(conference: &ConferenceId, participant: &ParticipantId) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in conference
        .as_str()
        .bytes()
        .chain([0])
        .chain(participant.as_str().bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

/// `GET /agent/v1/placements` response body: the calling edge's
/// placements in (conference, participant) order, at most
/// [`PLACEMENT_PAGE`]; `next` is the `after` of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementPage {
    /// Placements on the edge.
    pub placements: Vec<PlacementEntry>,
    /// `conference/participant` to pass as `after` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One placement on the calling edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementEntry {
    /// The conference.
    pub conference: ConferenceId,
    /// The participant.
    pub participant: ParticipantId,
    /// The edge reported it connected (else the client is on its way).
    pub confirmed: bool,
}

/// `POST /agent/v1/leave` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRequest {
    /// The `boot_id` the edge registered with.
    pub boot_id: String,
}

/// `POST /agent/v1/leave` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveResponse {
    /// The edge now takes no new participants.
    pub draining: bool,
}

/// `POST /agent/v1/participants` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantReportResponse {
    /// `joined` entries recorded on this edge.
    pub joined: u32,
    /// `left` entries released.
    pub left: u32,
    /// `left` entries that were not on this edge (already released or
    /// placed elsewhere).
    pub ignored: u32,
    /// `joined` entries not recorded because the participant is connected
    /// to another edge by a newer session: end these sessions here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<ParticipantRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(json: &str) -> Result<Heartbeat, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn heartbeat_parses_and_validates() {
        let h = hb(
            r#"{"boot_id":"b1","participants":3,"packet_rate":100,"bitrate_bps":1e6,
            "cpu":0.2,"stress":0.03,"links":[{"edge":"edge-b","rtt_ms":80.5}]}"#,
        )
        .unwrap();
        assert!(h.validate().is_ok());
        assert!(hb(r#"{"boot_id":"b1","participants":3,"packet_rate":1,"bitrate_bps":1,"cpu":0,"stress":0,"extra":1}"#).is_err());
        let mut bad = h.clone();
        bad.links[0].rtt_ms = -1.0;
        assert!(matches!(
            bad.validate(),
            Err(AgentRequestError::LinkRtt { index: 0, .. })
        ));
        let mut bad = h.clone();
        bad.cpu = f64::NAN;
        assert!(matches!(
            bad.validate(),
            Err(AgentRequestError::OutOfRange { field: "cpu", .. })
        ));
        let mut bad = h.clone();
        bad.links.push(bad.links[0].clone());
        assert!(matches!(
            bad.validate(),
            Err(AgentRequestError::DuplicateLink { index: 1, .. })
        ));
        let mut bad = h;
        bad.boot_id = "has space".into();
        assert_eq!(bad.validate(), Err(AgentRequestError::BootId));
    }

    #[test]
    fn base_urls() {
        assert!(validate_base_url("https://edge-1.meet.example.com").is_ok());
        assert!(validate_base_url("http://127.0.0.1:8080").is_ok());
        for bad in ["ftp://x", "http://", "http://x/path", "http://a b", "x"] {
            assert!(validate_base_url(bad).is_err(), "{bad}");
        }
    }
}
