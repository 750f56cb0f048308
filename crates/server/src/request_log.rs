//! The request span every log line of a request carries.
//!
//! tower-http's default span records the whole URI, and a query string can hold a secret: the
//! setup link's and an invitation link's `token`. So the span names the path and only the
//! *names* of the query's parameters, never their values (which may also be personal data, such
//! as a search for someone's email).

use axum::http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;

type MakeSpan<B> = fn(&Request<B>) -> tracing::Span;

/// The tracing layer of the router.
pub fn layer<B>() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeSpan<B>> {
    TraceLayer::new_for_http().make_span_with(request_span::<B> as MakeSpan<B>)
}

fn request_span<B>(req: &Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        query = %query_names(req.uri().query()),
        version = ?req.version(),
    )
}

/// `token=abc&format=csv` → `token,format`.
fn query_names(query: Option<&str>) -> String {
    let names =
        query.unwrap_or_default().split('&').filter(|p| !p.is_empty()).map(|p| p.split('=').next().unwrap_or(p));
    names.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_logged_by_names_only() {
        assert_eq!(query_names(Some("token=s3cr3t&format=csv")), "token,format");
        assert_eq!(query_names(Some("token")), "token");
        assert_eq!(query_names(Some("&&q=a%3Db")), "q");
        assert_eq!(query_names(None), "");
    }
}
