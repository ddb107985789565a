//! The edge's HTTP endpoints a load run needs: `/healthz` (the edge id),
//! `/dev/token` (join tokens under `geomesh dev`), `/metrics` (CPU seconds
//! and datagram counters before and after the run).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::LoadgenError;

/// One edge, by its base URL (`http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct EdgeApi {
    base: String,
    http: reqwest::Client,
}

/// The parts of `GET /healthz` used here.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    /// The edge id (the `edge` claim its tokens need).
    pub edge: String,
}

/// The parts of `GET /dev/token` used here.
#[derive(Debug, Clone, Deserialize)]
pub struct DevToken {
    /// The join token.
    pub token: String,
    /// The participant id in it.
    pub participant: String,
}

/// Counters read from `GET /metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EdgeSample {
    /// `geomesh_edge_process_cpu_seconds_total` (user + system), if exported.
    pub cpu_seconds: Option<f64>,
    /// `geomesh_edge_udp_datagrams_total{direction="out"}`.
    pub datagrams_out: f64,
    /// `geomesh_edge_udp_datagrams_total{direction="in"}`.
    pub datagrams_in: f64,
    /// `geomesh_edge_participants`.
    pub participants: f64,
}

/// Prometheus text → `name{labels}` → value (comments and bad lines skipped).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            // Label values are matched case-insensitively (the edge writes `Out`).
            Some((k.to_ascii_lowercase(), v.trim().parse().ok()?))
        })
        .collect()
}

impl EdgeSample {
    /// Picks the counters out of `/metrics` text.
    pub fn from_text(text: &str) -> Self {
        let m = parse_metrics(text);
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
        EdgeSample {
            cpu_seconds: m.get("geomesh_edge_process_cpu_seconds_total").copied(),
            datagrams_out: get("geomesh_edge_udp_datagrams_total{direction=\"out\"}"),
            datagrams_in: get("geomesh_edge_udp_datagrams_total{direction=\"in\"}"),
            participants: get("geomesh_edge_participants"),
        }
    }
}

/// Percent-encodes a query value (ids are URL-safe already; names may not be).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A base URL (trailing slashes dropped) and an HTTP client for it, as
/// every API the load generator talks to needs.
pub(crate) fn http_client(base: &str) -> Result<(String, reqwest::Client), LoadgenError> {
    let base = base.trim_end_matches('/').to_string();
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(LoadgenError::Config(format!(
            "URL must start with http:// or https://: {base}"
        )));
    }
    // reqwest panics without a process-wide rustls provider; say so instead.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(LoadgenError::Config(
            "no rustls crypto provider installed in this process".into(),
        ));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| LoadgenError::Http {
            url: base.clone(),
            message: e.to_string(),
        })?;
    Ok((base, http))
}

/// Sends `req` (to `url`); the body of a success, else the status and body
/// as the error.
pub(crate) async fn send(req: reqwest::RequestBuilder, url: &str) -> Result<String, LoadgenError> {
    let err = |message: String| LoadgenError::Http {
        url: url.to_string(),
        message,
    };
    let resp = req.send().await.map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| err(e.to_string()))?;
    if !status.is_success() {
        return Err(err(format!("{status}: {}", body.trim())));
    }
    Ok(body)
}

impl EdgeApi {
    /// An edge at `base` (trailing slashes ignored).
    pub fn new(base: &str) -> Result<Self, LoadgenError> {
        let (base, http) = http_client(base)?;
        Ok(Self { base, http })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The WebSocket signaling URL.
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .unwrap_or_else(|| self.base.replacen("http://", "ws://", 1));
        format!("{rest}/v1/rtc")
    }

    async fn get_text(&self, path: &str, query: &[(&str, &str)]) -> Result<String, LoadgenError> {
        let mut url = format!("{}{path}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
        }
        send(self.http.get(&url), &url).await
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, LoadgenError> {
        let body = self.get_text("/healthz", &[]).await?;
        serde_json::from_str(&body).map_err(|e| LoadgenError::Http {
            url: format!("{}/healthz", self.base),
            message: e.to_string(),
        })
    }

    /// `GET /dev/token?conference=C&name=N` (only `geomesh dev` edges, only from loopback).
    pub async fn dev_token(&self, conference: &str, name: &str) -> Result<DevToken, LoadgenError> {
        let body = self
            .get_text("/dev/token", &[("conference", conference), ("name", name)])
            .await?;
        serde_json::from_str(&body).map_err(|e| LoadgenError::Http {
            url: format!("{}/dev/token", self.base),
            message: e.to_string(),
        })
    }

    /// `GET /metrics`.
    pub async fn sample(&self) -> Result<EdgeSample, LoadgenError> {
        Ok(EdgeSample::from_text(
            &self.get_text("/metrics", &[]).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_the_report_needs() {
        let text = "# HELP geomesh_edge_participants Sessions on this edge\n\
            # TYPE geomesh_edge_participants gauge\n\
            geomesh_edge_participants 3\n\
            geomesh_edge_udp_datagrams_total{direction=\"In\"} 1200\n\
            geomesh_edge_udp_datagrams_total{direction=\"Out\"} 2400\n\
            geomesh_edge_process_cpu_seconds_total 12.5\n\
            garbage\n\
            # EOF\n";
        let s = EdgeSample::from_text(text);
        assert_eq!(
            s,
            EdgeSample {
                cpu_seconds: Some(12.5),
                datagrams_out: 2400.0,
                datagrams_in: 1200.0,
                participants: 3.0,
            }
        );
        assert_eq!(EdgeSample::from_text("").cpu_seconds, None);
    }

    #[test]
    fn urls() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let e = EdgeApi::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(e.base(), "http://127.0.0.1:8080");
        assert_eq!(e.ws_url(), "ws://127.0.0.1:8080/v1/rtc");
        assert!(EdgeApi::new("127.0.0.1:8080").is_err());
        assert_eq!(encode("lg-1.a_b~"), "lg-1.a_b~");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
