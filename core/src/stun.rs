//! Just enough STUN (RFC 8489) for what geomesh does besides ICE, which
//! str0m owns: the edge demultiplexes by the USERNAME of a binding request,
//! which names its local ICE ufrag (`local:remote`) and so maps a new
//! remote address to its session before any other packet from it; the
//! edge answers a binding request that names no ICE session as a plain
//! STUN server would ([`binding_response`]); and selectors check that an
//! edge's advertised media address answers ([`binding_request`],
//! [`mapped_address`]) — the wrong-public-IP and blocked-UDP mistakes.
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

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// The answer of a basic STUN server (RFC 8489 §6.3) to a binding request
/// without USERNAME (not ICE): a success with XOR-MAPPED-ADDRESS = `src`.
/// `None` for anything else. 32 or 44 bytes for a request of 20 or more:
/// no amplification worth a flood (the caller rate-limits anyway).
pub fn binding_response(buf: &[u8], src: std::net::SocketAddr) -> Option<Vec<u8>> {
    if !is_stun(buf) || u16::from_be_bytes([buf[0], buf[1]]) != BINDING_REQUEST {
        return None;
    }
    let declared = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if buf.len() != HEADER.checked_add(declared)? || local_ufrag(buf).is_some() {
        return None;
    }
    let tid = &buf[8..20];
    let (family, addr): (u8, Vec<u8>) = match src.ip() {
        std::net::IpAddr::V4(v4) => (
            1,
            v4.octets().iter().zip(MAGIC).map(|(a, m)| a ^ m).collect(),
        ),
        std::net::IpAddr::V6(v6) => {
            let key: Vec<u8> = MAGIC.iter().chain(tid).copied().collect();
            (2, v6.octets().iter().zip(key).map(|(a, k)| a ^ k).collect())
        }
    };
    let port = src.port() ^ u16::from_be_bytes([MAGIC[0], MAGIC[1]]);
    let mut attr = vec![0, family];
    attr.extend_from_slice(&port.to_be_bytes());
    attr.extend_from_slice(&addr);
    let mut out = Vec::with_capacity(HEADER + 4 + attr.len());
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&((4 + attr.len()) as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(tid);
    out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    out.extend_from_slice(&attr);
    Some(out)
}

/// A binding request without attributes (a STUN client's check of an
/// address), with transaction id `tid`.
pub fn binding_request(tid: [u8; 12]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER);
    b.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&tid);
    b
}

/// The address a binding success answering transaction `tid` reports, if
/// `buf` is one.
pub fn mapped_address(buf: &[u8], tid: [u8; 12]) -> Option<std::net::SocketAddr> {
    if !is_stun(buf) || u16::from_be_bytes([buf[0], buf[1]]) != BINDING_SUCCESS || buf[8..20] != tid
    {
        return None;
    }
    let declared = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = buf.get(HEADER..HEADER.checked_add(declared)?)?;
    let mut at = 0usize;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let v = body.get(at + 4..at + 4 + len)?;
        if typ == XOR_MAPPED_ADDRESS && v.len() >= 8 {
            let port = u16::from_be_bytes([v[2], v[3]]) ^ u16::from_be_bytes([MAGIC[0], MAGIC[1]]);
            let ip: std::net::IpAddr = match (v[1], v.len()) {
                (1, 8) => {
                    let o: Vec<u8> = v[4..8].iter().zip(MAGIC).map(|(a, m)| a ^ m).collect();
                    std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3]).into()
                }
                (2, 20) => {
                    let key = MAGIC.iter().chain(&tid);
                    let o: Vec<u8> = v[4..20].iter().zip(key).map(|(a, k)| a ^ k).collect();
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(o).ok()?).into()
                }
                _ => return None,
            };
            return Some(std::net::SocketAddr::new(ip, port));
        }
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
    fn a_plain_binding_request_gets_its_mapped_address_and_ice_does_not() {
        for src in ["203.0.113.7:40000", "[2001:db8::7]:5353"] {
            let src: std::net::SocketAddr = src.parse().unwrap();
            let tid = [9u8; 12];
            let req = binding_request(tid);
            let reply = binding_response(&req, src).expect("a basic STUN answer");
            assert_eq!(mapped_address(&reply, tid), Some(src));
            assert_eq!(mapped_address(&reply, [1; 12]), None, "another transaction");
            for n in 0..reply.len() {
                assert_eq!(mapped_address(&reply[..n], tid), None, "truncated at {n}");
            }
        }
        let src = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            binding_response(&binding(b"srv:cli"), src),
            None,
            "ICE is the session's"
        );
        assert_eq!(binding_response(&[0x80; 40], src), None, "RTP");
        let mut short = binding_request([0; 12]);
        short[3] = 8; // declares attributes it does not have
        assert_eq!(binding_response(&short, src), None);
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
