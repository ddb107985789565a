//! Recordings: which recorder writes which conference. The proposer picks
//! the recorder (it knows which are alive); applying only records it, so
//! every selector agrees on one recorder per conference.

use super::*;

/// A conference's recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRecord {
    /// The recording's id (the operator's, or one the selector chose).
    pub recording: String,
    /// The recorder writing it now.
    pub recorder: EdgeId,
    /// Parts so far: 1, plus one per move to another recorder. Part `n > 1`
    /// is written as `<recording>-p<n>` and continues part `n - 1`.
    pub part: u32,
    /// When it was started, Unix ms (leader time).
    pub started_ms: u64,
    /// When the current part was assigned, Unix ms.
    pub part_started_ms: u64,
    /// The video layer policy: at most this tall (0: the top layer).
    #[serde(default)]
    pub max_height: u16,
    /// When it was stopped, Unix ms: kept for [`STOPPED_KEPT_MS`] so its
    /// files can still be looked up, then forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<u64>,
}

/// How long a stopped recording stays in the state (a day).
pub const STOPPED_KEPT_MS: u64 = 24 * 3600 * 1000;

impl RecordingRecord {
    /// The id of a part's file set: the recording's id for the first,
    /// `<recording>-p<n>` after.
    pub fn part_id(&self, part: u32) -> String {
        if part <= 1 {
            self.recording.clone()
        } else {
            format!("{}-p{part}", self.recording)
        }
    }

    /// The file set the current part continues, if it is not the first.
    pub fn continues(&self) -> Option<String> {
        (self.part > 1).then(|| self.part_id(self.part - 1))
    }
}

impl SelectorState {
    pub(super) fn start_recording(
        &mut self,
        now: u64,
        conference: &ConferenceId,
        recording: &str,
        recorder: &EdgeId,
        max_height: u16,
    ) -> OpResult {
        if let Some(r) = self.recordings.get(conference)
            && r.stopped_ms.is_none()
        {
            return OpResult::Recording {
                record: r.clone(),
                changed: false,
            };
        }
        let record = RecordingRecord {
            recording: recording.to_string(),
            recorder: recorder.clone(),
            part: 1,
            started_ms: now,
            part_started_ms: now,
            max_height,
            stopped_ms: None,
        };
        self.recordings.insert(conference.clone(), record.clone());
        OpResult::Recording {
            record,
            changed: true,
        }
    }

    pub(super) fn move_recording(
        &mut self,
        now: u64,
        conference: &ConferenceId,
        from: &EdgeId,
        to: &EdgeId,
    ) -> OpResult {
        let Some(r) = self.recordings.get_mut(conference) else {
            return OpResult::RecordingStopped(None);
        };
        let changed = &r.recorder == from && from != to && r.stopped_ms.is_none();
        if changed {
            r.recorder = to.clone();
            r.part += 1;
            r.part_started_ms = now;
        }
        OpResult::Recording {
            record: r.clone(),
            changed,
        }
    }

    pub(super) fn stop_recording(&mut self, now: u64, conference: &ConferenceId) -> OpResult {
        match self.recordings.get_mut(conference) {
            Some(r) if r.stopped_ms.is_none() => {
                r.stopped_ms = Some(now);
                OpResult::RecordingStopped(Some(r.clone()))
            }
            _ => OpResult::RecordingStopped(None),
        }
    }

    /// Forgets recordings stopped more than [`STOPPED_KEPT_MS`] ago.
    pub(super) fn forget_stopped_recordings(&mut self, now: u64) {
        self.recordings.retain(|_, r| {
            r.stopped_ms
                .is_none_or(|t| now.saturating_sub(t) < STOPPED_KEPT_MS)
        });
    }

    /// Conferences recorded now or stopped within [`STOPPED_KEPT_MS`].
    pub fn recordings(&self) -> &BTreeMap<ConferenceId, RecordingRecord> {
        &self.recordings
    }

    /// A conference's recording.
    pub fn recording(&self, conference: &ConferenceId) -> Option<&RecordingRecord> {
        self.recordings.get(conference)
    }

    /// Conferences with participants on `edge` that are being recorded.
    pub fn recorded_on(&self, edge: &EdgeId) -> Vec<ConferenceId> {
        self.by_edge
            .get(edge)
            .into_iter()
            .flatten()
            .filter(|c| {
                self.recordings
                    .get(*c)
                    .is_some_and(|r| r.stopped_ms.is_none())
            })
            .cloned()
            .collect()
    }

    /// The recordings `recorder` writes now (not stopped).
    pub fn recordings_on<'a>(
        &'a self,
        recorder: &'a EdgeId,
    ) -> impl Iterator<Item = (&'a ConferenceId, &'a RecordingRecord)> + 'a {
        self.recordings
            .iter()
            .filter(move |(_, r)| &r.recorder == recorder && r.stopped_ms.is_none())
    }
}
