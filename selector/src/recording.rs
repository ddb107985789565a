//! Recordings through the selectors: an operator starts one with
//! `POST /v1/conferences/{id}/recording`; the node picks a recorder
//! (heartbeating, nearest to the conference's edges, least loaded) and
//! commits the choice through Raft, so every selector agrees; recorders
//! learn what to write from their heartbeat's answer
//! (`POST /agent/v1/recorder`) and report their files back. When a
//! recorder goes silent, the leader moves its recordings to another one,
//! which writes a new part that continues the last.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use geomesh_core::agent::{
    RecorderHeartbeat, RecorderHeartbeatResponse, RecordingAssignment, RecordingReport,
    RecordingState, valid_recording_id,
};
use geomesh_core::credentials::Role;
use geomesh_core::{ConferenceId, EdgeId};
use geomesh_geoip::haversine_km;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiFailure;
use crate::internal::{Caller, parse};
use crate::metrics::Metrics;
use crate::node::Shared;
use crate::state::{Op, OpResult, RecordingRecord, SelectorState};
use crate::tls::Peer;

/// The calling recorder: a `recorder` certificate naming a recorder of
/// the topology.
fn require_recorder(s: &Shared, c: &Caller) -> Result<EdgeId, ApiFailure> {
    let refused = |code, msg: String| {
        Metrics::reason(&s.metrics.internal_refused, code);
        ApiFailure::new(StatusCode::FORBIDDEN, "forbidden", msg)
    };
    match &c.0 {
        Some(Peer {
            role: Role::Recorder,
            id,
        }) => {
            let id = EdgeId::new(id.clone())
                .map_err(|_| refused("unknown_recorder", format!("{id:?} is not a node id")))?;
            if s.cfg.topology.recorder(&id).is_none() {
                return Err(refused(
                    "unknown_recorder",
                    format!("recorder {id} is not in the topology"),
                ));
            }
            Ok(id)
        }
        Some(p) => Err(refused(
            "wrong_role",
            format!(
                "{} {} may not call recorder endpoints",
                p.role.as_str(),
                p.id
            ),
        )),
        None => Err(refused(
            "no_identity",
            "certificate carries no geomesh identity".into(),
        )),
    }
}

/// What a recorder should write now.
fn assignments(st: &SelectorState, recorder: &EdgeId) -> Vec<RecordingAssignment> {
    st.recordings_on(recorder)
        .map(|(c, r)| RecordingAssignment {
            conference: c.clone(),
            recording: r.part_id(r.part),
            continues: r.continues(),
            max_height: r.max_height,
        })
        .collect()
}

