//! The API documents and their explorer, all from the binary:
//! - `GET /v1/openapi.json`: the OpenAPI 3.1 document of every HTTP route of the hub, the auth
//!   routes included (served in-process or forwarded to an auth node alike), generated from the
//!   handlers' `#[utoipa::path]` annotations and the protocol types, finished by
//!   `switchboard_protocol::openapi::finish` (error bodies with their codes, the bearer scheme);
//! - `GET /v1/docs/`: Swagger UI over that document (`utoipa-swagger-ui`, vendored: its files
//!   are in the binary; nothing is fetched from a CDN, at build time or at run time).
//!
//! The WebSocket protocol of `/v1/ws` is described by `docs/asyncapi.yaml` (AsyncAPI 3.0).

use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header::{self, HeaderName};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use switchboard_protocol::openapi::{finish, Info};
use switchboard_protocol::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::error_response;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// What the hub's document says it is.
const INFO: Info<'static> = Info {
    title: "Switchboard",
    description: "The REST API of a Switchboard hub node, auth routes included. The realtime \
                  protocol on `/v1/ws` is in docs/asyncapi.yaml; docs/PROTOCOL.md is the \
                  normative description of both. Errors are `{\"error\":{\"code\":..,\
                  \"message\":..}}`; each error response lists the codes it may carry.",
    version: env!("CARGO_PKG_VERSION"),
};

/// The explorer's Content-Security-Policy: its own scripts only (Swagger UI sets inline styles
/// and uses `data:` images), requests to this origin only, never framed.
const EXPLORER_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The finished document, serialised once when the router is built.
#[derive(Clone)]
pub(crate) struct Document(pub(crate) Bytes);

impl Document {
    /// Finishes `api` (see the module docs) and serialises it.
    pub(crate) fn new(api: &utoipa::openapi::OpenApi) -> Self {
        let doc = finish(api, INFO);
        Self(Bytes::from(
            serde_json::to_vec(&doc).expect("a document serialises"),
        ))
    }
}

/// Swagger UI's configuration: the document above, "try it out" on, no outside validator.
static EXPLORER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::from(OPENAPI_PATH)
            .try_it_out_enabled(true)
            .validator_url("none"),
    )
});

/// The document and the explorer's routes (they need no state, so any). The document itself
/// comes as an [`Extension`] of [`Document`].
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::default()
        .routes(routes!(openapi_json))
        .routes(routes!(explorer))
        .routes(routes!(explorer_index))
        .routes(routes!(explorer_file))
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The document.", content_type = "application/json"))
)]
async fn openapi_json(Extension(Document(doc)): Extension<Document>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc)
}

/// The API explorer (Swagger UI): redirects to `/v1/docs/`, whose relative links it needs.
#[utoipa::path(
    get,
    path = "/v1/docs",
    tag = "operations",
    responses((status = 303, description = "To `/v1/docs/`."))
)]
async fn explorer() -> Redirect {
    Redirect::to("/v1/docs/")
}

/// The API explorer's page.
#[utoipa::path(
    get,
    path = "/v1/docs/",
    tag = "operations",
    responses((status = 200, description = "The page.", content_type = "text/html"))
)]
async fn explorer_index() -> Response {
    serve_explorer("")
}

/// A file of the API explorer (from the binary).
#[utoipa::path(
    get,
    path = "/v1/docs/{file}",
    tag = "operations",
    params(("file" = String, Path, description = "e.g. `swagger-ui-bundle.js`.")),
    responses(
        (status = 200, description = "The file."),
        (status = 404, description = "`not_found`: no such file."),
    )
)]
async fn explorer_file(Path(file): Path<String>) -> Response {
    serve_explorer(&file)
}

/// One file of Swagger UI (`""` is its page), with its content type and our headers.
fn serve_explorer(file: &str) -> Response {
    match utoipa_swagger_ui::serve(file, EXPLORER.clone()) {
        Ok(Some(found)) => {
            let mut response = found.bytes.into_owned().into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&found.content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            let fixed: [(HeaderName, &'static str); 4] = [
                (header::CONTENT_SECURITY_POLICY, EXPLORER_CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::CACHE_CONTROL, "no-cache"),
            ];
            for (name, value) in fixed {
                headers.insert(name, HeaderValue::from_static(value));
            }
            response
        }
        Ok(None) => error_response(ErrorCode::NotFound, "no such file"),
        Err(e) => {
            tracing::error!(error = %e, file, "the API explorer failed");
            error_response(ErrorCode::Internal, "internal error")
        }
    }
}
