//! The middleware's configuration and the per-request extension types (URL template,
//! propagation opt-out, retry count): a leaf module, read by the middleware and its
//! attributes.

use std::borrow::Cow;
use std::sync::Arc;

use gorax_trace::Binding;
use gorax_trace::httpconv::{ClassifyFailure, HttpSemconv, OnRequest, OnResponse};
use gorax_trace::propagation::BaggagePolicy;
use http::Extensions;
use reqwest::{Request, Response, Url};

/// The URL template of a request (`/users/{id}`), put in the request's [`Extensions`] to name
/// the client span `{method} {template}` and to record `url.template`.
///
/// Without it the span is named after the method alone: the raw path would make span names
/// unbounded (one per user id).
///
/// ```no_run
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// use gorax_trace_client::UrlTemplate;
///
/// client
///     .get("http://users.internal/users/42")
///     .with_extension(UrlTemplate::new("/users/{id}"))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(pub Cow<'static, str>);

impl UrlTemplate {
    /// A template such as `/users/{id}`.
    pub fn new(template: impl Into<Cow<'static, str>>) -> Self {
        Self(template.into())
    }

    /// The template.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A per-request opt-out of propagation, put in the request's [`Extensions`]: the request still
/// gets a client span, but no `traceparent`, `tracestate` or `baggage` is written to it (for a
/// third-party API that must not learn anything about the caller's trace).
///
/// ```no_run
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// use gorax_trace_client::NoPropagation;
///
/// client
///     .get("https://api.third-party.example/v1/quote")
///     .with_extension(NoPropagation)
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoPropagation;

/// Which hosts receive the trace context (see
/// [`ClientTraceMiddleware::with_propagation_policy`]) or the baggage (see
/// [`ClientTraceMiddleware::with_baggage_hosts`]).
///
/// ```
/// use gorax_trace_client::PropagationPolicy;
///
/// let internal = PropagationPolicy::hosts(["api.gorax.internal", "*.svc.cluster.local"]);
/// assert!(internal.allows(&"http://api.gorax.internal/x".parse().unwrap()));
/// assert!(internal.allows(&"http://users.prod.svc.cluster.local:8080/".parse().unwrap()));
/// assert!(!internal.allows(&"https://api.stripe.com/v1".parse().unwrap()));
///
/// let https_only = PropagationPolicy::custom(|url| url.scheme() == "https");
/// assert!(!https_only.allows(&"http://example.com/".parse().unwrap()));
/// ```
#[derive(Clone, Default)]
pub struct PropagationPolicy(Policy);

#[derive(Clone, Default)]
enum Policy {
    #[default]
    All,
    Hosts(Arc<[String]>),
    Custom(Arc<dyn Fn(&Url) -> bool + Send + Sync>),
}

impl PropagationPolicy {
    /// Every host (the default).
    pub fn all() -> Self {
        Self(Policy::All)
    }

    /// No host.
    pub fn none() -> Self {
        Self(Policy::Hosts(Arc::new([])))
    }

    /// Only these hosts, compared case-insensitively with the URL's host (no port). An entry
    /// `*.example.com` matches every subdomain of `example.com` (not `example.com` itself). IPv6
    /// addresses are written in brackets, as in URLs: `[::1]`.
    pub fn hosts<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(Policy::Hosts(
            hosts
                .into_iter()
                .map(|h| h.into().to_ascii_lowercase())
                .collect(),
        ))
    }

    /// Decided by `allows` for each request URL.
    pub fn custom(allows: impl Fn(&Url) -> bool + Send + Sync + 'static) -> Self {
        Self(Policy::Custom(Arc::new(allows)))
    }

    /// Whether a request to `url` may carry the context.
    pub fn allows(&self, url: &Url) -> bool {
        match &self.0 {
            Policy::All => true,
            Policy::Hosts(hosts) => url
                .host_str()
                .is_some_and(|host| hosts.iter().any(|allowed| host_matches(allowed, host))),
            Policy::Custom(allows) => allows(url),
        }
    }