/// `POST /agent/v1/recorder`: a recorder's heartbeat.
pub async fn recorder_heartbeat(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<RecorderHeartbeatResponse>, ApiFailure> {
    let recorder = require_recorder(&s, &c)?;
    let hb: RecorderHeartbeat = parse(&body)?;
    hb.validate()
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    s.soft().recorder_heartbeat(&recorder, hb, Instant::now());
    let recordings = s.with_state(|st| assignments(st, &recorder));
    Ok(Json(RecorderHeartbeatResponse {
        recordings,
        heartbeat_interval_ms: u64::try_from(s.cfg.topology.policy.heartbeat_interval.as_millis())
            .unwrap_or(u64::MAX),
    }))
}

/// The topology's recorders heartbeating this node.
fn live_recorders(s: &Shared, soft: &crate::soft::SoftState, now: Instant) -> Vec<EdgeId> {
    s.cfg
        .topology
        .recorders
        .iter()
        .filter(|r| soft.is_recorder_healthy(&r.id, now))
        .map(|r| r.id.clone())
        .collect()
}

/// The recorder for `conference`: one of `live`, below its
/// capacity, nearest (mean distance to the conference's participants'
/// edges), then least loaded, then by id. `None`: no recorder can take it.
pub fn choose_recorder(
    s: &Shared,
    st: &SelectorState,
    conference: &ConferenceId,
    live: &[EdgeId],
    exclude: Option<&EdgeId>,
) -> Option<EdgeId> {
    let edges: Vec<(geomesh_core::GeoPoint, f64)> = st
        .conference_edges(conference)
        .into_iter()
        .flatten()
        .filter_map(|(e, n)| Some((st.edge(e)?.location, f64::from(*n))))
        .collect();
    let weight: f64 = edges.iter().map(|(_, n)| n).sum();
    let mut best: Option<(f64, usize, &EdgeId)> = None;
    for r in &s.cfg.topology.recorders {
        if Some(&r.id) == exclude || !live.contains(&r.id) {
            continue;
        }
        let load = st.recordings_on(&r.id).count();
        if load >= usize::try_from(r.capacity).unwrap_or(usize::MAX) {
            continue;
        }
        let Some(at) = s.cfg.topology.region(&r.region).map(|g| g.location) else {
            continue;
        };
        let km = if weight > 0.0 {
            edges
                .iter()
                .map(|(p, n)| haversine_km(at, *p) * n)
                .sum::<f64>()
                / weight
        } else {
            0.0
        };
        // Within 1 km counts as equally near: the load decides.
        let key = (km.round(), load, &r.id);
        if best.is_none_or(|b| (key.0, key.1, key.2) < (b.0, b.1, b.2)) {
            best = Some(key);
        }
    }
    best.map(|(_, _, id)| id.clone())
}

/// How long a recorded conference may have nobody in it before its
/// recording stops (the meeting ended; a minute lets everyone reconnect).
pub const EMPTY_GRACE: Duration = Duration::from_secs(60);

/// The leader's upkeep of recordings: those on recorders that went
/// silent move to another one (none free: they stay, and are tried again
/// next tick); those of conferences empty for [`EMPTY_GRACE`] stop, and so
/// do those whose recorder reports them failed (a write error: participants
/// must not go on being told they are recorded; `GET` says `failed`).
#[derive(Debug, Default)]
pub struct Upkeep {
    /// Recorded conferences with nobody placed, since when (this leader saw).
    empty_since: HashMap<ConferenceId, Instant>,
}

impl Upkeep {
    /// What to propose now.
    pub fn ops(&mut self, s: &Shared, now: Instant) -> Vec<Op> {
        // Soft state first, then the replicated state: never both locks at once.
        let parts: Vec<(EdgeId, String)> = s.with_state(|st| {
            st.recordings()
                .values()
                .filter(|r| r.stopped_ms.is_none())
                .map(|r| (r.recorder.clone(), r.part_id(r.part)))
                .collect()
        });
        let (listened, live, failed) = {
            let soft = s.soft();
            let failed: HashSet<(EdgeId, String)> = parts
                .into_iter()
                .filter(|(rec, part)| {
                    soft.recording_report(rec, part)
                        .is_some_and(|x| x.state == RecordingState::Failed)
                })
                .collect();
            (
                soft.has_listened(now),
                live_recorders(s, &soft, now),
                failed,
            )
        };
        s.with_state(|st| {
            let mut ops = Vec::new();
            let active: Vec<(&ConferenceId, &RecordingRecord)> = st
                .recordings()
                .iter()
                .filter(|(_, r)| r.stopped_ms.is_none())
                .collect();
            self.empty_since
                .retain(|c, _| active.iter().any(|(a, _)| *a == c));
            for (c, r) in active {
                if failed.contains(&(r.recorder.clone(), r.part_id(r.part))) {
                    tracing::warn!(conference = %c, recording = %r.recording, recorder = %r.recorder, "the recording failed: stopping it");
                    ops.push(Op::StopRecording {
                        conference: c.clone(),
                    });
                    continue;
                }
                if st.conference_edges(c).is_some() {
                    self.empty_since.remove(c);
                } else if now.saturating_duration_since(*self.empty_since.entry(c.clone()).or_insert(now))
                    >= EMPTY_GRACE
                {
                    tracing::info!(conference = %c, recording = %r.recording, "the conference ended: stopping its recording");
                    ops.push(Op::StopRecording {
                        conference: c.clone(),
                    });
                    continue;
                }
                if !listened || live.contains(&r.recorder) {
                    continue;
                }
                if let Some(to) = choose_recorder(s, st, c, &live, Some(&r.recorder)) {
                    tracing::info!(conference = %c, from = %r.recorder, %to, "recorder silent: moving the recording");
                    ops.push(Op::MoveRecording {
                        conference: c.clone(),
                        from: r.recorder.clone(),
                        to,
                    });
                }
            }
            ops
        })
    }
}

/// `POST /v1/conferences/{id}/recording` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// The recording's id (default: one the selector makes up).
    recording: Option<String>,
    /// The video layer policy: of simulcast publishers, the tallest layer
    /// no taller than this (default: the top layer).
    #[serde(default)]
    max_height: Option<u16>,
}

/// A conference's recording, as the public API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingView {
    /// The conference.
    pub conference: ConferenceId,
    /// The recording's id.
    pub recording: String,
    /// `starting` (assigned, its recorder has not reported it yet),
    /// `recording`, `stopped`, `failed`, or `stopping` (after DELETE,
    /// until the recorder reports it stopped).
    pub state: String,
    /// The recorder writing it (now, or last).
    pub recorder: EdgeId,
    /// Started, Unix ms.
    pub started_ms: u64,
    /// Parts: the files of part 1 are `<recording>`, of part n
    /// `<recording>-p<n>` (each in its recorder's output directory).
    pub parts: u32,
    /// The video layer policy: at most this tall (absent: the top layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u16>,
    /// The current part as its recorder reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RecordingReport>,
}

fn state_name(s: RecordingState) -> &'static str {
    match s {
        RecordingState::Recording => "recording",
        RecordingState::Stopped => "stopped",
        RecordingState::Failed => "failed",
    }
}

