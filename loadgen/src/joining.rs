//! How a run's sessions get their edges and join tokens: straight from
//! the edges given (tokens minted, or asked of `/dev/token`), or through a
//! selector's `POST /v1/join` as the meeting page does.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use geomesh_core::token::{JoinClaims, TokenSigner};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId};

use crate::edge_api::EdgeApi;
use crate::error::LoadgenError;
use crate::plan::SessionPlan;
use crate::report::Placed;
use crate::run::{Config, plan};
use crate::selector_api::SelectorApi;

pub(crate) async fn tokens(
    cfg: &Config,
    plans: &[SessionPlan],
    apis: &[EdgeApi],
    ids: &[String],
    run: &str,
) -> Result<Vec<Result<String, String>>, LoadgenError> {
    let signer = match &cfg.token_key {
        Some(p) => Some(TokenSigner::load(p).map_err(|e| LoadgenError::Token(e.to_string()))?),
        None => None,
    };
    let ttl = cfg.setup_timeout + cfg.duration + Duration::from_secs(600);
    let mut out = Vec::with_capacity(plans.len());
    for p in plans {
        let t = match &signer {
            Some(s) => {
                let claims = (|| -> Result<JoinClaims, String> {
                    let conf =
                        ConferenceId::new(p.conference_id.clone()).map_err(|e| e.to_string())?;
                    let who = ParticipantId::new(format!("lg-{run}-{}-{}", p.conference, p.name))
                        .map_err(|e| e.to_string())?;
                    let edge = EdgeId::new(ids[p.edge].clone()).map_err(|e| e.to_string())?;
                    let mut c = JoinClaims::new(conf, who, edge, SystemTime::now(), ttl);
                    c.name = Some(p.name.clone());
                    Ok(c)
                })();
                claims.map(|c| s.sign(&c))
            }
            None => apis[p.edge]
                .dev_token(&p.conference_id, &p.name)
                .await
                .map(|t| t.token)
                .map_err(|e| format!("token: {e}")),
        };
        out.push(t);
    }
    Ok(out)
}

/// The edges of a direct run, their ids, the plans and their tokens.
pub(crate) async fn direct(
    cfg: &Config,
    run: &str,
) -> Result<(Vec<EdgeApi>, Vec<SessionPlan>, Tokens), LoadgenError> {
    let apis = cfg
        .edges
        .iter()
        .map(|e| EdgeApi::new(e))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids = Vec::new();
    for a in &apis {
        ids.push(a.health().await?.edge);
    }
    let plans = plan(cfg, run, apis.len());
    let tokens = tokens(cfg, &plans, &apis, &ids, run).await?;
    Ok((apis, plans, tokens))
}

/// Each session's token, or why it has none.
pub(crate) type Tokens = Vec<Result<String, String>>;

/// A run through a selector: every session joins there (from its
/// location), and goes to the edge it is given.
pub(crate) async fn through_selector(
    cfg: &Config,
    selector: &str,
    run: &str,
) -> Result<(Vec<EdgeApi>, Vec<SessionPlan>, Tokens, Vec<Placed>), LoadgenError> {
    let api = SelectorApi::new(selector)?;
    let mut plans = plan(cfg, run, 1);
    let per_conference = (cfg.publishers + cfg.subscribers) as usize;
    let mut apis: Vec<EdgeApi> = Vec::new();
    let mut tokens = Vec::with_capacity(plans.len());
    let mut placed = Vec::with_capacity(plans.len());
    for p in &mut plans {
        let at = (!cfg.locations.is_empty())
            .then(|| cfg.locations[(p.index % per_conference) % cfg.locations.len()]);
        let joined = match api.join(&p.conference_id, &p.name, at).await {
            Ok(j) => j,
            Err(e) => {
                tokens.push(Err(format!("join: {e}")));
                continue;
            }
        };
        let Some(base) = crate::selector_api::edge_base(&joined.edge.ws_url) else {
            tokens.push(Err(format!("join: edge URL {}", joined.edge.ws_url)));
            continue;
        };
        p.edge = match apis.iter().position(|a| a.base() == base) {
            Some(i) => i,
            None => {
                apis.push(EdgeApi::new(&base)?);
                apis.len() - 1
            }
        };
        placed.push(Placed {
            session: p.name.clone(),
            conference: p.conference,
            edge: joined.edge.id.to_string(),
            region: joined.edge.region.to_string(),
            location: at,
        });
        tokens.push(Ok(joined.token));
    }
    // An edge announces a publisher to the other edges with its first
    // packet (the source's codec and layers travel with it), so a track
    // from another edge appears only once publishing starts: setup waits
    // for the tracks of the session's own edge only.
    let kinds = 1 + usize::from(cfg.media.audio);
    let edge_of: HashMap<u32, usize> = plans
        .iter()
        .filter_map(|p| Some((p.source?, p.edge)))
        .collect();
    for p in &mut plans {
        let local = p
            .receives
            .iter()
            .filter(|s| edge_of.get(s) == Some(&p.edge))
            .count();
        p.expected_tracks = local * kinds;
    }
    if apis.is_empty() {
        let why = tokens.iter().find_map(|t| t.as_ref().err().cloned());
        return Err(LoadgenError::Http {
            url: selector.to_string(),
            message: why.unwrap_or_else(|| "no session was placed".into()),
        });
    }
    Ok((apis, plans, tokens, placed))
}
