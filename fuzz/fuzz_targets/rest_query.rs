//! The path and query parameters of the hub's REST routes, parsed as a request reaches them:
//! an `http::Uri` from the request line, routed by axum, the parameters extracted by the hub's
//! own `AppPath`/`AppQuery` into the types the hub uses (`rest::MessagesQuery`, a room id,
//! `rest::MessagePath`), and every rejection turned into our error body.
//!
//! Checks, besides "never panics":
//! - the answer is 200 with exactly the values an independent reading of the URI gives
//!   (percent-decoding of path segments; `application/x-www-form-urlencoded` pairs, each known
//!   key at most once, its value a decimal number of the field's type, unknown keys ignored), or
//!   400 `bad_request` with our JSON body exactly when that reading fails (an empty path segment
//!   may also be 404 with our body); never a 5xx, never a body that is not ours.
#![no_main]

use std::borrow::Cow;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::{get, patch, post};
use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{percent_decode, percent_encode, NON_ALPHANUMERIC};
use switchboard_fuzz::block_on;
use switchboard_hub::bench::error_response;
use switchboard_hub::bench::{AppPath, AppQuery};
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::rest::{MessagePath, MessagesQuery};
use switchboard_protocol::seq::MAX_SEQ;
use switchboard_protocol::{ErrorCode, Seq};
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
enum Route {
    /// `GET /v1/rooms/{id}/messages?{query}` (`MessagesQuery`).
    Messages,
    /// `PATCH /v1/rooms/{id}/messages/{seq}`.
    Edit,
    /// `DELETE /v1/rooms/{id}/messages/{seq}`.
    Delete,
    /// `GET /v1/rooms/{id}`.
    Room,
    /// `POST /v1/direct/{username}`.
    Direct,
}

/// A path segment or query part: raw bytes (used only if they form a valid URI) or bytes that
/// are percent-encoded first.
#[derive(Debug, Arbitrary)]
enum Part {
    Raw(Vec<u8>),
    Encoded(Vec<u8>),
    Number(u128),
}

