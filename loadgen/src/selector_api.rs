//! A selector's public join API, for runs that go through the mesh
//! (`geomesh loadgen --selector`): each session asks `POST /v1/join` where
//! to connect, as the meeting page does, optionally from a pretended
//! location (the request's `location` hint), and connects to the edge the
//! selector chose with the token it signed.

use geomesh_core::api::{JoinRequest, JoinResponse};
use geomesh_core::{ConferenceId, GeoPoint};

use crate::LoadgenError;
use crate::edge_api::{http_client, send};

/// One selector.
#[derive(Debug, Clone)]
pub struct SelectorApi {
    base: String,
    http: reqwest::Client,
}

impl SelectorApi {
    /// A selector at `base` (trailing slashes ignored).
    pub fn new(base: &str) -> Result<Self, LoadgenError> {
        let (base, http) = http_client(base)?;
        Ok(Self { base, http })
    }

    /// Joins `conference` as `name` from `location` (none: the selector
    /// locates the client by its address). Open access mode: no grant.
    pub async fn join(
        &self,
        conference: &str,
        name: &str,
        location: Option<GeoPoint>,
    ) -> Result<JoinResponse, LoadgenError> {
        let url = format!("{}/v1/join", self.base);
        let err = |message: String| LoadgenError::Http {
            url: url.clone(),
            message,
        };
        let conference = ConferenceId::new(conference).map_err(|e| err(e.to_string()))?;
        let req = JoinRequest {
            conference,
            participant: None,
            rejoin_secret: None,
            display_name: Some(name.to_string()),
            location,
            region: None,
            exclude: Vec::new(),
            probes: Vec::new(),
        };
        let body = send(self.http.post(&url).json(&req), &url).await?;
        serde_json::from_str(&body).map_err(|e| err(e.to_string()))
    }
}

/// The HTTP base of an edge from its WebSocket signaling URL
/// (`ws://host:port/v1/rtc` → `http://host:port`).
pub fn edge_base(ws_url: &str) -> Option<String> {
    let (scheme, rest) = ws_url.split_once("://")?;
    let http = match scheme {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| format!("{http}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_base_from_signaling_urls() {
        assert_eq!(
            edge_base("ws://127.0.0.1:8081/v1/rtc").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(
            edge_base("wss://eu.example.org/v1/rtc").as_deref(),
            Some("https://eu.example.org")
        );
        assert_eq!(edge_base("http://x/v1/rtc"), None);
        assert_eq!(edge_base("ws:///v1/rtc"), None);
    }
}