fn view(s: &Shared, c: &ConferenceId, r: &RecordingRecord, stopping: bool) -> RecordingView {
    let report = s
        .soft()
        .recording_report(&r.recorder, &r.part_id(r.part))
        .cloned();
    let state = match (&report, stopping) {
        (Some(x), _) if x.state != RecordingState::Recording => state_name(x.state),
        (_, true) => "stopping",
        (Some(_), false) => "recording",
        (None, false) => "starting",
    };
    RecordingView {
        conference: c.clone(),
        recording: r.recording.clone(),
        state: state.into(),
        recorder: r.recorder.clone(),
        started_ms: r.started_ms,
        parts: r.part,
        max_height: (r.max_height > 0).then_some(r.max_height),
        report,
    }
}

fn conference_id(id: String) -> Result<ConferenceId, ApiFailure> {
    ConferenceId::new(id).map_err(|e| ApiFailure::bad_request(e.to_string()))
}

fn random_id() -> String {
    let mut b = [0u8; 6];
    // The OS RNG failing leaves zeros: the id is still valid, only guessable.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `POST /v1/conferences/{id}/recording`: start (201), or the recording
/// that already runs (200).
pub async fn start(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<RecordingView>), ApiFailure> {
    s.access.require_operator(&headers, &s.metrics)?;
    let conference = conference_id(id)?;
    let req: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiFailure::bad_request(format!("body: {e}")))?
    };
    let recording = match req.recording {
        // Parts append `-p<n>`: leave room for it.
        Some(r) if !valid_recording_id(&r) || r.len() > 64 => {
            return Err(ApiFailure::bad_request(
                "recording: 1–64 characters of [A-Za-z0-9_-]",
            ));
        }
        Some(r) => r,
        None => format!("{conference}-{}", random_id()),
    };
    let recording = if valid_recording_id(&recording) {
        recording
    } else {
        // A long conference id: the random part alone.
        random_id()
    };
    if let Some(r) = s.with_state(|st| st.recording(&conference).cloned())
        && r.stopped_ms.is_none()
    {
        return Ok((StatusCode::OK, Json(view(&s, &conference, &r, false))));
    }
    let live = live_recorders(&s, &s.soft(), Instant::now());
    let recorder = s
        .with_state(|st| choose_recorder(&s, st, &conference, &live, None))
        .ok_or_else(|| {
            ApiFailure::unavailable(if s.cfg.topology.recorders.is_empty() {
                "the topology has no recorders".to_string()
            } else {
                "no recorder is heartbeating with free capacity".to_string()
            })
        })?;
    let op = Op::StartRecording {
        conference: conference.clone(),
        recording,
        recorder,
        max_height: req.max_height.unwrap_or(0),
    };
    let res = s
        .propose(vec![op])
        .await
        .map_err(crate::agent::write_failure)?;
    match res.into_iter().next() {
        Some(OpResult::Recording { record, changed }) => {
            if changed {
                tracing::info!(%conference, recording = %record.recording, recorder = %record.recorder, "recording started");
            }
            let status = if changed {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(view(&s, &conference, &record, false))))
        }
        other => Err(unexpected(other)),
    }
}

/// `GET /v1/conferences/{id}/recording`.
pub async fn status(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RecordingView>, ApiFailure> {
    s.access.require_operator(&headers, &s.metrics)?;
    let conference = conference_id(id)?;
    let r = s
        .with_state(|st| st.recording(&conference).cloned())
        .ok_or_else(|| not_recording(&conference))?;
    let stopping = r.stopped_ms.is_some();
    Ok(Json(view(&s, &conference, &r, stopping)))
}

/// A Raft result that does not answer the operation (a broken invariant
/// of the state machine, reported rather than panicked on).
fn unexpected(r: Option<OpResult>) -> ApiFailure {
    ApiFailure::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("unexpected result {r:?}"),
    )
}

fn not_recording(c: &ConferenceId) -> ApiFailure {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        "not_recording",
        format!("conference {c} is not being recorded"),
    )
}

/// `DELETE /v1/conferences/{id}/recording`: stop. The recorder closes its
/// files at its next heartbeat; the answer is the recording as it stood
/// (state `stopping`).
pub async fn stop(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RecordingView>, ApiFailure> {
    s.access.require_operator(&headers, &s.metrics)?;
    let conference = conference_id(id)?;
    let res = s
        .propose(vec![Op::StopRecording {
            conference: conference.clone(),
        }])
        .await
        .map_err(crate::agent::write_failure)?;
    match res.into_iter().next() {
        Some(OpResult::RecordingStopped(Some(r))) => {
            tracing::info!(%conference, recording = %r.recording, "recording stopped");
            Ok(Json(view(&s, &conference, &r, true)))
        }
        Some(OpResult::RecordingStopped(None)) => Err(not_recording(&conference)),
        other => Err(unexpected(other)),
    }
}
