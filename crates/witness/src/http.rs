//! The witness's HTTP interface: `POST /add-checkpoint` (C2SP tlog-witness) and `GET /` (the
//! witness's verifier key, for operators). Served by hyper's HTTP/1 builder so that slow request
//! heads are cut off; the body is read within [`BODY_TIMEOUT`] and at most
//! [`MAX_BODY_BYTES`]. Errors are short plain text that names the problem, never internals.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use logbook_integrity::witness_protocol::{
    size_body, ADD_CHECKPOINT_PATH, COSIGNATURES_CONTENT_TYPE, MAX_BODY_BYTES, SIZE_CONTENT_TYPE,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::witness::{Refusal, Witness};

/// The whole request body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The request line and headers must arrive within this (also how long an idle keep-alive
/// connection stays open).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new().route(ADD_CHECKPOINT_PATH, post(add_checkpoint)).route("/", get(key)).with_state(witness)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn plain(status: StatusCode, body: String) -> Response {
    text(status, "text/plain; charset=utf-8", body)
}

async fn key(State(witness): State<Arc<Witness>>) -> Response {
    plain(StatusCode::OK, format!("{}\n", witness.signer().verifier_key()))
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, request: Request<Body>) -> Response {
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes\n"))
        }
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time\n".into()),
    };
    // The decision commits to SQLite (fsync): off the async threads. Not cancelled by a client
    // that goes away: a state stored is a state answered for on the next request.
    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    match outcome {
        Ok(Ok(lines)) => text(StatusCode::OK, COSIGNATURES_CONTENT_TYPE, lines),
        Ok(Err(refusal)) => refuse(&refusal),
        Err(e) => {
            tracing::error!(error = %e, "the add-checkpoint task failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n".into())
        }
    }
}

fn refuse(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match refusal {
        Refusal::Conflict { size } => text(status, SIZE_CONTENT_TYPE, size_body(*size)),
        Refusal::State(e) => {
            tracing::error!(error = %e, "the witness state failed");
            plain(status, "internal error\n".into())
        }
        other => {
            tracing::debug!(status = status.as_u16(), reason = %other, "add-checkpoint refused");
            plain(status, format!("{other}\n"))
        }
    }
}

/// Serves the witness on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish (each one's state is committed before it is answered) and returns.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(witness);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_header_size(MAX_HEADER_BYTES);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| router.clone().oneshot(req.map(Body::new)));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %remote, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
