//! One WebSocket signaling session (`GET /v1/rtc`).
//!
//! The first message must be `join` (within [`JOIN_TIMEOUT`] of the
//! connection, whatever else arrives); after that the client must offer
//! within [`OFFER_TIMEOUT`], then answers edge offers and reports mute
//! changes. Bad messages get a typed `error` and the session goes on; a bad
//! token, a replaced session or a lost media session end it. A client that
//! does not read is dropped, not buffered without end: at most
//! [`MAX_QUEUED`] messages wait for it, and one write may take at most
//! [`SEND_TIMEOUT`].

use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message, WebSocket};
use geomesh_core::ConferenceId;
use geomesh_core::token::JoinClaims;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span};

use crate::http::AppState;
use crate::messages::{ClientMessage, ServerMessage};
use crate::metrics::Metrics;
use crate::router::{PeerKey, Role};

/// How long a new socket has to send `join` (pings do not extend it).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a joined session has to send its offer.
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one write to the client may take before it counts as gone.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages that may wait for a client that does not read.
pub const MAX_QUEUED: usize = 1000;

async fn send(socket: &mut WebSocket, state: &AppState, msg: &ServerMessage) -> bool {
    if let ServerMessage::Error { code, .. } = msg {
        Metrics::count(&state.metrics.signaling_errors, code);
    }
    // Serializing our own message types cannot fail.
    let text = serde_json::to_string(msg).expect("serialize server message");
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(r) => r.is_ok(),
        Err(_) => {
            Metrics::count(&state.metrics.signaling_errors, "slow_reader");
            false
        }
    }
}

/// Reads the next text message; `None` when the socket is done.
async fn next_text(socket: &mut WebSocket, state: &AppState) -> Option<Result<String, ()>> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(t)) => return Some(Ok(t.to_string())),
            Ok(Message::Binary(_)) => return Some(Err(())),
            Ok(Message::Close(_)) => return None,
            Ok(_) => continue,
            Err(e) => {
                // Oversized frames and protocol violations end up here.
                Metrics::count(&state.metrics.signaling_errors, "socket_error");
                debug!("websocket error: {e}");
                return None;
            }
        }
    }
}

fn bad_message(detail: impl std::fmt::Display) -> ServerMessage {
    ServerMessage::error("bad_message", detail.to_string(), false)
}

/// Refuses a join: counted under `result`, told as a fatal `code`.
async fn refuse_join(
    socket: &mut WebSocket,
    state: &AppState,
    result: &str,
    code: &str,
    why: impl std::fmt::Display,
) {
    Metrics::count(&state.metrics.joins, result);
    send(
        socket,
        state,
        &ServerMessage::error(code, why.to_string(), true),
    )
    .await;
}

/// Why a join is refused: counted under `result`, told as a fatal `code`.
#[derive(Debug)]
pub struct Refusal {
    /// The `joins` counter label.
    pub result: &'static str,
    /// The error code the client reads.
    pub code: &'static str,
    /// Why, for the client.
    pub why: String,
}

/// Opens the media session of an admitted WebSocket participant, its
/// messages going to `signal`. A participant that may not receive joins
/// like a WHIP publisher (in the roster, sent nothing); one that may not
/// send is refused any offer that sends ([`on_text`]).
pub async fn join_session(
    state: &AppState,
    claims: &JoinClaims,
    signal: mpsc::UnboundedSender<ServerMessage>,
) -> Result<crate::media::Joined, crate::media::MediaError> {
    let role = if claims.no_subscribe {
        Role::Publisher
    } else {
        Role::Member
    };
    state
        .media
        .join(
            claims.conference.clone(),
            claims.participant.clone(),
            claims.name.clone(),
            role,
            claims.location,
            Some(signal),
        )
        .await
}

/// Admits a `join`: the edge has room and is not closing, the token is
/// valid for this edge (and the conference the client named) and has
/// sessions left.
pub fn admit(
    state: &AppState,
    token: &str,
    conference: Option<&ConferenceId>,
) -> Result<JoinClaims, Refusal> {
    let refusal = |result, code, why: String| Refusal { result, code, why };
    if state.is_full() {
        return Err(refusal(
            "full",
            "edge_full",
            "this edge is at its capacity: join through the selector again".into(),
        ));
    }
    if state.is_closing() {
        return Err(refusal(
            "closing",
            "edge_closing",
            "this edge is shutting down: join through the selector again".into(),
        ));
    }
    let claims = state
        .verifier
        .verify(token, SystemTime::now(), &state.edge_id, conference)
        .map_err(|e| refusal("unauthorized", "unauthorized", e.to_string()))?;
    state
        .use_token(token, claims.exp)
        .map_err(|e| refusal("token_overused", "unauthorized", e.to_string()))?;
    Ok(claims)
}

/// What one client message after `join` leads to.
#[derive(Debug)]
pub enum Step {
    /// Send this (or nothing) and go on.
    Reply(Option<ServerMessage>),
    /// The client's offer was answered: send the answer; the offer
    /// deadline no longer applies.
    Answered(ServerMessage),
    /// The client left.
    Leave,
}

