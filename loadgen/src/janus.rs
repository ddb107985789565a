//! The Janus adapter: one handle of Janus's VideoRoom plugin over the
//! Janus API on a WebSocket (`janus-protocol`), so the peer benchmark
//! (scripts/bench-peers.sh) drives Janus with the same clients, media and
//! accounting as the edge (issue #19).
//!
//! Janus gives each direction its own PeerConnection: a participant that
//! publishes and receives is two sessions here, a publisher handle (our
//! offer, Janus's answer) and a subscriber handle (Janus's offer to the
//! feeds it asks for, our answer with `start`). Rooms and feed ids are
//! derived from the run's names, so every session of a conference agrees
//! on them without talking to each other.
//!
//! The peer benchmark's mediasoup server (scripts/peers/mediasoup/server.mjs)
//! speaks the same subset of the Janus API, so this adapter drives it too
//! (`--mediasoup`).
//!
//! Requests are answered on the socket with their `transaction`: a
//! synchronous plugin request with `success`, an asynchronous one (`join`,
//! `publish`, anything with a JSEP) with `ack` and later an `event`.
//! Messages that arrive while a request waits (`webrtcup`, `media`,
//! `trickle`, …) are kept for the session to handle afterwards.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The socket to Janus.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Janus ends a session that sends nothing for 60 s (`session_timeout`).
pub const KEEPALIVE: Duration = Duration::from_secs(20);

/// VideoRoom's "no such feed" (a publisher not published yet).
const NO_SUCH_FEED: i64 = 428;
/// VideoRoom's "room already exists".
const ROOM_EXISTS: i64 = 427;

/// The room of a conference: FNV-1a of its id, within JavaScript's safe
/// integers (Janus's own demos use those).
pub fn room_id(conference_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in conference_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & ((1 << 52) - 1)).max(1)
}

/// The feed (publisher) id of a run's source: unique in its room.
pub fn feed_id(source: u32) -> u64 {
    u64::from(source) + 1
}

/// One VideoRoom handle in one Janus session.
pub struct JanusLink {
    ws: Ws,
    session: u64,
    handle: u64,
    next_tx: u64,
    /// When the next keepalive is due.
    pub keepalive_at: Instant,
    pending: VecDeque<Value>,
}

