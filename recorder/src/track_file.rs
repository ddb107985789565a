//! One source's file: one track. WebM (VP8, Opus) through libwebm's muxer
//! (`webm` crate); Matroska (H.264, which WebM does not allow and the
//! `webm` crate cannot name) through `oxideav-mkv`'s.
//!
//! The file is written as the recording goes: libwebm closes a cluster at
//! each video keyframe (and every few seconds of audio) and writes it out,
//! and oxideav-mkv writes each block as it comes into clusters of unknown
//! size, so a recorder that dies, or a disk that fills, leaves a file that
//! plays up to its last complete cluster (block). [`TrackFile::finish`] adds the cues and
//! the duration. A write error (a full disk) is kept, typed, and ends the
//! file: it is cut back to the end of the last whole frame (so it plays to
//! there without a truncated block) and the recorder reports it and goes on
//! with its other sources.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oxideav_core::{CodecId, CodecParameters, Muxer, Packet, StreamInfo, TimeBase};
use oxideav_mkv::mux::MkvMuxer;
use webm::mux::{AudioCodecId, Segment, SegmentBuilder, TrackNum, VideoCodecId, Writer};

/// Why a source's file stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Creating or writing the file failed (a full disk: `StorageFull`).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The muxer refused (a parameter it does not take).
    #[error("{path}: the WebM muxer refused: {what}")]
    Mux {
        /// The file.
        path: PathBuf,
        /// What it refused.
        what: String,
    },
}

/// The codec of a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCodec {
    /// VP8 video of this nominal size (the first keyframe's).
    Vp8 {
        /// Width, pixels.
        width: u16,
        /// Height, pixels.
        height: u16,
    },
    /// Opus, 48 kHz.
    Opus,
    /// H.264 (a Matroska file): frames are length-prefixed NAL units.
    H264(crate::h264::TrackConfig),
}

impl TrackCodec {
    /// The file name extension its container takes.
    pub fn extension(&self) -> &'static str {
        match self {
            TrackCodec::Vp8 { .. } | TrackCodec::Opus => "webm",
            TrackCodec::H264(_) => "mkv",
        }
    }
}

/// The file's size so far and the first write error, shared with the
/// writer the muxer owns.
#[derive(Debug, Default)]
struct Written {
    bytes: u64,
    error: Option<io::Error>,
}

/// The file under the muxer: follows its size (the muxer seeks back to
/// rewrite headers, so bytes written are not the size) and remembers the
/// first error (libwebm only sees "failed").
struct Counted {
    file: File,
    pos: u64,
    written: Arc<Mutex<Written>>,
}

