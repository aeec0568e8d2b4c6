//! The finishing pass of the OpenAPI documents of the hub and the auth node (feature `openapi`):
//! the document's `info`, the bearer security scheme, and the JSON error body of every error
//! response, with the codes it may carry.
//!
//! A route annotates an error response with its status and a description that names its codes
//! in backticks, e.g. ``(status = 404, description = "`not_found`: no such room")``. [`finish`]
//! gives that response the body `{"error":{"code":..,"message":..}}` whose `code` is one of the
//! named codes (any code of that status when the description names none), and gives every
//! operation that has error responses the `500 internal` and `503 unavailable` any route may
//! answer. So the document says exactly which codes a route returns, in a form a schema checker
//! verifies against real answers.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::ErrorCode;

/// The name of the bearer security scheme: `security(("bearer" = []))` in an annotation.
pub const BEARER: &str = "bearer";
/// The name of the server API's scheme: `security(("api_key" = []))` in an annotation.
pub const API_KEY: &str = "api_key";

/// What a document is about.
#[derive(Debug, Clone, Copy)]
pub struct Info<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub version: &'a str,
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The codes named in backticks in `description` (other backticked words are ignored).
fn named_codes(description: &str) -> Vec<ErrorCode> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|word| ErrorCode::ALL.iter().copied().find(|c| c.as_str() == word))
        .collect()
}

/// The error body whose `code` is one of `codes`.
fn error_schema(codes: &[ErrorCode]) -> Value {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": names,
                        "description": "Stable code (see the `ErrorCode` schema for all of them)."
                    },
                    "message": {
                        "type": "string",
                        "description": "For humans; not stable, do not match on it."
                    }
                }
            }
        }
    })
}

