//! A session's start against Janus: a publisher handle publishes the
//! session's media (our offer, Janus's answer); a receive-only session's
//! subscriber handle asks for its conference's feeds and answers Janus's
//! offer ([`crate::janus`]).

use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};

use super::signaling::{Parts, add_own_media, bind_rtc};
use super::*;
use crate::janus::{JanusLink, feed_id, room_id};

/// How long a subscriber waits for its feeds to be published.
const FEEDS_WAIT: Duration = Duration::from_secs(30);

impl Client {
    pub(super) async fn start_janus(
        plan: SessionPlan,
        url: &str,
        env: SessionEnv,
    ) -> Result<Client, String> {
        let until = Instant::now() + SIGNAL_TIMEOUT;
        let mut link = JanusLink::connect(url, until).await?;
        let room = room_id(&plan.conference_id);
        link.ensure_room(room, until).await?;
        let (sock, local, mut rtc) = bind_rtc(&env).await?;
        let now = Instant::now();
        let mut pts = PtKinds::default();
        let (own_mids, video, audio, server_sdp) = match plan.source {
            Some(source) => {
                let mut change = rtc.sdp_api();
                let (own_mids, video, audio) = add_own_media(&mut change, &plan, &env, &plan.name);
                let (offer, pending) = change.apply().ok_or("no_offer")?;
                let offer = offer.to_sdp_string();
                pts.learn(&offer);
                let answer = link
                    .publish(room, feed_id(source), &plan.name, &offer, until)
                    .await?;
                pts.learn(&answer);
                let parsed =
                    SdpAnswer::from_sdp_string(&answer).map_err(|e| format!("bad_answer: {e}"))?;
                rtc.sdp_api()
                    .accept_answer(pending, parsed)
                    .map_err(|e| format!("bad_answer: {e}"))?;
                (own_mids, video, audio, answer)
            }
            None => {
                let feeds: Vec<u64> = plan.receives.iter().map(|s| feed_id(*s)).collect();
                let (offer, streams) = link
                    .subscribe(room, &feeds, Instant::now() + FEEDS_WAIT)
                    .await?;
                pts.learn(&offer);
                let parsed = SdpOffer::from_sdp_string(&offer)
                    .map_err(|e| format!("bad_server_offer: {e}"))?;
                let answer = rtc
                    .sdp_api()
                    .accept_offer(parsed)
                    .map_err(|e| format!("bad_server_offer: {e}"))?
                    .to_sdp_string();
                pts.learn(&answer);
                link.start(&answer, Instant::now() + SIGNAL_TIMEOUT).await?;
                if let Some(h) = plan.tile_height.filter(|_| env.media.simulcast) {
                    let layers = crate::janus::layers_for(&offer, &streams, h, plan.stage.as_ref());
                    link.substreams(&layers, Instant::now() + SIGNAL_TIMEOUT)
                        .await?;
                }
                (Vec::new(), None, None, offer)
            }
        };
        // The benchmark runs Janus on this host (in the same namespace).
        let server_port = crate::sdp::candidate_addr(&server_sdp).map(|a| a.port());
        let parts = Parts {
            rtc,
            sock,
            local,
            sig: Signal::Janus(Box::new(link)),
            pts,
            own_mids,
            video,
            audio,
            server_port,
            stage_id: None,
        };
        Ok(Client::assemble(plan, env, parts, now))
    }
}