impl Counted {
    fn fail(&self, e: &io::Error) {
        let mut w = self.written.lock().expect("writer lock poisoned");
        if w.error.is_none() {
            w.error = Some(io::Error::new(e.kind(), e.to_string()));
        }
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // All or nothing: the muxer takes a short write as a failure.
        match self.file.write_all(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                let mut w = self.written.lock().expect("writer lock poisoned");
                w.bytes = w.bytes.max(self.pos);
                Ok(buf.len())
            }
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Counted {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(pos)?;
        Ok(self.pos)
    }
}

/// Opus's identification header (RFC 7845 §5.1), which WebM carries as
/// the track's CodecPrivate: version 1, 2 channels (WebRTC's `opus/48000/2`),
/// 312 samples of pre-skip (libopus's encoder delay at 48 kHz), 48 kHz,
/// no gain, mapping family 0.
const OPUS_HEAD: [u8; 19] = [
    b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0,
];

/// The muxer writing the file.
enum Mux {
    Webm {
        segment: Segment<Counted>,
        track: TrackNum,
    },
    Mkv(Box<MkvMuxer>),
}

/// Matroska timestamps are in ms (the default TimestampScale).
const MKV_TIME_BASE: TimeBase = TimeBase::new(1, 1000);

/// One open file with one track.
pub struct TrackFile {
    path: PathBuf,
    mux: Mux,
    written: Arc<Mutex<Written>>,
    /// The same file, to cut it back after a failed write.
    cut: File,
    /// Its size after the last whole frame.
    good: u64,
    /// A write failed: the file is closed as it is.
    broken: Option<io::Error>,
    frames: u64,
    last_ns: u64,
}

impl std::fmt::Debug for TrackFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackFile")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

/// A WebM muxer with one track: VP8 of this size, or Opus.
fn webm(writer: Counted, vp8: Option<(u16, u16)>) -> Result<Mux, webm::mux::Error> {
    let builder = SegmentBuilder::new(Writer::new(writer))?.set_writing_app("geomesh-recorder")?;
    let (builder, track) = match vp8 {
        Some((width, height)) => {
            let (b, t) =
                builder.add_video_track(width.into(), height.into(), VideoCodecId::VP8, None)?;
            (b, TrackNum::from(t))
        }
        None => {
            let (b, t) = builder.add_audio_track(48_000, 2, AudioCodecId::Opus, None)?;
            let n = TrackNum::from(t);
            (b.set_codec_private(n, &OPUS_HEAD)?, n)
        }
    };
    Ok(Mux::Webm {
        segment: builder.build(),
        track,
    })
}

/// A Matroska muxer with one H.264 track, its header written.
fn mkv(writer: Counted, config: crate::h264::TrackConfig) -> oxideav_core::Result<MkvMuxer> {
    let mut params = CodecParameters::video(CodecId::new("h264"));
    params.width = Some(config.width.into());
    params.height = Some(config.height.into());
    params.extradata = config.record;
    let stream = StreamInfo {
        index: 0,
        time_base: MKV_TIME_BASE,
        duration: None,
        start_time: Some(0),
        params,
    };
    let mut m = MkvMuxer::new_matroska(Box::new(writer), &[stream])?;
    // The Duration the trailer measures and patches into the header.
    m.with_duration_finalization()?;
    m.write_header()?;
    Ok(m)
}

impl TrackFile {
    /// Creates `path` (it must not exist) with one track of `codec`.
    pub fn create(path: &Path, codec: TrackCodec) -> Result<Self, RecordError> {
        let io = |source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mux = |what: webm::mux::Error| RecordError::Mux {
            path: path.to_path_buf(),
            what: format!("{what:?}"),
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        let written = Arc::new(Mutex::new(Written::default()));
        let cut = file.try_clone().map_err(io)?;
        let writer = Counted {
            file,
            pos: 0,
            written: written.clone(),
        };
        let mux = match codec {
            TrackCodec::H264(config) => Mux::Mkv(Box::new(mkv(writer, config).map_err(|e| {
                RecordError::Mux {
                    path: path.to_path_buf(),
                    what: e.to_string(),
                }
            })?)),
            TrackCodec::Vp8 { width, height } => {
                webm(writer, Some((width, height))).map_err(mux)?
            }
            TrackCodec::Opus => webm(writer, None).map_err(mux)?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            mux,
            written,
            cut,
            good: 0,
            broken: None,
            frames: 0,
            last_ns: 0,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size so far.
    pub fn bytes(&self) -> u64 {
        self.written.lock().expect("writer lock poisoned").bytes
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Appends a frame at `ns` (never earlier than the previous one).
    pub fn write(&mut self, ns: u64, keyframe: bool, data: &[u8]) -> Result<(), RecordError> {
        if let Some(e) = &self.broken {
            return Err(self.io_error(e));
        }
        let ok = match &mut self.mux {
            Mux::Webm { segment, track } => segment
                .add_frame(*track, data, ns, keyframe)
                .map_err(|what| format!("{what:?}")),
            Mux::Mkv(m) => {
                let mut p = Packet::new(0, MKV_TIME_BASE, data.to_vec());
                p.pts = Some(i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX));
                p.flags.keyframe = keyframe;
                m.write_packet(&p).map_err(|e| e.to_string())
            }
        };
        let failed = self
            .written
            .lock()
            .expect("writer lock poisoned")
            .error
            .take();
        if let Some(e) = failed {
            // Whatever part of this frame (or cluster header) reached the
            // disk goes: the file ends after its last whole frame.
            let _ = self.cut.set_len(self.good);
            let err = self.io_error(&e);
            self.broken = Some(e);
            return Err(err);
        }
        ok.map_err(|what| RecordError::Mux {
            path: self.path.clone(),
            what,
        })?;
        self.good = self.bytes();
        self.frames += 1;
        self.last_ns = ns;
        Ok(())
    }

    fn io_error(&self, e: &io::Error) -> RecordError {
        RecordError::Io {
            path: self.path.clone(),
            source: io::Error::new(e.kind(), e.to_string()),
        }
    }

    /// Writes the cues and the duration and closes the file; its size. A
    /// file a write error ended is closed as it is (its error again).
    pub fn finish(self) -> Result<u64, RecordError> {
        if let Some(e) = &self.broken {
            return Err(self.io_error(e));
        }
        let path = self.path.clone();
        let written = self.written.clone();
        // Duration in the segment's timecode scale (1 ms).
        let duration_ms = self.last_ns / 1_000_000 + 1;
        let done = match self.mux {
            Mux::Webm { segment, .. } => segment.finalize(Some(duration_ms)).is_ok(),
            Mux::Mkv(mut m) => m.write_trailer().is_ok(),
        };
        let w = written.lock().expect("writer lock poisoned");
        if let Some(e) = &w.error {
            return Err(RecordError::Io {
                path,
                source: io::Error::new(e.kind(), e.to_string()),
            });
        }
        match done {
            true => Ok(w.bytes),
            false => Err(RecordError::Mux {
                path,
                what: "finalize (no frame written?)".into(),
            }),
        }
    }

    /// The size after the last whole frame.
    pub fn good_bytes(&self) -> u64 {
        self.good
    }
}