    pub(crate) fn is_all(&self) -> bool {
        matches!(self.0, Policy::All)
    }
}

/// `allowed` is lower case; `url` hosts are lower case except, possibly, opaque hosts.
pub(crate) fn host_matches(allowed: &str, host: &str) -> bool {
    match allowed.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            host.len() > suffix.len()
                && host.as_bytes()[host.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes())
        }
        _ => allowed.eq_ignore_ascii_case(host),
    }
}

impl std::fmt::Debug for PropagationPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Policy::All => f.write_str("All"),
            Policy::Hosts(hosts) => f.debug_tuple("Hosts").field(hosts).finish(),
            Policy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// How many attempts of this request ended in a way a retry middleware retries, counted in the
/// request's extensions, which reqwest-middleware passes unchanged to every attempt.
#[derive(Clone, Copy)]
pub(crate) struct FailedAttempts(u32);

/// The `http.request.resend_count` of this attempt: the failed attempts before it.
pub(crate) fn resend_count(extensions: &Extensions) -> u32 {
    extensions.get::<FailedAttempts>().map_or(0, |n| n.0)
}

/// Counts a failed attempt. Only failures are counted, so that the common case (one successful
/// attempt) costs no allocation in the extensions.
pub(crate) fn count_failure(
    extensions: &mut Extensions,
    result: &reqwest_middleware::Result<Response>,
) {
    let failed = match result {
        Ok(res) => res.status().is_client_error() || res.status().is_server_error(),
        Err(_) => true,
    };
    if failed {
        let n = resend_count(extensions);
        extensions.insert(FailedAttempts(n + 1));
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) binding: Binding,
    /// Set by `with_http_semconv`; otherwise the handle's mode.
    pub(crate) semconv: Option<HttpSemconv>,
    pub(crate) redact: Vec<String>,
    pub(crate) propagation: PropagationPolicy,
    pub(crate) baggage_hosts: PropagationPolicy,
    pub(crate) baggage: BaggagePolicy,
    pub(crate) classify: Arc<dyn ClassifyFailure>,
    /// `None` for no hook (no context built for it).
    pub(crate) on_request: Option<Arc<dyn OnRequest<Request>>>,
    pub(crate) on_response: Option<Arc<dyn OnResponse<Response>>>,
    /// Attribute value length limit of `url.full` and `server.address`, in characters.
    /// Set by `with_attribute_value_length_limit`; otherwise the handle's limit.
    pub(crate) attr_limit: Option<usize>,
    /// [`ClientTraceMiddleware::with_response_body_in_span`].
    pub(crate) body_in_span: bool,
}

/// One attempt of a request as its span and its measurement see it, worked out once: the
/// normalised method, the modes, the length limit, the retry count and the URL template.
pub(crate) struct Attempt<'a> {
    /// `http.request.method`: the method, or `_OTHER`.
    pub(crate) method: &'static str,
    /// The method is one of the HTTP specification's.
    pub(crate) known_method: bool,
    /// The legacy HTTP keys too (`http/dup`).
    pub(crate) dup: bool,
    /// The length limit of `url.full` and `server.address`.
    pub(crate) limit: usize,
    /// `http.request.resend_count`: earlier attempts of this request.
    pub(crate) resend_count: u32,
    pub(crate) template: Option<&'a UrlTemplate>,
}

impl Attempt<'_> {
    /// The span's name, decided once when it starts: `{method} {template}` (kept for the
    /// process, not allocated per request), else the method (`HTTP` outside the specification).
    pub(crate) fn span_name(&self, method: &http::Method) -> Cow<'static, str> {
        match self.template {
            Some(template) => gorax_trace::httpconv::span_name(method, Some(template.as_str())),
            None if self.known_method => self.method.into(),
            None => "HTTP".into(),
        }
    }
}
