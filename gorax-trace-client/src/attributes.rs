//! Request and response attributes of the client span (stable HTTP semantic conventions, plus
//! the legacy names in dup mode). Only called when the span is recording.

use gorax_trace::httpconv::{
    ResponseHead, has_sensitive_key, limited, protocol_version, redact_query,
};
use gorax_trace::semconv::{self, legacy};
use opentelemetry::trace::{Span, Status};
use opentelemetry::{KeyValue, Value};
use reqwest::{Request, Response, Url};

use crate::config::{Attempt, Config};

/// `url.full`: the URL without userinfo, with the values of sensitive query keys replaced by
/// `REDACTED`.
pub(crate) fn url_full(url: &Url, sensitive: &[String]) -> String {
    let has_userinfo = !url.username().is_empty() || url.password().is_some();
    let redacted = url
        .query()
        .filter(|q| has_sensitive_key(q, sensitive))
        .map(|q| redact_query(q, sensitive));
    if !has_userinfo && redacted.is_none() {
        return url.as_str().to_owned();
    }
    let mut url = url.clone();
    if has_userinfo {
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    if let Some(q) = redacted {
        url.set_query(Some(&q));
    }
    url.into()
}

/// The capacity of a span's attribute list: every attribute the request and the response may
/// add (method and its original, server address and port, `url.full`, template, resend count,
/// the two legacy request names; status code, protocol version, legacy status code, error type).
pub(crate) const CAPACITY: usize = 13;

/// Where the outcome goes: the span itself (the usual case, no list in between), or a list
/// for a span held in a context.
pub(crate) trait Sink {
    fn attribute(&mut self, attribute: KeyValue);
    fn status(&mut self, status: Status);
    fn event(&mut self, name: &'static str, attributes: Vec<KeyValue>);
}

impl<S: Span> Sink for S {
    fn attribute(&mut self, attribute: KeyValue) {
        self.set_attribute(attribute);
    }

    fn status(&mut self, status: Status) {
        self.set_status(status);
    }

    fn event(&mut self, name: &'static str, attributes: Vec<KeyValue>) {
        self.add_event(name, attributes);
    }
}

/// The outcome of a request whose span sits in a context (with hooks).
#[derive(Default)]
pub(crate) struct AttributeList {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) status: Option<Status>,
    pub(crate) events: Vec<(&'static str, Vec<KeyValue>)>,
}

impl Sink for AttributeList {
    fn attribute(&mut self, attribute: KeyValue) {
        self.attributes.push(attribute);
    }

    fn status(&mut self, status: Status) {
        self.status = Some(status);
    }

    fn event(&mut self, name: &'static str, attributes: Vec<KeyValue>) {
        self.events.push((name, attributes));
    }
}

/// The request attributes (the span is already named, see [`Attempt::span_name`]).
pub(crate) fn on_request(
    span: &mut impl Span,
    req: &Request,
    attempt: &Attempt<'_>,
    config: &Config,
) {
    let (method, limit, dup) = (attempt.method, attempt.limit, attempt.dup);
    span.set_attribute(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method));
    if !attempt.known_method {
        span.set_attribute(KeyValue::new(
            semconv::HTTP_REQUEST_METHOD_ORIGINAL,
            limited(req.method().as_str(), limit),
        ));
    }
    let url = req.url();
    if let Some(host) = url.host_str() {
        span.set_attribute(KeyValue::new(semconv::SERVER_ADDRESS, limited(host, limit)));
    }
    if let Some(port) = url.port_or_known_default() {
        span.set_attribute(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
    }
    let full = url_full(url, &config.redact);
    // Within the limit (bytes, so characters too) the string is used as it is.
    let full: Value = if full.len() <= limit {
        full.into()
    } else {
        limited(&full, limit).into()
    };
    // The legacy `http.url` shares the value; only `http/dup` mode pays for the copy.
    let legacy_url = dup.then(|| full.clone());
    span.set_attribute(KeyValue::new(semconv::URL_FULL, full));
    if let Some(template) = attempt.template {
        span.set_attribute(KeyValue::new(semconv::URL_TEMPLATE, template.0.clone()));
    }
    if attempt.resend_count > 0 {
        span.set_attribute(KeyValue::new(
            semconv::HTTP_REQUEST_RESEND_COUNT,
            i64::from(attempt.resend_count),
        ));
    }
    if dup {
        span.set_attribute(KeyValue::new(
            legacy::HTTP_METHOD,
            req.method().as_str().to_owned(),
        ));
        if let Some(url) = legacy_url {
            span.set_attribute(KeyValue::new(legacy::HTTP_URL, url));
        }
    }
}

/// The response attributes and, for a failure (4xx and 5xx on a client span), the Error status.
pub(crate) fn on_response(sink: &mut impl Sink, res: &Response, config: &Config, dup: bool) {
    let status = res.status();
    let code = i64::from(status.as_u16());
    sink.attribute(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, code));
    sink.attribute(KeyValue::new(
        semconv::NETWORK_PROTOCOL_VERSION,
        protocol_version(res.version()),
    ));
    if dup {
        sink.attribute(KeyValue::new(legacy::HTTP_STATUS_CODE, code));
    }
    if let Some(error_type) = config
        .classify
        .classify(&ResponseHead::new(status, res.headers()))
    {
        sink.attribute(KeyValue::new(semconv::ERROR_TYPE, error_type));
        sink.status(Status::error(""));
    }
}

/// A request that got no response: `error.type` is a low-cardinality class of the error; the
/// status message is the error's text without its URL (reqwest names the URL it failed for; it
/// is in `url.full`, redacted) and with any other URL in it redacted
/// ([`redact_text`](gorax_trace::httpconv::redact_text)).
pub(crate) fn on_error(sink: &mut impl Sink, error: &reqwest_middleware::Error) {
    let message = error_message(error);
    sink.attribute(KeyValue::new(semconv::ERROR_TYPE, error_type(error)));
    if gorax_trace::TelemetryHandle::installed()
        .exception_signal()
        .span_events()
    {
        sink.event(
            semconv::EXCEPTION_EVENT,
            vec![
                KeyValue::new(semconv::EXCEPTION_TYPE, EXCEPTION_TYPE),
                KeyValue::new(semconv::EXCEPTION_MESSAGE, message.clone()),
            ],
        );
    }
    sink.status(Status::error(message));
}

/// `exception.type` of a failed call: the error type reqwest-middleware returns.
const EXCEPTION_TYPE: &str = "reqwest_middleware::Error";

/// The `http.client.request.exception` log record of a failed call, when exceptions go to logs
/// (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`), in the client span's context (recorded or not).
pub(crate) fn exception_log(
    sc: &opentelemetry::trace::SpanContext,
    error: &reqwest_middleware::Error,
) {
    let handle = gorax_trace::TelemetryHandle::installed();
    if handle.exception_signal().logs() {
        gorax_trace::span::exception_log(
            &handle,
            sc,
            EXCEPTION_TYPE,
            &error_message(error),
            gorax_trace::span::Exception::HTTP_CLIENT,
        );
    }
}

/// The text of `error` without the URL reqwest appends, and with any other URL redacted.
fn error_message(error: &reqwest_middleware::Error) -> String {
    let text = error.to_string();
    let text = match error {
        reqwest_middleware::Error::Reqwest(e) => match e.url() {
            Some(url) => text.replace(&format!(" for url ({url})"), ""),
            None => text,
        },
        reqwest_middleware::Error::Middleware(_) => text,
    };
    gorax_trace::httpconv::redact_text(&text).into_owned()
}

/// The outcome attributes and status of `result`.
pub(crate) fn outcome(
    sink: &mut impl Sink,
    result: &reqwest_middleware::Result<Response>,
    config: &Config,
    dup: bool,
) {
    match result {
        Ok(res) => on_response(sink, res, config, dup),
        Err(err) => on_error(sink, err),
    }
}

/// The class of a failed request for `error.type`.
pub(crate) fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Reqwest(e) => reqwest_error_type(e),
        reqwest_middleware::Error::Middleware(e) => e
            .chain()
            .find_map(|cause| cause.downcast_ref::<reqwest::Error>())
            .map_or("_OTHER", reqwest_error_type),
    }
}

