//! Reassembles length-prefixed control frames from stream chunks.

use bytes::{Buf, BytesMut};

use super::{ControlFrame, DecodeError, MAX_FRAME_LEN, varint};

/// Buffers control-stream bytes and yields whole frames.
///
/// Never holds more than one partial frame (at most [`MAX_FRAME_LEN`] plus
/// the length prefix) beyond what was last pushed: a length above the limit
/// is an error as soon as its prefix arrives. After an error the stream is
/// out of sync and the decoder keeps returning that error.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    #[must_use = "a decoded frame must be handled"]
    pub fn next_frame(&mut self) -> Result<Option<ControlFrame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let (len, n) = match varint::get(&self.buf) {
            Ok(v) => v,
            Err(DecodeError::Truncated) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        if len > MAX_FRAME_LEN as u64 {
            return Err(self.fail(DecodeError::FrameTooLong {
                len,
                max: MAX_FRAME_LEN,
            }));
        }
        if len == 0 {
            return Err(self.fail(DecodeError::EmptyFrame));
        }
        // `len <= MAX_FRAME_LEN`: fits usize.
        let len = len as usize;
        if self.buf.len() < n + len {
            return Ok(None);
        }
        self.buf.advance(n);
        let body = self.buf.split_to(len);
        match ControlFrame::decode_body(&body) {
            Ok(f) => Ok(Some(f)),
            // An unknown type is length-delimited: the stream stays in sync.
            Err(e @ DecodeError::UnknownFrameType(_)) => Err(e),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.buf.clear();
        self.failed = Some(e.clone());
        e
    }
}