impl Part {
    fn render(&self) -> Vec<u8> {
        match self {
            Self::Raw(b) => b.clone(),
            Self::Encoded(b) => percent_encode(b, NON_ALPHANUMERIC).to_string().into_bytes(),
            Self::Number(n) => n.to_string().into_bytes(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Key {
    Before,
    After,
    Limit,
    Other(Part),
}

#[derive(Debug, Arbitrary)]
struct Input {
    route: Route,
    id: Part,
    seq: Part,
    pairs: Vec<(Key, Part)>,
    /// Appended to the query as is.
    tail: Vec<u8>,
}

fn router() -> Router {
    async fn messages(AppPath(id): AppPath<String>, AppQuery(q): AppQuery<MessagesQuery>) -> String {
        format!("{id}\n{q:?}")
    }
    async fn one(AppPath(id): AppPath<String>) -> String {
        id
    }
    async fn message(AppPath(MessagePath { id, seq }): AppPath<MessagePath>) -> String {
        format!("{id}\n{seq}")
    }
    Router::new()
        .route("/v1/rooms/{id}", get(one))
        .route("/v1/rooms/{id}/messages", get(messages))
        .route(
            "/v1/rooms/{id}/messages/{seq}",
            patch(message).delete(message),
        )
        .route("/v1/direct/{username}", post(one))
        .fallback(|| async { error_response(ErrorCode::NotFound, "no such route") })
}

/// A client seq: a decimal `u64` of at most [`MAX_SEQ`] (`protocol::seq`), else 400.
fn parse_seq(v: &str) -> Result<Seq, u16> {
    let seq: u64 = v.parse().map_err(|_| 400u16)?;
    if seq > MAX_SEQ {
        return Err(400);
    }
    Ok(seq)
}

/// Sets a seq field once (a repeated key is 400, as serde's duplicate field).
fn set_seq(slot: &mut Option<Seq>, v: &str) -> Result<(), u16> {
    if slot.is_some() {
        return Err(400);
    }
    *slot = Some(parse_seq(v)?);
    Ok(())
}

/// What a URI should give: `Ok(body)` or `Err(400)`. (With an empty path segment the router may
/// also answer 404; see the caller.)
fn expect(route: &Route, id: &[u8], seq: &[u8], query: Option<&[u8]>) -> Result<String, u16> {
    let decode = |seg: &[u8]| -> Result<String, u16> {
        let bytes: Cow<[u8]> = percent_decode(seg).into();
        String::from_utf8(bytes.into_owned()).map_err(|_| 400u16)
    };
    let id = decode(id)?;
    match route {
        Route::Room | Route::Direct => Ok(id),
        Route::Edit | Route::Delete => {
            let seq = parse_seq(&decode(seq)?)?;
            Ok(format!("{id}\n{seq}"))
        }
        Route::Messages => {
            let (mut before, mut after, mut limit) = (None, None, None);
            for (k, v) in form_urlencoded::parse(query.unwrap_or_default()) {
                fn set<T: std::str::FromStr>(slot: &mut Option<T>, v: &str) -> Result<(), u16> {
                    if slot.is_some() {
                        return Err(400); // duplicate field
                    }
                    *slot = Some(v.parse().map_err(|_| 400u16)?);
                    Ok(())
                }
                match &*k {
                    "before" => set_seq(&mut before, &v)?,
                    "after" => set_seq(&mut after, &v)?,
                    "limit" => set::<u32>(&mut limit, &v)?,
                    _ => {}
                }
            }
            Ok(format!(
                "{id}\nMessagesQuery {{ before: {before:?}, after: {after:?}, limit: {limit:?} }}"
            ))
        }
    }
}

fuzz_target!(|input: Input| {
    let id = input.id.render();
    let seq = input.seq.render();
    // A raw segment must stay one segment of the path.
    if [&id, &seq]
        .iter()
        .any(|s| s.iter().any(|b| matches!(b, b'/' | b'?' | b'#')))
    {
        return;
    }
    let mut query = Vec::new();
    for (i, (k, v)) in input.pairs.iter().enumerate() {
        if i > 0 {
            query.push(b'&');
        }
        match k {
            Key::Before => query.extend_from_slice(b"before"),
            Key::After => query.extend_from_slice(b"after"),
            Key::Limit => query.extend_from_slice(b"limit"),
            Key::Other(p) => query.extend(p.render()),
        }
        query.push(b'=');
        query.extend(v.render());
    }
    query.extend_from_slice(&input.tail);
    if query.contains(&b'#') {
        return;
    }
    let (method, mut uri) = match input.route {
        Route::Messages | Route::Edit | Route::Delete | Route::Room => {
            let m = match input.route {
                Route::Edit => Method::PATCH,
                Route::Delete => Method::DELETE,
                _ => Method::GET,
            };
            (m, [b"/v1/rooms/".as_slice(), &id].concat())
        }
        Route::Direct => (Method::POST, [b"/v1/direct/".as_slice(), &id].concat()),
    };
    match input.route {
        Route::Messages => uri.extend_from_slice(b"/messages"),
        Route::Edit | Route::Delete => {
            uri.extend_from_slice(b"/messages/");
            uri.extend_from_slice(&seq);
        }
        _ => {}
    }
    let with_query = !query.is_empty();
    if with_query {
        uri.push(b'?');
        uri.extend_from_slice(&query);
    }
    let Ok(parsed) = axum::http::Uri::try_from(uri.as_slice()) else {
        return; // hyper answers 400 itself before any route runs
    };
    // What the server sees is what `Uri` kept (it may drop an empty query).
    let query_seen = parsed.query().map(str::as_bytes);
    let expected = expect(&input.route, &id, &seq, query_seen);
    let empty_segment =
        id.is_empty() || (matches!(input.route, Route::Edit | Route::Delete) && seq.is_empty());

    let request = Request::builder()
        .method(method)
        .uri(parsed)
        .body(Body::empty())
        .expect("request");
    let (status, body) = block_on(async {
        thread_local! {
            static ROUTER: Router = router();
        }
        let response = ROUTER
            .with(|r| r.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    });
    if empty_segment && status == StatusCode::NOT_FOUND {
        let err: ErrorBody = serde_json::from_slice(&body).expect("our error body");
        assert_eq!(err.error.code, ErrorCode::NotFound);
        return;
    }
    match expected {
        Ok(want) => {
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            assert_eq!(String::from_utf8_lossy(&body), want);
        }
        Err(code) => {
            assert_eq!(status.as_u16(), code, "{}", String::from_utf8_lossy(&body));
            let err: ErrorBody = serde_json::from_slice(&body).expect("our error body");
            assert_eq!(err.error.code, ErrorCode::BadRequest);
        }
    }
});
