//! The span of every HTTP request, the same in the hub and the auth node: `request` with the
//! method, the path, a request id, the node and (recorded by whoever authenticates the request,
//! [`record_user`]) the user.
//!
//! **Invariant:** only the path is recorded, never the query string or a header: a secret put
//! in a URL by a careless client (a token in `?access_token=`) does not reach the log.
//!
//! The request id is answered in `x-request-id`, so a client's report can be matched with the
//! log. It is `NODE-N`, N counting this process's requests: unique within a cluster whose nodes
//! have distinct ids, and cheap (no random number per request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tracing::Instrument;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Wraps every route of `router` in a `request` span naming `node` (see the module docs).
/// Routes added to `router` after this call are not wrapped.
pub fn layer(router: Router, node: &str) -> Router {
    let state = Arc::new(Ids {
        node: node.into(),
        next: AtomicU64::new(1),
    });
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let state = state.clone();
            async move { traced(&state, req, next).await }
        },
    ))
}

/// Records `user` (a username) in the current request's span, when there is one; elsewhere it
/// does nothing.
pub fn record_user(user: &str) {
    tracing::Span::current().record("user", user);
}

struct Ids {
    node: Arc<str>,
    next: AtomicU64,
}

async fn traced(ids: &Ids, req: Request, next: Next) -> Response {
    let id = format!("{}-{}", ids.node, ids.next.fetch_add(1, Ordering::Relaxed));
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = req.uri().path(),
        id = %id,
        node = %ids.node,
        user = tracing::field::Empty,
    );
    let started = tokio::time::Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request done"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn every_request_gets_a_distinct_id_in_its_response() {
        let app = layer(Router::new().route("/x", get(|| async { "ok" })), "hub7");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let response = app
                .clone()
                .oneshot(Request::get("/x").body(Body::empty()).unwrap())
                .await
                .unwrap();
            let id = response.headers()[REQUEST_ID_HEADER]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(id.starts_with("hub7-"), "{id}");
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1]);
    }
}
