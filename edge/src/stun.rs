//! Just enough STUN parsing to demultiplex: the USERNAME attribute of a
//! binding request names our local ICE ufrag (`local:remote`), which maps a
//! new remote address to its session before any other packet from it.
//!
//! Input is untrusted network data: every length is checked.

/// STUN magic cookie (RFC 5389).
const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;
const HEADER: usize = 20;

/// Whether the datagram looks like STUN (first two bits zero, magic cookie).
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= HEADER && buf[0] & 0xC0 == 0 && buf[4..8] == MAGIC
}

/// The local ufrag named by a binding request's USERNAME (`local:remote`),
/// or `None` if the datagram is not STUN or carries no well-formed username.
pub fn local_ufrag(buf: &[u8]) -> Option<&str> {
    if !is_stun(buf) {
        return None;
    }
    let declared = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = buf.get(HEADER..HEADER.checked_add(declared)?)?;
    let mut at = 0usize;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        if typ == USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            return s.split(':').next().filter(|u| !u.is_empty());
        }
        // Attributes are padded to 4 bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, to exercise skipping.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut b = vec![0x00, 0x01];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&[7u8; 12]);
        b.extend_from_slice(&attrs);
        b
    }

    #[test]
    fn finds_the_local_ufrag() {
        assert_eq!(local_ufrag(&binding(b"srvUfrag:cli")), Some("srvUfrag"));
        assert_eq!(local_ufrag(&binding(b"abc")), Some("abc"));
        assert_eq!(local_ufrag(&binding(b":x")), None);
        assert_eq!(local_ufrag(&binding(&[0xff, 0xfe])), None, "not UTF-8");
    }

    #[test]
    fn rejects_non_stun_and_truncation() {
        let b = binding(b"u:v");
        for n in 0..b.len() {
            assert_eq!(local_ufrag(&b[..n]), None, "truncated at {n}");
        }
        assert!(!is_stun(&[0x80; 40]), "RTP");
        assert!(!is_stun(&[22; 40]), "DTLS");
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = local_ufrag(&buf);
        }

        #[test]
        fn never_panics_on_stun_shaped_input(tail in proptest::collection::vec(any::<u8>(), 0..100), len in 0u16..400) {
            let mut b = vec![0, 1];
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&MAGIC);
            b.extend_from_slice(&[0; 12]);
            b.extend_from_slice(&tail);
            let _ = local_ufrag(&b);
        }
    }
}
