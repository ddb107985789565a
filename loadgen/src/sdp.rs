//! Which payload types carry which kind, read from SDP text, so datagrams
//! can be counted per kind at the socket (SRTP leaves the RTP header in
//! the clear).

use crate::stamp::Kind;

/// Payload type → kind, learnt from every offer and answer of a session.
#[derive(Debug, Clone)]
pub struct PtKinds {
    kinds: [Option<Kind>; 128],
}

impl Default for PtKinds {
    fn default() -> Self {
        Self { kinds: [None; 128] }
    }
}

impl PtKinds {
    /// Learns the payload types of every `m=audio` and `m=video` line.
    pub fn learn(&mut self, sdp: &str) {
        for line in sdp.lines() {
            let kind = if line.starts_with("m=audio ") {
                Kind::Audio
            } else if line.starts_with("m=video ") {
                Kind::Video
            } else {
                continue;
            };
            // m=<media> <port> <proto> <fmt> ...
            for pt in line.split_whitespace().skip(3) {
                if let Ok(pt) = pt.parse::<u8>()
                    && let Some(slot) = self.kinds.get_mut(usize::from(pt))
                {
                    *slot = Some(kind);
                }
            }
        }
    }

    /// The kind of payload type `pt`, if an SDP named it.
    pub fn kind(&self, pt: u8) -> Option<Kind> {
        self.kinds.get(usize::from(pt)).copied().flatten()
    }

    /// The kind of an RTP datagram (SRTP or plain), `None` for RTCP, STUN,
    /// DTLS or an unknown payload type.
    pub fn classify(&self, datagram: &[u8]) -> Option<Kind> {
        // RFC 7983: RTP/RTCP start with 128..=191; RTCP types 192..=223 in byte 1.
        let (&b0, &b1) = (datagram.first()?, datagram.get(1)?);
        if !(128..=191).contains(&b0) || (192..=223).contains(&b1) || datagram.len() < 12 {
            return None;
        }
        self.kinds[usize::from(b1 & 0x7f)]
    }
}

/// The address of the first UDP candidate in an SDP (the edge's media
/// address: it is ICE-lite with one host candidate).
pub fn candidate_addr(sdp: &str) -> Option<std::net::SocketAddr> {
    sdp.lines().find_map(|l| {
        // a=candidate:<foundation> <component> <transport> <priority> <ip> <port> typ <type>
        let f: Vec<&str> = l.strip_prefix("a=candidate:")?.split_whitespace().collect();
        if !f.get(2)?.eq_ignore_ascii_case("udp") {
            return None;
        }
        let ip: std::net::IpAddr = f.get(4)?.parse().ok()?;
        Some((ip, f.get(5)?.parse().ok()?).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_media_lines_and_classifies_datagrams() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let mut k = PtKinds::default();
        k.learn(sdp);
        let rtp = |b1: u8| {
            let mut d = vec![0x80, b1];
            d.resize(40, 0);
            d
        };
        assert_eq!(k.classify(&rtp(111)), Some(Kind::Audio));
        assert_eq!(
            k.classify(&rtp(0x80 | 96)),
            Some(Kind::Video),
            "marker bit ignored"
        );
        assert_eq!(
            k.classify(&rtp(97)),
            Some(Kind::Video),
            "RTX counts with its kind"
        );
        assert_eq!(k.classify(&rtp(100)), None, "unknown payload type");
        assert_eq!(k.classify(&rtp(200)), None, "RTCP sender report");
        assert_eq!(k.classify(&[0, 1, 0, 0]), None, "STUN");
        assert_eq!(k.classify(&[22, 254, 253]), None, "DTLS");
    }

    #[test]
    fn finds_the_candidate_addr() {
        let sdp = "v=0\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=candidate:1 1 udp 2130706175 127.0.0.1 10000 typ host\r\n";
        assert_eq!(
            candidate_addr(sdp),
            Some("127.0.0.1:10000".parse().unwrap())
        );
        assert_eq!(
            candidate_addr("a=candidate:1 1 tcp 1 1.2.3.4 443 typ host"),
            None
        );
        assert_eq!(candidate_addr("v=0"), None);
    }
}
