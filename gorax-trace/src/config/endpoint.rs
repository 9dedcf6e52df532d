//! OTLP endpoints as the variables write them, and the URL each protocol gets.

use super::Protocol;

/// The OTLP/HTTP path of the traces signal.
pub(super) const TRACES_PATH: &str = "/v1/traces";
/// The OTLP/HTTP path of the metrics signal.
pub(super) const METRICS_PATH: &str = "/v1/metrics";
/// The OTLP/HTTP path of the logs signal.
pub(super) const LOGS_PATH: &str = "/v1/logs";

/// Which variable an endpoint came from, which decides how HTTP gets its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// `TRACING_ENDPOINT` / `with_endpoint`: `host:port` or a URL; HTTP appends the path when the
    /// URL has none.
    Tracing,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL; HTTP always appends the path.
    OtlpBase,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used verbatim.
    OtlpTraces,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: used verbatim.
    OtlpMetrics,
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`: used verbatim.
    OtlpLogs,
}

#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    /// As written (trimmed).
    pub(super) raw: String,
    pub(super) source: Source,
    /// Written with a scheme (otherwise `host:port`).
    pub(super) has_scheme: bool,
    pub(super) https: bool,
    pub(super) port: Option<u16>,
    /// Path (with query), `""` when none.
    pub(super) path: String,
}

/// Two endpoints are the same setting when written the same way.
impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Endpoint {
    pub(super) fn url(&self, protocol: Protocol, insecure: bool) -> String {
        let http = protocol == Protocol::HttpProtobuf;
        if !self.has_scheme {
            let scheme = if self.port == Some(443) && !insecure {
                "https"
            } else {
                "http"
            };
            let path = if http { TRACES_PATH } else { "" };
            return format!("{scheme}://{}{path}", self.raw);
        }
        let append = http
            && match self.source {
                Source::Tracing => self.path.trim_matches('/').is_empty(),
                Source::OtlpBase => true,
                Source::OtlpTraces | Source::OtlpMetrics | Source::OtlpLogs => false,
            };
        if append {
            format!("{}{TRACES_PATH}", self.raw.trim_end_matches('/'))
        } else {
            self.raw.clone()
        }
    }
}

impl Endpoint {
    /// The URL of the metrics signal on the same collector: like [`url`](Self::url), with
    /// `/v1/metrics` for HTTP (replacing a `/v1/traces` path, appended to another one).
    pub(super) fn metrics_url(&self, protocol: Protocol, insecure: bool) -> String {
        self.signal_url(protocol, insecure, METRICS_PATH)
    }

    /// The URL of another signal (`path`: [`METRICS_PATH`], [`LOGS_PATH`]) on the same collector.
    pub(super) fn signal_url(&self, protocol: Protocol, insecure: bool, path: &str) -> String {
        let traces = self.url(protocol, insecure);
        if protocol != Protocol::HttpProtobuf {
            return traces;
        }
        match traces.strip_suffix(TRACES_PATH) {
            Some(base) => format!("{base}{path}"),
            None if matches!(self.source, Source::OtlpMetrics | Source::OtlpLogs) => traces,
            None => format!("{}{path}", traces.trim_end_matches('/')),
        }
    }
}

/// A host as an OTLP endpoint may name it: an IP address (IPv6 in brackets) or a DNS name of
/// letters, digits, `-` and `_` (underscores are not DNS but resolve in Docker Compose and
/// Kubernetes service names), labels of 1 to 63 characters, at most 253 in all.
fn check_host(host: &str) -> Result<(), String> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("invalid IPv6 address {host:?}"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid = name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid host {host:?}; expected an IP address or a DNS name (letters, digits, '-')"
        ))
    }
}

/// `host:port` (only from [`Source::Tracing`]) or `http(s)://host[:port][/path]`, parsed by
/// [`http::Uri`]; the checks here only add what an OTLP endpoint needs (a host, a port for
/// `host:port`, no path without a scheme) and say what was expected.
pub(super) fn parse(s: &str, source: Source) -> Result<Endpoint, String> {
    const EXPECTED: &str = "expected host:port or http(s)://host[:port][/path]";
    if s.chars().any(char::is_whitespace) {
        return Err(format!("must not contain spaces; {EXPECTED}"));
    }
    let uri: http::Uri = s.parse().map_err(|e| format!("{e}; {EXPECTED}"))?;
    let (has_scheme, https) = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => (true, false),
        Some("https") => (true, true),
        Some(other) => {
            return Err(format!(
                "unsupported scheme {other:?}; expected http or https"
            ));
        }
        None if source == Source::Tracing => (false, false),
        None => return Err("expected a URL such as http://collector:4318".to_owned()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("missing host; {EXPECTED}"))?;
    let host = authority.host();
    if host.is_empty() {
        return Err(format!("missing host; {EXPECTED}"));
    }
    if host.contains(':') && !host.starts_with('[') {
        return Err("an IPv6 address needs brackets, e.g. [::1]:4317".to_owned());
    }
    check_host(host)?;
    // `Uri` drops a port that is not a `u16` (`:99999`): read it from the text.
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    if let Some(port) = host_port
        .get(host.len()..)
        .and_then(|p| p.strip_prefix(':'))
        && !port.is_empty()
        && port.parse::<u16>().is_err()
    {
        return Err(format!("invalid port {port:?}; expected 1 to 65535"));
    }
    let port = match authority.port() {
        // `u16::from_str` (and so `Uri`) takes a leading `+`; a port is digits only.
        Some(p) if p.as_u16() > 0 && p.as_str().bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.as_u16())
        }
        Some(p) => {
            return Err(format!(
                "invalid port {:?}; expected 1 to 65535",
                p.as_str()
            ));
        }
        None if authority.as_str().ends_with(':') => {
            return Err("invalid port \"\"; expected 1 to 65535".to_owned());
        }
        None if has_scheme => None,
        None => {
            return Err("missing port; expected host:port such as localhost:4317".to_owned());
        }
    };
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    if !has_scheme && !path.is_empty() {
        return Err("a path needs a scheme: http(s)://host:port/path".to_owned());
    }
    Ok(Endpoint {
        raw: s.to_owned(),
        source,
        has_scheme,
        https,
        port,
        path: if path == "/" && !s.ends_with('/') {
            String::new()
        } else {
            path.to_owned()
        },
    })
}
