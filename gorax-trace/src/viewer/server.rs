//! The viewer's HTTP side: the page and its assets, the JSON API the page polls, and the
//! OTLP/HTTP intake, behind a `Host` check and with a strict `Content-Security-Policy`.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::store::{Filter, Store, from_otlp};

/// The page, its script and its style: plain files compiled into the binary.
pub(crate) const INDEX_HTML: &str = include_str!("assets/index.html");
pub(crate) const VIEWER_JS: &str = include_str!("assets/viewer.js");
pub(crate) const VIEWER_CSS: &str = include_str!("assets/viewer.css");

/// Only the viewer's own files, no inline script or style, no framing, no form posts.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Largest OTLP request body taken, compressed or not (the SDKs' batches are far smaller).
const MAX_BODY: usize = 16 << 20;

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
}

impl Shared {
    pub(crate) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The router for a viewer listening on `bound`.
pub(crate) fn router(shared: Arc<Shared>, bound: SocketAddr) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/viewer.js",
            get(|| async { asset(VIEWER_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/viewer.css",
            get(|| async { asset(VIEWER_CSS, "text/css; charset=utf-8") }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/traces", get(list))
        .route("/api/traces/{id}", get(trace))
        .route(
            "/v1/traces",
            post(intake).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .with_state(shared)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            guard(req, next, bound)
        }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether `host` (a `Host` header) names this viewer: `localhost` or the bound IP (any IP
/// literal when bound to all interfaces), with the bound port when a port is given. A name that
/// resolves here by DNS (rebinding) is neither.
pub(crate) fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (name, Some(port)),
        _ => (host, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().ok() != Some(bound.port())) {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = name.trim_start_matches('[').trim_end_matches(']');
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip == bound.ip()
                || bound.ip().is_unspecified()
                || (ip.is_loopback() && bound.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// The `Host` check and the security headers of every answer (no CORS header is ever sent).
async fn guard(req: Request, next: Next, bound: SocketAddr) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut response = if host_allowed(host, bound) {
        next.run(req).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this trace viewer answers only requests for localhost or its own address\n",
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn list(State(shared): State<Arc<Shared>>, Query(filter): Query<Filter>) -> Response {
    let value = shared.store().list(&filter);
    json(&value)
}

async fn trace(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let value = shared.store().trace(&id);
    match value {
        Some(v) => json(&v),
        None => (StatusCode::NOT_FOUND, "no such trace here (evicted?)\n").into_response(),
    }
}

/// `POST /v1/traces`: OTLP/HTTP with protobuf or JSON bodies, plain or gzip.
async fn intake(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let protobuf = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => true,
        "application/json" => false,
        _ => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected application/x-protobuf or application/json\n",
            )
                .into_response();
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(_) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Encoding gzip or none\n",
            )
                .into_response();
        }
    };
    let result = decode(&body, protobuf, gzip).and_then(|req| from_otlp(&req).map_err(|m| m.0));
    match result {
        Ok(spans) => {
            shared.store().insert(spans);
            if protobuf {
                (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
                    .into_response()
            } else {
                ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
            }
        }
        Err(why) => {
            shared.store().rejected();
            (
                StatusCode::BAD_REQUEST,
                format!("malformed OTLP request: {why}\n"),
            )
                .into_response()
        }
    }
}

fn decode(body: &[u8], protobuf: bool, gzip: bool) -> Result<ExportTraceServiceRequest, String> {
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        if out.len() > MAX_BODY {
            return Err(format!("more than {MAX_BODY} bytes once inflated"));
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    if protobuf {
        ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let bound: SocketAddr = "127.0.0.1:16786".parse().unwrap();
        for ok in [
            "127.0.0.1:16786",
            "localhost:16786",
            "LOCALHOST",
            "[::1]:16786",
        ] {
            assert!(host_allowed(ok, bound), "{ok}");
        }
        for no in [
            "evil.example:16786",
            "127.0.0.1:80",
            "",
            "localhost.evil.example:16786",
            "10.0.0.1:16786",
        ] {
            assert!(!host_allowed(no, bound), "{no}");
        }
        let all: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert!(host_allowed("192.168.1.9:9000", all));
        assert!(!host_allowed("rebind.example:9000", all));
    }

    /// The page's files together stay within 100 KiB (issue 27).
    #[test]
    fn assets_are_at_most_100_kib() {
        let total = INDEX_HTML.len() + VIEWER_JS.len() + VIEWER_CSS.len();
        assert!(total <= 100 * 1024, "{total} bytes");
    }

    /// No inline script or style (the CSP would refuse them) and no outside address.
    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style="));
        for file in [INDEX_HTML, VIEWER_JS, VIEWER_CSS] {
            assert!(!file.contains("https://"), "an outside address");
        }
        assert!(
            !VIEWER_JS.contains("innerHTML"),
            "text only through textContent"
        );
    }
}
