//! What an SDP offer says about the offerer's media, read from its text:
//! enough to refuse a sending offer from a participant that may not publish,
//! before anything is negotiated.

/// Whether the offer sends audio or video: any m-line of those kinds, not
/// rejected (port 0), whose direction (its own attribute, else the
/// session's, else `sendrecv`, RFC 3264 §5.1) is `sendonly` or `sendrecv`.
pub fn sends_media(sdp: &str) -> bool {
    let mut session_dir = None;
    let mut in_media = false;
    let mut media_sends: Vec<(bool, Option<&str>)> = Vec::new(); // (is av and not rejected, direction)
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            in_media = true;
            let mut f = m.split_ascii_whitespace();
            let kind = f.next().unwrap_or("");
            let port = f.next().unwrap_or("0");
            let av = matches!(kind, "audio" | "video") && port != "0";
            media_sends.push((av, None));
            continue;
        }
        let dir = match line {
            "a=sendonly" | "a=sendrecv" | "a=recvonly" | "a=inactive" => &line[2..],
            _ => continue,
        };
        match (in_media, media_sends.last_mut()) {
            (true, Some(last)) => last.1 = Some(dir),
            _ => session_dir = Some(dir),
        }
    }
    media_sends.into_iter().any(|(av, dir)| {
        av && matches!(
            dir.or(session_dir).unwrap_or("sendrecv"),
            "sendonly" | "sendrecv"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::sends_media;

    #[test]
    fn directions_and_rejections() {
        let offer = |body: &str| format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{body}");
        assert!(sends_media(&offer(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\n"
        )));
        assert!(
            sends_media(&offer("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n")),
            "sendrecv by default"
        );
        assert!(!sends_media(&offer(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n"
        )));
        assert!(
            !sends_media(&offer("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n")),
            "rejected"
        );
        assert!(
            !sends_media(&offer("a=inactive\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")),
            "session level"
        );
        assert!(sends_media(&offer(
            "a=recvonly\r\nm=audio 9 X 111\r\nm=video 9 X 96\r\na=sendonly\r\n"
        )));
        assert!(!sends_media(&offer(
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        )));
        assert!(!sends_media(""));
        assert!(!sends_media(&offer("")), "no m-lines");
    }
}
