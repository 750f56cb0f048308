//! The HTTP/1.1 listener. `axum::serve` has no knobs for slow or oversized request heads, so
//! connections are served by hyper's own HTTP/1 builder:
//!
//! - a request line and headers must arrive within `header_read_timeout` (slowloris), which also
//!   closes keep-alive connections idle that long;
//! - at most [`MAX_HEADER_BYTES`] of request line and headers, and at most 100 header fields
//!   (hyper's default): beyond either, hyper answers 431 and closes the connection;
//! - at most `max_connections` connections at once: the accept loop holds a permit per
//!   connection and stops accepting while none is free (the kernel's backlog queues the rest);
//! - at most `max_connections_per_address` of them from one address: a connection beyond that is
//!   closed as soon as it is accepted, so one client cannot take every permit. The count is per
//!   TCP peer, so a trusted proxy (which carries many clients) is not counted;
//! - each request carries its [`ClientAddr`] (the peer, or the client a trusted proxy reported)
//!   and the peer as `ConnectInfo`;
//! - on shutdown, no new connection is accepted, idle ones are closed, in-flight requests are
//!   finished, and `serve` returns once every connection has ended.
//!
//! Request bodies (size and time) are limited per route by `routes::read_body`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::client_addr::ClientAddrPolicy;

/// Request line plus headers, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Zero: no per-address limit.
    pub max_connections_per_address: usize,
}

/// Open connections per peer address.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
struct Counted {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `ip`, unless `max` are open already. An IPv6 address counts by
    /// its /64, as the sign-in throttle counts it: one host usually holds a whole /64.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Counted> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        };
        let mut open = self.0.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted { table: self.clone(), ip })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.table.0.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains as described above.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    clients: Arc<ClientAddrPolicy>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_header_size(MAX_HEADER_BYTES);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // E.g. out of file descriptors: wait for some to be released.
                        tracing::error!(error = %e, "accept failed");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let counted = if limits.max_connections_per_address == 0 || clients.trusted.contains(remote.ip()) {
            None
        } else {
            match per_address.admit(remote.ip(), limits.max_connections_per_address) {
                Some(c) => Some(c),
                None => {
                    // Closed unanswered: answering would cost what the limit saves.
                    tracing::debug!(client = %remote, "too many connections from this address; closed");
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let clients = clients.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let client = clients.client(remote, req.headers());
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            req.extensions_mut().insert(client);
            router.clone().oneshot(req)
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %remote, "connection ended with an error");
            }
            drop(counted);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_ipv6_by_its_64() {
        let table = Arc::new(PerAddress::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = table.admit(ip("2001:db8:1:2::1"), 2).unwrap();
        let b = table.admit(ip("2001:db8:1:2:ffff::9"), 2).unwrap();
        assert!(table.admit(ip("2001:db8:1:2::77"), 2).is_none(), "the same /64");
        assert!(table.admit(ip("2001:db8:1:3::1"), 2).is_some(), "another /64");
        let c = table.admit(ip("192.0.2.1"), 1).unwrap();
        assert!(table.admit(ip("::ffff:192.0.2.1"), 1).is_none(), "an IPv4 address written as IPv6 is that address");
        drop((a, c));
        assert!(table.admit(ip("2001:db8:1:2::77"), 2).is_some());
        drop(b);
    }
}