fn reqwest_error_type(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() {
        "body"
    } else if e.is_decode() {
        "decode"
    } else if e.is_builder() {
        "builder"
    } else if e.is_request() {
        "request"
    } else {
        "_OTHER"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        gorax_trace::httpconv::DEFAULT_REDACTED_QUERY_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .collect()
    }

    #[test]
    fn url_full_removes_userinfo_and_redacts_sensitive_values() {
        let table = [
            ("http://example.com/a?b=1", "http://example.com/a?b=1"),
            (
                "https://user:pass@example.com:8443/a?b=1",
                "https://example.com:8443/a?b=1",
            ),
            ("https://user@example.com/", "https://example.com/"),
            (
                "https://s3.example.com/o?AWSAccessKeyId=AK&Signature=xyz&Expires=1",
                "https://s3.example.com/o?AWSAccessKeyId=REDACTED&Signature=REDACTED&Expires=1",
            ),
            (
                "http://u:p@example.com/?sig=abc&signatures=kept#frag",
                "http://example.com/?sig=REDACTED&signatures=kept#frag",
            ),
            (
                "https://a.example/cb?Code=c0de&state=s&Access_Token=t0k&X-Amz-Signature=s1g",
                "https://a.example/cb?Code=REDACTED&state=s&Access_Token=REDACTED&X-Amz-Signature=REDACTED",
            ),
            (
                "https://a.example/?password=hunter2&apikey=k&client_secret=cs",
                "https://a.example/?password=REDACTED&apikey=REDACTED&client_secret=REDACTED",
            ),
            ("http://example.com/?sig", "http://example.com/?sig"),
            (
                "http://example.com/?sig=",
                "http://example.com/?sig=REDACTED",
            ),
        ];
        for (input, expected) in table {
            let url: Url = input.parse().unwrap();
            assert_eq!(url_full(&url, &keys()), expected, "{input}");
        }
    }

    #[test]
    fn extra_redacted_keys() {
        let mut keys = keys();
        keys.push("token".into());
        assert_eq!(
            redact_query("a=1&token=t&&b", &keys),
            "a=1&token=REDACTED&&b"
        );
    }
}