/// The finished document: `api` (the routes' paths and schemas) with `info`, the bearer scheme,
/// every code in the `ErrorCode` schema, and the error bodies described in the module docs.
///
/// # Panics
/// When an annotation names a code under another status than the code's own (e.g. `not_found`
/// under 400): a bug in the annotations, caught by any test that builds the document.
pub fn finish(api: &utoipa::openapi::OpenApi, info: Info<'_>) -> Value {
    let mut doc = serde_json::to_value(api).expect("an OpenAPI document serialises");
    doc["info"] = json!({
        "title": info.title,
        "description": info.description,
        "version": info.version,
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
    });
    doc["components"]["securitySchemes"][BEARER] = json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`."
    });
    doc["components"]["securitySchemes"][API_KEY] = json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sbk_<id>_<secret>",
        "description": "An API key from `switchboard-hub api-key create NAME` (the server API, `/v1/server/*`, only)."
    });
    doc["components"]["schemas"]["ErrorCode"] =
        serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema())
            .expect("a schema serialises");
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    // A wildcard segment (`{*path}`, axum's syntax) is a plain parameter in OpenAPI.
    *paths = std::mem::take(paths)
        .into_iter()
        .map(|(path, item)| (template(&path), item))
        .collect::<Map<String, Value>>();
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            finish_responses(path, method, operation);
        }
    }
    doc
}

/// Gives the error responses of one operation their bodies (see the module docs).
fn finish_responses(path: &str, method: &str, operation: &mut Value) {
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    let has_errors = responses
        .keys()
        .any(|status| status.parse::<u16>().is_ok_and(|s| s >= 400));
    if has_errors {
        for (status, code, description) in [
            (
                "500",
                ErrorCode::Internal,
                "`internal`: an unexpected server error.",
            ),
            (
                "503",
                ErrorCode::Unavailable,
                "`unavailable`: a backing service (the database, the broker, the auth node's \
                 keys) is unavailable; retry later (after `Retry-After` seconds when present).",
            ),
        ] {
            debug_assert_eq!(code.http_status().to_string(), status);
            responses
                .entry(status)
                .or_insert_with(|| json!({ "description": description }));
        }
    }
    for (status, response) in responses.iter_mut() {
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        if status < 400 {
            continue;
        }
        let description = response["description"].as_str().unwrap_or_default();
        let mut codes = named_codes(description);
        for code in &codes {
            assert_eq!(
                code.http_status(),
                status,
                "{method} {path}: `{code}` is answered with {}, not {status}",
                code.http_status()
            );
        }
        if codes.is_empty() {
            codes = ErrorCode::ALL
                .iter()
                .copied()
                .filter(|c| c.http_status() == status)
                .collect();
        }
        codes.dedup();
        response["content"] = json!({ "application/json": { "schema": error_schema(&codes) } });
    }
}

/// `path` with axum's wildcard segments (`{*rest}`) written as OpenAPI parameters (`{rest}`).
fn template(path: &str) -> String {
    path.replace("{*", "{")
}

/// The operations (`("GET", "/v1/rooms/{id}")`, upper-case method, OpenAPI path template) an
/// OpenAPI document describes.
pub fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flat_map(|item| item.keys()) {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The methods a router's route answers, as read from axum's `Debug` of a `MethodRouter`.
const ROUTED_METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// The operations an axum router serves, read from its `Debug` output (axum has no API that
/// lists routes): each route of its path router, with the methods that have a handler (GET,
/// POST, PUT, PATCH, DELETE; a route that is a whole service counts as GET and POST). For
/// tests that compare a router with its document.
///
/// # Panics
/// When the output does not have the shape of axum 0.8's `Router` (a new axum would make the
/// comparing tests fail loudly, never pass vacuously).
pub fn routed_operations(router: &impl std::fmt::Debug) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    let start = text
        .find("path_router: ")
        .expect("a Router's Debug names its path_router");
    let end = text[start..]
        .find("fallback_router: ")
        .map_or(text.len(), |i| start + i);
    let section = &text[start..end];
    let paths_at = section
        .find("paths: {")
        .expect("a PathRouter's Debug lists its paths");
    let (routes, paths) = section.split_at(paths_at);
    let mut by_id = std::collections::BTreeMap::new();
    for entry in paths.split("RouteId(").skip(1) {
        let (id, rest) = entry.split_once(')').expect("RouteId(n)");
        let path = rest
            .split('"')
            .nth(1)
            .expect("a route's path is a quoted string");
        by_id.insert(id.to_owned(), template(path));
    }
    let mut out = BTreeSet::new();
    for entry in routes.split("RouteId(").skip(1) {
        let (id, endpoint) = entry.split_once(')').expect("RouteId(n)");
        let path = by_id.get(id).expect("every route has a path");
        let endpoint = endpoint.trim_start_matches(": ");
        if let Some(fields) = endpoint.strip_prefix("MethodRouter(MethodRouter { ") {
            for method in ROUTED_METHODS {
                let field = fields
                    .split(", ")
                    .find_map(|f| f.strip_prefix(&format!("{method}: ")))
                    .expect("a MethodRouter's Debug names every method");
                if !field.starts_with("None") {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        } else {
            out.insert(("GET".to_owned(), path.clone()));
            out.insert(("POST".to_owned(), path.clone()));
        }
    }
    assert!(!by_id.is_empty(), "no routes read from {text}");
    out
}

/// Panics, naming each difference, unless `router` serves exactly the operations `doc`
/// documents (see [`routed_operations`] and [`documented_operations`]). For the tests that keep
/// a router and its document equal.
///
/// # Panics
/// On any difference, or when `router`'s `Debug` cannot be read.
pub fn assert_router_matches_document(router: &impl std::fmt::Debug, doc: &Value) {
    let routed = routed_operations(router);
    let documented = documented_operations(doc);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "the router and its OpenAPI document disagree.\n\
         Routed but not documented: {undocumented:?} (give the handler a `#[utoipa::path]` \
         and register it with `.routes(routes!(handler))` instead of `.route`).\n\
         Documented but not routed: {unrouted:?}."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_of_the_enum() {
        let schema = serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema()).unwrap();
        let mut from_schema: Vec<String> = serde_json::from_value(schema["enum"].clone()).unwrap();
        let mut all: Vec<String> = ErrorCode::ALL.iter().map(|c| c.to_string()).collect();
        from_schema.sort();
        all.sort();
        assert_eq!(from_schema, all);
    }

    #[test]
    fn codes_are_read_from_backticks_and_others_ignored() {
        assert_eq!(
            named_codes("`not_found`: no such room; `user_not_found`, `Retry-After`"),
            [ErrorCode::NotFound, ErrorCode::UserNotFound]
        );
        assert!(named_codes("nothing named").is_empty());
    }

    fn document(status: &str, description: &str) -> Value {
        let mut responses = json!({ "200": { "description": "ok" } });
        responses[status] = json!({ "description": description });
        let api: utoipa::openapi::OpenApi = serde_json::from_value(json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "0" },
            "paths": { "/x": { "get": { "responses": responses } } }
        }))
        .unwrap();
        finish(
            &api,
            Info {
                title: "t",
                description: "d",
                version: "1",
            },
        )
    }

    #[test]
    fn an_error_response_gets_the_body_with_its_named_codes_and_500_503_are_added() {
        let doc = document("404", "`user_not_found`: no such user");
        let responses = &doc["paths"]["/x"]["get"]["responses"];
        let code = |status: &str| {
            responses[status]["content"]["application/json"]["schema"]["properties"]["error"]
                ["properties"]["code"]["enum"]
                .clone()
        };
        assert_eq!(code("404"), json!(["user_not_found"]));
        assert_eq!(code("500"), json!(["internal"]));
        assert_eq!(code("503"), json!(["unavailable"]));
        assert!(responses["200"].get("content").is_none());
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn without_named_codes_every_code_of_the_status_is_allowed() {
        let doc = document("409", "a conflict");
        let schema =
            &doc["paths"]["/x"]["get"]["responses"]["409"]["content"]["application/json"]["schema"];
        assert_eq!(
            schema["properties"]["error"]["properties"]["code"]["enum"],
            json!([
                "username_taken",
                "conflict",
                "too_many_subscriptions",
                "forbidden_target",
                "email_taken"
            ])
        );
    }

    #[test]
    #[should_panic(expected = "is answered with 404, not 400")]
    fn a_code_under_another_status_is_refused() {
        document("400", "`not_found`");
    }
}
