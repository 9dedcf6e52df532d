//! The exporter: its kind, protocol, compression and headers (and the `k=v` lists that
//! headers and resource attributes share).

use super::*;

pub(in crate::config) const CLIENT_PAIR: &str =
    "a client certificate and its key go together: set both or neither";
/// A comma-separated list (the SDK specification's `OTEL_TRACES_EXPORTER`): `otlp`, `console`,
/// `viewer`, each once; or `none` alone.
pub(super) fn parse_exporter(s: &str) -> Result<Vec<ExporterKind>, String> {
    let mut list = Vec::new();
    for item in s.split(',') {
        let kind = match item.trim().to_ascii_lowercase().as_str() {
            "otlp" => ExporterKind::Otlp,
            "console" => ExporterKind::Console,
            "viewer" => ExporterKind::Viewer,
            "none" => ExporterKind::None,
            "" => return Err("empty item in the exporter list".to_owned()),
            _ => {
                return Err(
                    "unsupported exporter; expected a list of otlp, console, viewer, or none"
                        .to_owned(),
                );
            }
        };
        if !list.contains(&kind) {
            list.push(kind);
        }
    }
    if list.len() > 1 && list.contains(&ExporterKind::None) {
        return Err("none cannot be combined with other exporters".to_owned());
    }
    Ok(list)
}

/// `gzip` or `none`, any case (the values of the OpenTelemetry specification).
pub(super) fn parse_compression(s: &str) -> Result<Compression, String> {
    match s.to_ascii_lowercase().as_str() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        _ => Err("unsupported compression; expected gzip or none".to_owned()),
    }
}

pub(super) fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http" | "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err("unsupported protocol; expected grpc or http/protobuf".to_owned()),
        _ => Err("unknown protocol; expected grpc or http/protobuf".to_owned()),
    }
}

/// `k=v,k2=v2` (W3C-baggage-like): members and both sides trimmed, empty members skipped, the
/// last of a repeated key wins. Reasons never echo a value.
pub(super) fn parse_kv_list(s: &str, decode: bool) -> Result<Vec<(String, String)>, String> {
    let (list, bad) = kv_members(s, decode);
    if bad.is_empty() {
        Ok(list)
    } else {
        Err(bad.join("; "))
    }
}

/// The members of a `k=v` list that parse, and why each other one does not.
pub(super) fn kv_members(s: &str, decode: bool) -> (Vec<(String, String)>, Vec<String>) {
    let mut list = Vec::new();
    let mut bad = Vec::new();
    for member in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some((key, value)) = member.split_once('=') else {
            bad.push(format!("member {member:?} is not key=value"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            bad.push("a member has an empty key".to_owned());
            continue;
        }
        let value = match decode {
            true => match percent_decode(value) {
                Some(v) => v,
                None => {
                    bad.push(format!("the value of {key:?} has invalid percent-encoding"));
                    continue;
                }
            },
            false => value.to_owned(),
        };
        upsert(&mut list, key.to_owned(), value);
    }
    (list, bad)
}

/// [`parse_kv_list`] whose keys must be HTTP header names and values header values (checked
/// here for both protocols: gRPC metadata is HTTP/2 headers). Every bad member is named;
/// reasons never echo a value.
pub(super) fn parse_headers(s: &str, decode: bool) -> Result<Vec<(String, String)>, String> {
    let (list, mut bad) = kv_members(s, decode);
    bad.extend(list.iter().filter_map(|(k, v)| header_problem(k, v)));
    if bad.is_empty() {
        Ok(list)
    } else {
        Err(bad.join("; "))
    }
}

/// Why `name: value` cannot be sent as an export header, if it cannot.
pub(in crate::config) fn header_problem(name: &str, value: &str) -> Option<String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        Some(format!(
            "{name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        ))
    } else if http::HeaderValue::from_str(value).is_err() {
        Some(format!(
            "the value of {name:?} is not a valid header value (no control characters such as line breaks)"
        ))
    } else {
        None
    }
}

/// Percent-decoding of `OTEL_*` list values (W3C Baggage octets): a `%` must start a valid
/// escape and the result must be UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let escapes_ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    escapes_ok
        .then(|| percent_encoding::percent_decode_str(s).decode_utf8().ok())
        .flatten()
        .map(std::borrow::Cow::into_owned)
}
