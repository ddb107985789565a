//! A session's signaling: the WebSocket connect, `join`, the offer and
//! its answer (docs/PROTOCOL.md), and the messages after them.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Simulcast, SimulcastLayer};
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::plan::{SessionPlan, SessionResult};
use crate::sdp::PtKinds;
use crate::source::RIDS;

use super::*;

pub(super) async fn next_message(ws: &mut Ws, until: Instant) -> Result<Value, String> {
    // Bounded: every loop either returns or consumes a message before `until`.
    loop {
        let msg = tokio::time::timeout_at(until.into(), ws.next())
            .await
            .map_err(|_| "signaling_timeout".to_string())?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|_| "bad_json".to_string());
            }
            Some(Ok(Message::Close(_))) | None => return Err("ws_closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("ws_error: {e}")),
        }
    }
}

pub(super) fn msg_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

pub(super) async fn send_json(ws: &mut Ws, v: Value) -> Result<(), String> {
    tokio::time::timeout(SIGNAL_TIMEOUT, ws.send(Message::Text(v.to_string().into())))
        .await
        .map_err(|_| "ws_send_timeout".to_string())?
        .map_err(|e| format!("ws_error: {e}"))
}

impl Client {
    pub(super) async fn start(
        plan: SessionPlan,
        ws_url: &str,
        token: &str,
        env: SessionEnv,
    ) -> Result<Client, String> {
        let until = Instant::now() + SIGNAL_TIMEOUT;
        let (mut ws, _) =
            tokio::time::timeout_at(until.into(), tokio_tungstenite::connect_async(ws_url))
                .await
                .map_err(|_| "ws_connect_timeout".to_string())?
                .map_err(|e| format!("ws_connect: {e}"))?;
        send_json(
            &mut ws,
            json!({"type": "join", "token": token, "conference": plan.conference_id}),
        )
        .await?;
        let mut stage_id = None;
        let participant = loop {
            let m = next_message(&mut ws, until).await?;
            match msg_type(&m) {
                "joined" => {
                    if let Some(entries) = m.get("participants").and_then(Value::as_array) {
                        stage_id = entries.iter().find_map(|e| stage_entry(&plan, e));
                    }
                    break m
                        .get("participant")
                        .and_then(Value::as_str)
                        .unwrap_or(&plan.name)
                        .to_string();
                }
                "error" => {
                    let code = m.get("code").and_then(Value::as_str).unwrap_or("error");
                    return Err(format!("join_refused: {code}"));
                }
                _ => {}
            }
        };

        let (sock, local, mut rtc) = bind_rtc(&env).await?;
        let now = Instant::now();
        let mut change = rtc.sdp_api();
        let (own_mids, video, audio) = add_own_media(&mut change, &plan, &env, &participant);
        // The change set holds at least one m-line, so apply() makes an offer.
        let (offer, pending) = change.apply().ok_or("no_offer")?;
        let offer = offer.to_sdp_string();
        let mut pts = PtKinds::default();
        pts.learn(&offer);
        if let Some(c) = constraints(&plan, stage_id.as_deref()) {
            send_json(&mut ws, c).await?;
        }
        send_json(&mut ws, json!({"type": "offer", "sdp": offer})).await?;
        let answer = loop {
            let m = next_message(&mut ws, until).await?;
            match msg_type(&m) {
                "answer" => {
                    break m
                        .get("sdp")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                }
                "error" => {
                    let code = m.get("code").and_then(Value::as_str).unwrap_or("error");
                    return Err(format!("offer_refused: {code}"));
                }
                _ => {}
            }
        };
        pts.learn(&answer);
        // Kernel drop counters are only visible for a server on this host.
        let server_port = crate::sdp::candidate_addr(&answer)
            .filter(|a| a.ip().is_loopback())
            .map(|a| a.port());
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| format!("bad_answer: {e}"))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("bad_answer: {e}"))?;

        let parts = Parts {
            rtc,
            sock,
            local,
            sig: Signal::Edge(Box::new(ws)),
            pts,
            own_mids,
            video,
            audio,
            server_port,
            stage_id,
        };
        Ok(Client::assemble(plan, env, parts, now))
    }

    /// A client from its parts, drained once (str0m's rule).
    pub(super) fn assemble(plan: SessionPlan, env: SessionEnv, p: Parts, now: Instant) -> Client {
        let mut c = Client {
            plan,
            env,
            rtc: p.rtc,
            sock: p.sock,
            local: p.local,
            sig: p.sig,
            pending: None,
            pts: p.pts,
            own_mids: p.own_mids,
            video: p.video,
            audio: p.audio,
            remote_tracks: 0,
            connected: false,
            ready_sent: false,
            publish_from: None,
            media: None,
            counting: false,
            stopping: false,
            next_timeout: now,
            frames: Vec::new(),
            rtp: Default::default(),
            stage_id: p.stage_id,
            result: SessionResult {
                local_port: Some(p.local.port()),
                server_port: p.server_port,
                ..Default::default()
            },
        };
        // str0m's ICE agent plans its checks in its timeout handler: run it
        // once now that the remote candidates are in, or a server that
        // waits for our checks (Janus) would wait forever.
        if let Err(e) = c.rtc.handle_input(Input::Timeout(now)) {
            c.fail(&format!("rtc: {e}"));
        }
        c.drain();
        c
    }
}

