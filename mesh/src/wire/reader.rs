//! A bounds-checked cursor over one frame's bytes, and the matching writers.

use bytes::BufMut;

use super::{DecodeError, EncodeError, varint};

/// Reads fields from the front of a byte slice; every read is checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let (v, n) = varint::get(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    /// A varint that must be at most `max`.
    pub(crate) fn varint_max(&mut self, field: &'static str, max: u64) -> Result<u64, DecodeError> {
        let v = self.varint()?;
        if v > max {
            return Err(DecodeError::OutOfRange { field, value: v });
        }
        Ok(v)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::StringTooLong { field, len, max });
        }
        // `len <= max`, a small usize: the cast cannot truncate.
        let raw = self.bytes(len as usize)?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidString { field })
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self, frame: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                frame,
                extra: self.buf.len(),
            })
        }
    }
}

/// Writes a length-prefixed string, refusing one longer than `max` bytes.
pub(crate) fn put_str(
    buf: &mut impl BufMut,
    field: &'static str,
    s: &str,
    max: usize,
) -> Result<(), EncodeError> {
    if s.len() > max {
        return Err(EncodeError::invalid(
            field,
            format!("{} bytes exceeds the limit of {max}", s.len()),
        ));
    }
    varint::put(buf, s.len() as u64);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Writes a varint, refusing one above `max`.
pub(crate) fn put_varint_max(
    buf: &mut impl BufMut,
    field: &'static str,
    v: u64,
    max: u64,
) -> Result<(), EncodeError> {
    if v > max {
        return Err(EncodeError::invalid(field, format!("{v} exceeds {max}")));
    }
    varint::put(buf, v);
    Ok(())
}
