//! The cluster's one client for node-to-node JSON over HTTPS with mutual
//! TLS: an edge calling selectors, selectors calling each other (Raft RPCs
//! and forwarded writes), the CLI calling a selector as an operator.
//!
//! A [`JsonClient`] dials one node's address but names the node by its id,
//! so the node's certificate is checked against the id (its DNS SAN),
//! whatever address it is reached at. Failures are a typed [`CallError`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call to another node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No connection (refused, TLS handshake failed, timed out connecting).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The request or response failed in flight.
    #[error("network: {0}")]
    Network(String),
    /// No complete answer within the call's time-out.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node answered with an error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The body (an `ApiError` JSON, usually).
        body: String,
    },
    /// The body did not decode.
    #[error("bad response body: {0}")]
    Decode(String),
}

/// An HTTPS client for one node's listener.
#[derive(Debug, Clone)]
pub struct JsonClient {
    http: reqwest::Client,
    base: String,
    id: String,
}

/// Connecting gives up after this long (a dead node must not hold a caller
/// that has others to try).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl JsonClient {
    /// A client for the node `id` listening at `addr` (its certificate
    /// must name `id`), presenting the certificate in `tls`.
    pub fn new(tls: &rustls::ClientConfig, id: &str, addr: SocketAddr) -> Result<Self, CallError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .resolve(id, addr)
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CallError::Unreachable(format!("HTTP client for {id}: {e}")))?;
        Ok(Self {
            http,
            base: format!("https://{id}:{}", addr.port()),
            id: id.to_string(),
        })
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `POST path` with a JSON body; a JSON answer on 2xx within `timeout`.
    pub async fn post<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call(req, timeout).await
    }

    /// `GET path`; a JSON answer on 2xx within `timeout`.
    pub async fn get<Resp: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.call(req, timeout).await
    }

    async fn call<Resp: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                CallError::Timeout(timeout)
            } else if e.is_connect() {
                CallError::Unreachable(format!("{}: {e:?}", self.id))
            } else {
                CallError::Network(format!("{}: {e:?}", self.id))
            }
        };
        let res = req.timeout(timeout).send().await.map_err(failed)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(failed)?;
        if !status.is_success() {
            return Err(CallError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()))
    }
}