fn err(v: &Value) -> Option<String> {
    if let Some(e) = v.get("error") {
        return Some(format!(
            "janus_error: {}",
            e.get("reason").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    let data = v.pointer("/plugindata/data")?;
    let code = data.get("error_code")?.as_i64()?;
    Some(format!(
        "videoroom_error {code}: {}",
        data.get("error").and_then(Value::as_str).unwrap_or("?")
    ))
}

fn error_code(v: &Value) -> Option<i64> {
    v.pointer("/plugindata/data/error_code")?.as_i64()
}

impl JanusLink {
    /// Connects, creates a session and attaches the VideoRoom plugin.
    pub async fn connect(url: &str, until: Instant) -> Result<Self, String> {
        let mut req = url
            .into_client_request()
            .map_err(|e| format!("janus_url: {e}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().expect("a valid header value"),
        );
        let (ws, _) = tokio::time::timeout_at(until.into(), tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| "ws_connect_timeout".to_string())?
            .map_err(|e| format!("ws_connect: {e}"))?;
        let mut link = JanusLink {
            ws,
            session: 0,
            handle: 0,
            next_tx: 0,
            keepalive_at: Instant::now() + KEEPALIVE,
            pending: VecDeque::new(),
        };
        let created = link.call(json!({"janus": "create"}), until).await?;
        link.session = id_of(&created)?;
        let attached = link
            .call(
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "session_id": link.session}),
                until,
            )
            .await?;
        link.handle = id_of(&attached)?;
        Ok(link)
    }

    /// The socket, for the session's loop to wait on.
    pub fn ws(&mut self) -> &mut Ws {
        &mut self.ws
    }

    /// A message that came while a request waited.
    pub fn take_pending(&mut self) -> Option<Value> {
        self.pending.pop_front()
    }

    async fn send(&mut self, mut v: Value) -> Result<String, String> {
        self.next_tx += 1;
        let tx = format!("t{}", self.next_tx);
        v["transaction"] = json!(tx);
        if self.session != 0 {
            v["session_id"] = json!(self.session);
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            self.ws.send(Message::Text(v.to_string().into())),
        )
        .await
        .map_err(|_| "ws_send_timeout".to_string())?
        .map_err(|e| format!("ws_error: {e}"))?;
        self.keepalive_at = Instant::now() + KEEPALIVE;
        Ok(tx)
    }

    /// Sends `v` and waits for its answer (not the `ack`).
    async fn call(&mut self, v: Value, until: Instant) -> Result<Value, String> {
        let tx = self.send(v).await?;
        // Bounded by `until`: each pass consumes a message or times out.
        loop {
            let msg = tokio::time::timeout_at(until.into(), self.ws.next())
                .await
                .map_err(|_| "signaling_timeout".to_string())?;
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => return Err("ws_closed".into()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("ws_error: {e}")),
            };
            let v: Value = serde_json::from_str(text.as_str()).map_err(|_| "bad_json")?;
            let mine = v.get("transaction").and_then(Value::as_str) == Some(tx.as_str());
            match v.get("janus").and_then(Value::as_str) {
                Some("ack") if mine => {}
                _ if mine => return Ok(v),
                _ => self.pending.push_back(v),
            }
        }
    }

    /// A VideoRoom request on this handle, with an optional JSEP; its
    /// answer, or the plugin's error.
    pub async fn message(
        &mut self,
        body: Value,
        jsep: Option<Value>,
        until: Instant,
    ) -> Result<Value, String> {
        let mut m = json!({"janus": "message", "handle_id": self.handle, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        self.call(m, until).await
    }

    /// Creates the room if it does not exist yet (every session of a
    /// conference tries; the first wins).
    pub async fn ensure_room(&mut self, room: u64, until: Instant) -> Result<(), String> {
        let r = self
            .message(
                json!({"request": "create", "room": room, "publishers": 100,
                       "videocodec": "vp8", "audiocodec": "opus",
                       "bitrate": 0, "notify_joining": false}),
                None,
                until,
            )
            .await?;
        match (err(&r), error_code(&r)) {
            (None, _) | (_, Some(ROOM_EXISTS)) => Ok(()),
            (Some(e), _) => Err(e),
        }
    }

    /// Joins `room` as publisher `feed` and publishes `offer`; Janus's answer.
    pub async fn publish(
        &mut self,
        room: u64,
        feed: u64,
        display: &str,
        offer: &str,
        until: Instant,
    ) -> Result<String, String> {
        let joined = self
            .message(
                json!({"request": "join", "ptype": "publisher", "room": room, "id": feed, "display": display}),
                None,
                until,
            )
            .await?;
        if let Some(e) = err(&joined) {
            return Err(e);
        }
        let r = self
            .message(
                json!({"request": "publish"}),
                // Janus takes simulcast rids as listed high to low unless
                // told; ours (q, h, f) go low to high.
                Some(json!({"type": "offer", "sdp": offer, "rid_order": "lmh"})),
                until,
            )
            .await?;
        if let Some(e) = err(&r) {
            return Err(e);
        }
        self.end_of_candidates().await?;
        jsep_sdp(&r, "answer")
    }

    /// Subscribes to `feeds` in `room`; Janus's offer. A feed that has not
    /// published yet is waited for (until `until`).
    pub async fn subscribe(
        &mut self,
        room: u64,
        feeds: &[u64],
        until: Instant,
    ) -> Result<(String, Vec<FeedStream>), String> {
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        // Bounded by `until`: each pass is one request.
        loop {
            let r = self
                .message(
                    json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams}),
                    None,
                    until,
                )
                .await?;
            match (err(&r), error_code(&r)) {
                (None, _) => return Ok((jsep_sdp(&r, "offer")?, feed_streams(&r))),
                (Some(_), Some(NO_SUCH_FEED)) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                (Some(e), _) => return Err(e),
            }
        }
    }

    /// Answers Janus's offer on a subscriber handle (`start`).
    pub async fn start(&mut self, answer: &str, until: Instant) -> Result<(), String> {
        let r = self
            .message(
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer})),
                until,
            )
            .await?;
        if let Some(e) = err(&r) {
            return Err(e);
        }
        self.end_of_candidates().await
    }

    /// Asks for a simulcast layer (`substream`, 0 lowest … 2 top) per
    /// video m-line: `(mid, substream)`, what each tile needs, as
    /// `video_constraints` asks the edge.
    pub async fn substreams(
        &mut self,
        layers: &[(String, u8)],
        until: Instant,
    ) -> Result<(), String> {
        let streams: Vec<Value> = layers
            .iter()
            .map(|(m, s)| json!({"mid": m, "substream": s}))
            .collect();
        let r = self
            .message(
                json!({"request": "configure", "streams": streams}),
                None,
                until,
            )
            .await?;
        err(&r).map_or(Ok(()), Err)
    }

    /// Our candidates are all in the SDP: say so.
    async fn end_of_candidates(&mut self) -> Result<(), String> {
        let m =
            json!({"janus": "trickle", "handle_id": self.handle, "candidate": {"completed": true}});
        self.send(m).await.map(|_| ())
    }

    /// Keeps the session alive; the `ack` is ignored when it comes.
    pub async fn keepalive(&mut self) -> Result<(), String> {
        self.send(json!({"janus": "keepalive"})).await.map(|_| ())
    }

    /// Ends the session (its handles and PeerConnections go with it).
    pub async fn destroy(&mut self) {
        let _ = self.send(json!({"janus": "destroy"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

fn id_of(v: &Value) -> Result<u64, String> {
    if let Some(e) = err(v) {
        return Err(e);
    }
    v.pointer("/data/id")
        .and_then(Value::as_u64)
        .ok_or_else(|| "janus_no_id".to_string())
}

/// The SDP of `v`'s JSEP of type `kind`.
pub fn jsep_sdp(v: &Value, kind: &str) -> Result<String, String> {
    let jsep = v.get("jsep").ok_or("janus_no_jsep")?;
    if jsep.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(format!("janus_jsep_not_{kind}"));
    }
    jsep.get("sdp")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "janus_no_sdp".to_string())
}

/// The mids of the video m-lines of `sdp`.
pub fn video_mids(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut video = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            video = m.starts_with("video");
        } else if let Some(mid) = line.strip_prefix("a=mid:")
            && video
        {
            out.push(mid.trim().to_string());
        }
    }
    out
}

