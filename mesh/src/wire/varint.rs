//! QUIC variable-length integers (RFC 9000 §16).
//!
//! The two most significant bits of the first byte give the length: `00` one
//! byte (6-bit value), `01` two bytes (14 bits), `10` four bytes (30 bits),
//! `11` eight bytes (62 bits); the rest is the value, big-endian. We always
//! encode the shortest form and, like QUIC, accept longer forms on input.

use bytes::BufMut;

use super::DecodeError;

/// The largest value a varint can hold: 2^62 − 1.
pub const MAX: u64 = (1 << 62) - 1;
/// The largest value that fits the 1-byte form.
pub const MAX_1: u64 = (1 << 6) - 1;
/// The largest value that fits the 2-byte form.
pub const MAX_2: u64 = (1 << 14) - 1;
/// The largest value that fits the 4-byte form.
pub const MAX_4: u64 = (1 << 30) - 1;

/// How many bytes the shortest encoding of `v` takes. `v` must be at most [`MAX`].
pub fn len(v: u64) -> usize {
    debug_assert!(v <= MAX, "varint out of range: {v}");
    if v <= MAX_1 {
        1
    } else if v <= MAX_2 {
        2
    } else if v <= MAX_4 {
        4
    } else {
        8
    }
}

/// Appends the shortest encoding of `v`.
///
/// # Panics
/// If `v > MAX`: every caller encodes a value it has range-checked (handles,
/// lengths, nonces masked to 62 bits), so a larger value is a bug.
pub fn put(buf: &mut impl BufMut, v: u64) {
    assert!(v <= MAX, "varint out of range: {v} (a bug in the encoder)");
    match len(v) {
        1 => buf.put_u8(v as u8),
        2 => buf.put_u16(0x4000 | v as u16),
        4 => buf.put_u32(0x8000_0000 | v as u32),
        _ => buf.put_u64(0xc000_0000_0000_0000 | v),
    }
}

/// Reads one varint from the front of `input`, returning it and the bytes it used.
pub fn get(input: &[u8]) -> Result<(u64, usize), DecodeError> {
    let first = *input.first().ok_or(DecodeError::Truncated)?;
    let n = 1usize << (first >> 6);
    if input.len() < n {
        return Err(DecodeError::Truncated);
    }
    let mut v = u64::from(first & 0x3f);
    for b in &input[1..n] {
        v = (v << 8) | u64::from(*b);
    }
    Ok((v, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_examples() {
        // RFC 9000 appendix A.1.
        assert_eq!(
            get(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]).unwrap(),
            (151_288_809_941_952_652, 8)
        );
        assert_eq!(get(&[0x9d, 0x7f, 0x3e, 0x7d]).unwrap(), (494_878_333, 4));
        assert_eq!(get(&[0x7b, 0xbd]).unwrap(), (15_293, 2));
        assert_eq!(get(&[0x25]).unwrap(), (37, 1));
        // A non-minimal two-byte 37 is accepted, as in QUIC.
        assert_eq!(get(&[0x40, 0x25]).unwrap(), (37, 2));
        assert_eq!(get(&[]), Err(DecodeError::Truncated));
        assert_eq!(get(&[0x80, 0, 0]), Err(DecodeError::Truncated));
    }

    proptest! {
        #[test]
        fn round_trips(v in 0..=MAX) {
            let mut buf = Vec::new();
            put(&mut buf, v);
            prop_assert_eq!(buf.len(), len(v));
            prop_assert_eq!(get(&buf).unwrap(), (v, buf.len()));
        }
    }
}
