//! The web console: `GET /console` and the few files it is made of (`api/console/`), compiled
//! into the binary so that a server has no assets to find, lose or serve from the wrong
//! version. The page holds no data and no authority of its own: it calls the same operations
//! as every client, from the browser, and once the server asks for signatures it signs each
//! one with the key its user types in (`aws4fetch`, vendored with its licence), so the caller's policy applies to the
//! console exactly as to the CLI. Serving the files needs no signature; they are the same for
//! everyone.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;

const INDEX: &str = include_str!("../console/index.html");

/// The files besides the page, by the name it asks for them with, and their type.
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
    (
        "aws4fetch.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/aws4fetch.js"),
    ),
    (
        "aws4fetch.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../console/aws4fetch.LICENSE"),
    ),
];

/// Only the page's own files, from this origin: no inline script a stored job name could turn
/// into one (the page writes what the API returns as text, never as HTML), no frame around it.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes. `region` is the one requests are signed for. Whether they must be
/// signed the page learns from the first refusal, since a server in local-development mode
/// turns checked when its first key is made.
pub(crate) fn router(region: &str) -> Router {
    let page = INDEX.replace("{{REGION}}", &escape(region));
    let page = axum::body::Bytes::from(page);
    let index = get(move || async move { file("text/html; charset=utf-8", page) });
    Router::new()
        .route("/console", index.clone())
        .route("/console/", index)
        .route("/console/{file}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(file, ..)| *file == name)
        .map(|&(_, kind, body)| file(kind, body))
        .ok_or_else(|| {
            ApiError::UnknownOperation(format!(
                "the console has no file {:?}",
                name.chars().take(100).collect::<String>()
            ))
        })
}

fn file(kind: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Revalidated each time, so a page never runs with the files of another version.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `text` safe inside an HTML attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