/// Handles one text message of joined session `key`.
pub async fn on_text(state: &AppState, key: PeerKey, may_publish: bool, text: &str) -> Step {
    let reply = match serde_json::from_str::<ClientMessage>(text) {
        Err(e) => Some(bad_message(e)),
        Ok(ClientMessage::Join { .. }) => Some(ServerMessage::error(
            "already_joined",
            "this session has joined",
            false,
        )),
        Ok(ClientMessage::Offer { sdp }) if !may_publish && crate::sdp::sends_media(&sdp) => {
            Metrics::count(&state.metrics.joins, "forbidden");
            Some(ServerMessage::error(
                "forbidden",
                "this participant may not publish (its grant): offer receive-only m-lines",
                false,
            ))
        }
        Ok(ClientMessage::Offer { sdp }) => {
            return match state.media.offer(key, sdp).await {
                Ok(sdp) => Step::Answered(ServerMessage::Answer { sdp }),
                Err(e) => Step::Reply(Some(ServerMessage::error("bad_sdp", e.to_string(), false))),
            };
        }
        Ok(ClientMessage::Answer { sdp }) => match state.media.answer(key, sdp).await {
            Ok(()) => None,
            Err(e) => Some(ServerMessage::error("bad_sdp", e.to_string(), false)),
        },
        Ok(ClientMessage::Mute { kind, muted }) => {
            state.media.mute(key, kind, muted).await;
            None
        }
        Ok(ClientMessage::VideoConstraints {
            last_n,
            pinned,
            max_height,
            max_heights,
        }) => {
            let tiles = crate::tiles::TileHeights::new(max_height, max_heights);
            state.media.constraints(key, last_n, pinned, tiles).await;
            None
        }
        Ok(ClientMessage::Ping) => Some(ServerMessage::Pong),
        Ok(ClientMessage::Leave) => return Step::Leave,
    };
    Step::Reply(reply)
}

/// Runs one session to its end.
pub async fn session(mut socket: WebSocket, state: AppState) {
    // 1. Join, by a fixed deadline.
    let join_by = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let (token, conference) = loop {
        let Ok(next) = tokio::time::timeout_at(join_by, next_text(&mut socket, &state)).await
        else {
            send(
                &mut socket,
                &state,
                &ServerMessage::error("not_joined", "no join within 10 s", true),
            )
            .await;
            return;
        };
        let Some(text) = next else { return };
        let Ok(text) = text else {
            send(
                &mut socket,
                &state,
                &bad_message("binary messages are not part of the protocol"),
            )
            .await;
            continue;
        };
        match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Join { token, conference }) => break (token, conference),
            Ok(ClientMessage::Ping) => {
                send(&mut socket, &state, &ServerMessage::Pong).await;
            }
            Ok(_) => {
                send(
                    &mut socket,
                    &state,
                    &ServerMessage::error("not_joined", "send join first", false),
                )
                .await;
            }
            Err(e) => {
                send(&mut socket, &state, &bad_message(e)).await;
            }
        }
    };
    let claims = match admit(&state, &token, conference.as_ref()) {
        Ok(c) => c,
        Err(r) => return refuse_join(&mut socket, &state, r.result, r.code, r.why).await,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let joined = match join_session(&state, &claims, tx).await {
        Ok(j) => j,
        Err(e) => {
            send(
                &mut socket,
                &state,
                &ServerMessage::error("internal", e.to_string(), true),
            )
            .await;
            return;
        }
    };
    Metrics::count(&state.metrics.joins, "ok");
    let key = joined.key;
    let span = info_span!("participant", id = %claims.participant, conference = %claims.conference, session = key.0);
    let welcome = ServerMessage::Joined {
        participant: claims.participant.clone(),
        conference: claims.conference.clone(),
        edge: state.edge_id.to_string(),
        region: state.region.to_string(),
        participants: joined.roster,
        can_publish: !claims.no_publish,
        can_subscribe: !claims.no_subscribe,
    };
    if send(&mut socket, &state, &welcome).await {
        run(&mut socket, &state, key, !claims.no_publish, &mut rx)
            .instrument(span.clone())
            .await;
    }
    state.media.leave(key).await;
    span.in_scope(|| info!("signaling closed"));
}

async fn run(
    socket: &mut WebSocket,
    state: &AppState,
    key: PeerKey,
    may_publish: bool,
    rx: &mut mpsc::UnboundedReceiver<ServerMessage>,
) {
    let offer_by = tokio::time::Instant::now() + OFFER_TIMEOUT;
    let mut offered = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(offer_by), if !offered => {
                send(socket, state, &ServerMessage::error("no_offer", "no offer within 10 s of joining", true)).await;
                return;
            }
            out = rx.recv() => {
                // None: the media loop ended the session (its last message was sent).
                let Some(msg) = out else { return };
                if rx.len() >= MAX_QUEUED {
                    Metrics::count(&state.metrics.signaling_errors, "slow_reader");
                    debug!(queued = rx.len(), "the client does not read: dropping it");
                    return;
                }
                let fatal = matches!(msg, ServerMessage::Error { fatal: true, .. });
                if !send(socket, state, &msg).await || fatal {
                    return;
                }
            }
            inp = next_text(socket, state) => {
                let Some(text) = inp else { return };
                let Ok(text) = text else {
                    send(socket, state, &bad_message("binary messages are not part of the protocol")).await;
                    continue;
                };
                let reply = match on_text(state, key, may_publish, &text).await {
                    Step::Reply(reply) => reply,
                    Step::Answered(answer) => {
                        offered = true;
                        Some(answer)
                    }
                    Step::Leave => return,
                };
                if let Some(reply) = reply
                    && !send(socket, state, &reply).await
                {
                    return;
                }
            }
        }
    }
}