/// What a started session is made of.
pub(super) struct Parts {
    pub rtc: Rtc,
    pub sock: UdpSocket,
    pub local: std::net::SocketAddr,
    pub sig: Signal,
    pub pts: PtKinds,
    pub own_mids: Vec<Mid>,
    pub video: Option<Slot>,
    pub audio: Option<Slot>,
    pub server_port: Option<u16>,
    /// The participant id on this session's stage, once the roster named it.
    pub stage_id: Option<String>,
}

/// The `video_constraints` a session sends: its tile height, and its
/// stage's height once the stage's participant id is known (as a meeting
/// page in speaker view sends them); `None` when it has neither.
pub(super) fn constraints(plan: &SessionPlan, stage_id: Option<&str>) -> Option<Value> {
    let stage = plan.stage.as_ref().zip(stage_id);
    if plan.tile_height.is_none() && stage.is_none() {
        return None;
    }
    let mut m = json!({"type": "video_constraints"});
    if let Some(h) = plan.tile_height {
        m["max_height"] = json!(h);
    }
    if let Some(((_, h), id)) = stage {
        m["max_heights"] = json!({ id: h });
    }
    Some(m)
}

/// The participant id of a roster entry if it is this session's stage.
pub(super) fn stage_entry(plan: &SessionPlan, entry: &Value) -> Option<String> {
    let (name, _) = plan.stage.as_ref()?;
    (entry.get("name").and_then(Value::as_str) == Some(name.as_str()))
        .then(|| entry.get("id").and_then(Value::as_str).map(str::to_string))
        .flatten()
}

/// A UDP socket on the run's bind address and an `Rtc` with its host
/// candidate: Opus and VP8, as the edge and the peers are configured; in
/// RTP mode, so the session packetizes as a browser does (`rtp_io`).
pub(super) async fn bind_rtc(
    env: &SessionEnv,
) -> Result<(UdpSocket, std::net::SocketAddr, Rtc), String> {
    let sock = UdpSocket::bind((env.bind, 0))
        .await
        .map_err(|e| format!("udp_bind: {e}"))?;
    crate::plan::enlarge_rcvbuf(&sock);
    let local = sock.local_addr().map_err(|e| format!("udp_bind: {e}"))?;
    let mut rtc = crate::rtp_io::rtc_config(env.crypto.clone()).build(Instant::now());
    let cand = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(cand);
    Ok((sock, local, rtc))
}

/// The session's own m-lines: a publisher's send-only video (simulcast
/// if the run says so) and audio; a receive-only client's one receive-only
/// audio line (an offer needs an m-line).
pub(super) fn add_own_media(
    change: &mut str0m::change::SdpApi<'_>,
    plan: &SessionPlan,
    env: &SessionEnv,
    participant: &str,
) -> (Vec<Mid>, Option<Slot>, Option<Slot>) {
    let mut own_mids = Vec::new();
    let (mut video, mut audio) = (None, None);
    if plan.source.is_some() {
        let simulcast = env.media.simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in RIDS {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let v = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some(participant.to_string()),
            Some(format!("{participant}-video")),
            simulcast,
        );
        own_mids.push(v);
        video = Some((v, None));
        if env.media.audio {
            let a = change.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                Some(participant.to_string()),
                Some(format!("{participant}-audio")),
                None,
            );
            own_mids.push(a);
            audio = Some((a, None));
        }
    } else {
        own_mids.push(change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None));
    }
    (own_mids, video, audio)
}
