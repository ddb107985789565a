//! One selector node as the agent reaches it: HTTPS with this edge's
//! certificate, the node's certificate checked against its selector id.

use std::net::SocketAddr;
use std::time::Duration;

use geomesh_core::SelectorId;
use geomesh_core::https::JsonClient;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use geomesh_core::https::CallError;

/// A client for one selector node's internal API.
pub(crate) struct Selector {
    pub(crate) id: SelectorId,
    pub(crate) addr: SocketAddr,
    client: JsonClient,
}

impl Selector {
    /// Requests go to `https://<selector id>:<port>`, resolved to `addr`, so
    /// the node's certificate is checked against the selector's id.
    pub(crate) fn new(
        id: SelectorId,
        addr: SocketAddr,
        tls: &rustls::ClientConfig,
    ) -> Result<Self, CallError> {
        Ok(Self {
            client: JsonClient::new(tls, id.as_str(), addr)?,
            id,
            addr,
        })
    }

    /// `POST path` with a JSON body, answered within `deadline`.
    pub(crate) async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        self.client.post(path, body, deadline).await
    }

    /// `GET path`, answered within `deadline`.
    pub(crate) async fn get<Resp: DeserializeOwned>(
        &self,
        path: &str,
        deadline: Duration,
    ) -> Result<Resp, CallError> {
        self.client.get(path, deadline).await
    }
}

/// The internal address in a [`geomesh_core::agent::SelectorEndpoint`] URL
/// (`https://host:port`).
pub(crate) fn endpoint_addr(url: &str) -> Option<SocketAddr> {
    url.strip_prefix("https://")?.parse().ok()
}
