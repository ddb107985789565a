//! One selector node as the agent reaches it: HTTPS with this edge's
//! certificate, the node's certificate checked against its selector id.

use std::net::SocketAddr;
use std::time::Duration;

use geomesh_core::SelectorId;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("refused with {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("bad answer: {0}")]
    Decode(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A client for one selector node's internal API.
pub(crate) struct Selector {
    pub(crate) id: SelectorId,
    pub(crate) addr: SocketAddr,
    base: String,
    http: reqwest::Client,
}

impl Selector {
    /// Requests go to `https://<selector id>:<port>`, resolved to `addr`, so
    /// the node's certificate is checked against the selector's id.
    pub(crate) fn new(
        id: SelectorId,
        addr: SocketAddr,
        tls: &rustls::ClientConfig,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .resolve(id.as_str(), addr)
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client for {id}: {e}"))?;
        Ok(Self {
            base: format!("https://{id}:{}", addr.port()),
            id,
            addr,
            http,
        })
    }

    /// `POST path` with a JSON body, answered within `deadline`.
    pub(crate) async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call(req, deadline).await
    }

    /// `GET path`, answered within `deadline`.
    pub(crate) async fn get<Resp: DeserializeOwned>(
        &self,
        path: &str,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.call(req, deadline).await
    }

    async fn call<Resp: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        let fut = async {
            let res = req
                .send()
                .await
                .map_err(|e| CallError::Unreachable(e.to_string()))?;
            let status = res.status();
            if !status.is_success() {
                let body = res.text().await.unwrap_or_default();
                return Err(CallError::Refused {
                    status: status.as_u16(),
                    body,
                });
            }
            res.json()
                .await
                .map_err(|e| CallError::Decode(e.to_string()))
        };
        tokio::time::timeout(deadline, fut)
            .await
            .map_err(|_| CallError::Timeout(deadline))?
    }
}

/// The internal address in a [`geomesh_core::agent::SelectorEndpoint`] URL
/// (`https://host:port`).
pub(crate) fn endpoint_addr(url: &str) -> Option<SocketAddr> {
    url.strip_prefix("https://")?.parse().ok()
}
