//! The recorder's side of the agent API: `POST /agent/v1/recorder`, a
//! recorder's heartbeat, answered with the recordings it should write.
//!
//! A recorder (role `recorder` in its client certificate, listed in the
//! topology's `recorders:`) heartbeats every selector node. The answer is
//! the replicated assignment; the recorder starts what is new and stops
//! what is gone. What it reports (files, bytes, failures) is each node's
//! soft state, served by `GET /v1/conferences/{id}/recording`.

use serde::{Deserialize, Serialize};

use crate::id::ConferenceId;

/// `POST`: a recorder's heartbeat.
pub const RECORDER_PATH: &str = "/agent/v1/recorder";

/// Recordings one heartbeat reports at most.
pub const MAX_RECORDING_REPORTS: usize = 1024;

/// `POST /agent/v1/recorder` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecorderHeartbeat {
    /// The recorder process's boot id.
    pub boot_id: String,
    /// Sent at, the recorder's clock, Unix ms.
    #[serde(default)]
    pub sent_ms: u64,
    /// What it writes, and what it finished since it started.
    #[serde(default)]
    pub recordings: Vec<RecordingReport>,
}

/// A recording's state on its recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Writing.
    Recording,
    /// Stopped; its files and manifest are complete.
    Stopped,
    /// Stopped by an error (a full disk, a write error); what was written
    /// before it is valid.
    Failed,
}

/// One recording (one part of it), as its recorder reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingReport {
    /// The conference.
    pub conference: ConferenceId,
    /// The part's id (`<recording>` or `<recording>-p<n>`).
    pub recording: String,
    /// Its state.
    pub state: RecordingState,
    /// Its directory on the recorder.
    pub dir: String,
    /// Sources with a file.
    pub sources: u32,
    /// Bytes written.
    pub bytes: u64,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /agent/v1/recorder` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecorderHeartbeatResponse {
    /// Every recording this recorder should be writing now.
    pub recordings: Vec<RecordingAssignment>,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

/// A recording assigned to a recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingAssignment {
    /// The conference.
    pub conference: ConferenceId,
    /// The part's id: its directory and manifest carry it.
    pub recording: String,
    /// The part's id it continues (written by a recorder that died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
    /// The video layer policy: at most this tall; absent or 0, the top
    /// layer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_height: u16,
}

fn is_zero(h: &u16) -> bool {
    *h == 0
}

/// Why a recorder heartbeat is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderHeartbeatError {
    /// `boot_id` malformed.
    #[error(
        "boot_id: must be 1–{} bytes of letters, digits, '.', '_' or '-'",
        super::MAX_BOOT_ID_LEN
    )]
    BootId,
    /// Too many reports.
    #[error("recordings: {0} entries (at most {MAX_RECORDING_REPORTS})")]
    TooMany(usize),
    /// A text field is too long or not printable.
    #[error("recordings[{index}].{field}: longer than {max} bytes or not printable")]
    BadText {
        /// Index in `recordings`.
        index: usize,
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
}

/// Whether `s` is 1..=`max` bytes of printable ASCII.
fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl RecorderHeartbeat {
    /// Checks sizes and formats.
    pub fn validate(&self) -> Result<(), RecorderHeartbeatError> {
        if super::validate_boot_id(&self.boot_id).is_err() {
            return Err(RecorderHeartbeatError::BootId);
        }
        if self.recordings.len() > MAX_RECORDING_REPORTS {
            return Err(RecorderHeartbeatError::TooMany(self.recordings.len()));
        }
        for (index, r) in self.recordings.iter().enumerate() {
            let bad = |field, max| RecorderHeartbeatError::BadText { index, field, max };
            if !valid_recording_id(&r.recording) {
                return Err(bad("recording", MAX_RECORDING_ID_LEN));
            }
            if !printable(&r.dir, 4096) {
                return Err(bad("dir", 4096));
            }
            if r.error.as_ref().is_some_and(|e| !printable(e, 1024)) {
                return Err(bad("error", 1024));
            }
        }
        Ok(())
    }
}

/// Longest recording id (parts add `-p<n>`).
pub const MAX_RECORDING_ID_LEN: usize = 80;

/// A recording id: 1–80 of `[A-Za-z0-9_-]` (it names a directory).
pub fn valid_recording_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RECORDING_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(recording: &str) -> RecordingReport {
        RecordingReport {
            conference: ConferenceId::new("room").unwrap(),
            recording: recording.into(),
            state: RecordingState::Recording,
            dir: "/var/lib/geomesh/room-x".into(),
            sources: 2,
            bytes: 10,
            error: None,
        }
    }

    #[test]
    fn heartbeats_are_checked() {
        let mut hb = RecorderHeartbeat {
            boot_id: "b1".into(),
            sent_ms: 0,
            recordings: vec![report("r-1")],
        };
        assert_eq!(hb.validate(), Ok(()));
        hb.recordings[0].recording = "../etc".into();
        assert!(matches!(
            hb.validate(),
            Err(RecorderHeartbeatError::BadText {
                field: "recording",
                ..
            })
        ));
        hb.recordings = vec![report("r"); MAX_RECORDING_REPORTS + 1];
        assert_eq!(
            hb.validate(),
            Err(RecorderHeartbeatError::TooMany(MAX_RECORDING_REPORTS + 1))
        );
        hb.boot_id = String::new();
        assert_eq!(hb.validate(), Err(RecorderHeartbeatError::BootId));
        let json = r#"{"boot_id":"b","recordings":[],"extra":1}"#;
        assert!(serde_json::from_str::<RecorderHeartbeat>(json).is_err());
    }
}