/// One m-line of a subscriber handle, as Janus's `attached` event lists
/// it: which publisher (by display name) it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStream {
    /// The m-line's mid.
    pub mid: String,
    /// `video`, `audio` or `data`.
    pub kind: String,
    /// The publisher's display name (empty when Janus gives none).
    pub display: String,
}

/// The streams of a subscriber's `attached` event (Janus 1.x multistream).
pub fn feed_streams(v: &Value) -> Vec<FeedStream> {
    let Some(list) = v
        .pointer("/plugindata/data/streams")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let text = |s: &Value, k: &str| {
        s.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    list.iter()
        .filter_map(|s| {
            let mid = match s.get("mid")? {
                Value::String(m) => m.clone(),
                m => m.to_string(),
            };
            Some(FeedStream {
                mid,
                kind: text(s, "type"),
                display: text(s, "feed_display"),
            })
        })
        .collect()
}

/// The layer for each video m-line of a subscriber: the stage's
/// publisher (by display name) at `stage`'s height, every other at
/// `tile_height` (a page in speaker view). Without the streams list
/// (a server that gives none), every video mid of `offer` at the tile height.
pub fn layers_for(
    offer: &str,
    streams: &[FeedStream],
    tile_height: u16,
    stage: Option<&(String, u16)>,
) -> Vec<(String, u8)> {
    let video: Vec<&FeedStream> = streams.iter().filter(|s| s.kind == "video").collect();
    if video.is_empty() {
        return video_mids(offer)
            .into_iter()
            .map(|m| (m, substream_for(tile_height)))
            .collect();
    }
    video
        .into_iter()
        .map(|s| {
            let h = stage
                .filter(|(name, _)| *name == s.display)
                .map_or(tile_height, |(_, h)| *h);
            (s.mid.clone(), substream_for(h))
        })
        .collect()
}

/// The simulcast layer (q, h, f: 180, 360, 720 lines) a tile this tall needs.
pub fn substream_for(tile_height: u16) -> u8 {
    match tile_height {
        0..=180 => 0,
        181..=360 => 1,
        _ => 2,
    }
}

/// What a Janus message after setup means for a session.
#[derive(Debug, PartialEq)]
pub enum JanusEvent {
    /// Janus closed the PeerConnection, or the session timed out.
    Gone(String),
    /// A remote ICE candidate (`a=candidate:` line without the `a=`).
    Candidate(String),
    /// A renegotiation offer (a subscriber's feeds changed).
    Offer(String),
    /// Nothing to do (`webrtcup`, `media`, `ack`, …).
    Other,
}

/// Reads a message that came outside a request.
pub fn event(v: &Value) -> JanusEvent {
    match v.get("janus").and_then(Value::as_str) {
        Some("hangup") => JanusEvent::Gone(format!(
            "janus_hangup: {}",
            v.get("reason").and_then(Value::as_str).unwrap_or("?")
        )),
        Some("timeout") => JanusEvent::Gone("janus_timeout".into()),
        Some("detached") => JanusEvent::Gone("janus_detached".into()),
        Some("trickle") => v
            .pointer("/candidate/candidate")
            .and_then(Value::as_str)
            .map_or(JanusEvent::Other, |c| JanusEvent::Candidate(c.to_string())),
        Some("event") => jsep_sdp(v, "offer").map_or(JanusEvent::Other, JanusEvent::Offer),
        _ => JanusEvent::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_feeds_are_stable_and_in_range() {
        let a = room_id("lg-ab12-0");
        assert_eq!(a, room_id("lg-ab12-0"));
        assert_ne!(a, room_id("lg-ab12-1"));
        assert!(a > 0 && a < 1 << 52);
        assert_eq!(feed_id(0), 1);
    }

    #[test]
    fn video_mids_and_layers() {
        let sdp = "v=0\r\nm=audio 9 UDP 111\r\na=mid:a0\r\nm=video 9 UDP 96\r\na=mid:v1\r\nm=video 9 UDP 96\r\na=mid:v2\r\n";
        assert_eq!(video_mids(sdp), vec!["v1", "v2"]);
        assert_eq!(
            (substream_for(180), substream_for(360), substream_for(720)),
            (0, 1, 2)
        );
    }

    #[test]
    fn speaker_view_asks_the_stage_feed_for_its_layer() {
        // Janus 1.1's `attached` event (mids as strings; the mediasoup
        // server's are the same shape).
        let attached = json!({"janus": "event", "plugindata": {"data": {"videoroom": "attached",
            "streams": [
                {"mindex": 0, "mid": "0", "type": "audio", "feed_id": 1, "feed_display": "pub0"},
                {"mindex": 1, "mid": "1", "type": "video", "feed_id": 1, "feed_display": "pub0"},
                {"mindex": 2, "mid": "2", "type": "audio", "feed_id": 2, "feed_display": "pub1"},
                {"mindex": 3, "mid": "3", "type": "video", "feed_id": 2, "feed_display": "pub1"}]}}});
        let streams = feed_streams(&attached);
        assert_eq!(streams.len(), 4);
        let stage = ("pub1".to_string(), 720);
        assert_eq!(
            layers_for("", &streams, 180, Some(&stage)),
            vec![("1".to_string(), 0), ("3".to_string(), 2)]
        );
        assert_eq!(
            layers_for("", &streams, 360, None),
            vec![("1".to_string(), 1), ("3".to_string(), 1)]
        );
        // No streams list: every video m-line of the offer at the tile height.
        let sdp = "v=0\r\nm=video 9 UDP 96\r\na=mid:v1\r\n";
        assert_eq!(
            layers_for(sdp, &[], 180, Some(&stage)),
            vec![("v1".to_string(), 0)]
        );
    }

    #[test]
    fn events_after_setup() {
        let offer = json!({"janus": "event", "jsep": {"type": "offer", "sdp": "v=0"},
                           "plugindata": {"data": {"videoroom": "updated"}}});
        assert_eq!(event(&offer), JanusEvent::Offer("v=0".into()));
        let hang = json!({"janus": "hangup", "reason": "DTLS alert"});
        assert_eq!(
            event(&hang),
            JanusEvent::Gone("janus_hangup: DTLS alert".into())
        );
        let cand = json!({"janus": "trickle", "candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host"}});
        assert!(matches!(event(&cand), JanusEvent::Candidate(_)));
        assert_eq!(event(&json!({"janus": "webrtcup"})), JanusEvent::Other);
        let e = json!({"janus": "success", "plugindata": {"data": {"error_code": 428, "error": "No such feed"}}});
        assert_eq!(error_code(&e), Some(428));
        assert_eq!(err(&e).unwrap(), "videoroom_error 428: No such feed");
    }
}
