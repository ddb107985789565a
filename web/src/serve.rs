//! How a public HTTP listener is served, so that slow or idle clients
//! cannot hold it: request headers must arrive within
//! [`Limits::header_read`], a whole request (body included) is answered
//! within [`Limits::request`] or gets 408, and idle keep-alive connections
//! are closed. WebSocket upgrades leave these limits once upgraded (the
//! signaling session has its own).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to receive a request's headers (slowloris).
    pub header_read: Duration,
    /// Time to read a request and answer it.
    pub request: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves; handlers see the
/// peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let router = router.layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            match tokio::time::timeout(limits.request, next.run(req)).await {
                Ok(r) => r,
                Err(_) => request_timeout(),
            }
        },
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(stop_rx.clone()) => return,
        };
        let _ = tcp.set_nodelay(true);
        let svc = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(ConnectInfo::<SocketAddr>(remote))),
        );
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(20)));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped(stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn request_timeout() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        "the request took too long to arrive or to answer",
    )
        .into_response()
}
