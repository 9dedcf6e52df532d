//! The W3C Baggage `baggage` header: extraction into an `opentelemetry` [`Baggage`] and the value
//! to inject, replacing the SDK's `BaggagePropagator` on our path.
//!
//! Rules, quoted from W3C Baggage (§ 3.3 and § 3.5):
//! - Grammar: `list-member = key OWS "=" OWS value *( OWS ";" OWS property )`,
//!   `property = key OWS "=" OWS value / key OWS`, `key = token` (RFC 7230 § 3.2.6),
//!   `value = *baggage-octet`,
//!   `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
//! - "Leading and trailing whitespaces (`OWS`) are allowed and are not considered to be a part of
//!   the key" (the value, a property key or value alike).
//! - Values: "Any code points outside of the `baggage-octet` range MUST be percent-encoded. The
//!   percent code point (`U+0025`) MUST be percent-encoded." "When decoding the value,
//!   percent-encoded octet sequences that do not match the UTF-8 encoding scheme MUST be replaced
//!   with the replacement code point (`U+FFFD`)." Property values have the same `value` grammar
//!   and are decoded and encoded the same way, so that a decoded property is never written back
//!   raw (`p=%2Cisadmin%3Dtrue` stays one property, not a `,isadmin=true` member).
//! - "`value` MAY contain any number of the equal sign (`U+003D`) code points. Parsers MUST NOT
//!   assume that the equal sign is only used to separate `key` and `value`."
//! - An invalid member is dropped alone: "If a system determines that the value of a baggage
//!   entry is not in the format defined in this specification, it MAY remove that entry before
//!   propagating the baggage header".
//! - Duplicates: "keys may be deduplicated by keeping the first entry, keeping the last entry, or
//!   concatenating values together." The first entry is kept.
//! - Limits: "A platform MUST propagate all `list-member`s including any `list-member`s added by
//!   the platform whenever both of these conditions are met: [...] 64 `list-member`s or less.
//!   [...] 8192 bytes or less." Past either, "a platform MAY drop `list-member`s until both
//!   conditions are met", and "it MUST NOT propagate any partial `list-member`s". Injection
//!   keeps whole members up to [`MAX_MEMBERS`] and [`MAX_BYTES`], never cuts one, and never drops
//!   the header for being too long.
//!
//! Properties are kept in the member's [`BaggageMetadata`] in their wire form, canonically
//! encoded (`p1;p2=v%2C2`): a flat string of decoded values could not tell a `;` inside a value
//! from a separator. [`properties`] gives them decoded. Metadata set by application code is read
//! the same way (`;`-separated, values percent-decoded) and encoded again on injection, so no byte
//! the grammar forbids is ever written, whatever it holds.

use std::collections::HashSet;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt, BaggageMetadata};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// "A platform MUST propagate all `list-member`s [...] whenever [...] the resulting
/// `baggage-string` contains 64 `list-member`s or less".
pub(crate) const MAX_MEMBERS: usize = 64;
/// "[...] and the resulting `baggage-string` is of size 8192 bytes or less."
pub(crate) const MAX_BYTES: usize = 8192;

/// The code points outside `baggage-octet` (controls, space, `"`, `,`, `;`, `\`), and `%`.
/// `percent-encoding` encodes every non-ASCII byte as well.
const ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Extracts a `baggage` value (all header fields joined with `,`) into `cx`. A header with no
/// valid member leaves `cx` as it is.
pub(crate) fn extract(cx: &Context, value: &str) -> Context {
    let baggage = parse([value]);
    if baggage.is_empty() {
        cx.clone()
    } else {
        cx.with_baggage(baggage)
    }
}

/// Parses the `baggage` header fields, in order. Invalid members are dropped one by one; the
/// first entry of a key is kept; [`Baggage`] holds at most 64 members and 8192 bytes of decoded
/// text, so members past that are dropped too.
pub(crate) fn parse<'a>(fields: impl IntoIterator<Item = &'a str>) -> Baggage {
    let mut baggage = Baggage::new();
    // Keys seen, kept or not: a later entry never stands in for a first one that did not fit.
    let mut seen = HashSet::new();
    for field in fields {
        for member in field.split(',') {
            if baggage.len() == MAX_MEMBERS {
                return baggage;
            }
            let Some((key, value, metadata)) = parse_member(member) else {
                continue;
            };
            if seen.insert(key) {
                baggage.insert_with_metadata(key.to_owned(), value, metadata);
            }
        }
    }
    baggage
}

/// One `list-member`: its key, its decoded value and its properties in canonical wire form.
fn parse_member(member: &str) -> Option<(&str, String, String)> {
    let mut parts = member.split(';');
    let (key, value) = parts.next()?.split_once('=')?;
    let (key, value) = (ows(key), ows(value));
    if !is_token(key) || !is_value(value) {
        return None;
    }
    let mut properties = Vec::new();
    for property in parts {
        let property = ows(property);
        if property.is_empty() {
            // `k=v;` — an empty property is no information; the member is still good.
            continue;
        }
        let (pkey, pvalue) = match property.split_once('=') {
            Some((k, v)) => (ows(k), Some(ows(v))),
            None => (property, None),
        };
        if !is_token(pkey) || !pvalue.is_none_or(is_value) {
            return None;
        }
        properties.push((pkey, pvalue.map(decode)));
    }
    let metadata = format_properties(
        properties
            .iter()
            .map(|(k, v): &(&str, Option<String>)| (*k, v.as_deref())),
    );
    Some((key, decode(value), metadata))
}

/// The properties of a member, values decoded: `(key, None)` for a property without a value.
/// Metadata that is not a property set is read as far as it is one (invalid properties are
/// skipped).
pub(crate) fn properties(metadata: &BaggageMetadata) -> Vec<(String, Option<String>)> {
    metadata
        .as_str()
        .split(';')
        .filter_map(|property| {
            let property = ows(property);
            let (key, value) = match property.split_once('=') {
                Some((k, v)) => (ows(k), Some(decode(ows(v)))),
                None => (property, None),
            };
            is_token(key).then(|| (key.to_owned(), value))
        })
        .collect()
}

/// The `baggage` value to inject, or `None` when there is nothing to send. Members are sorted by
/// key (a [`Baggage`] has no order) and taken whole while the header stays within 64 members
/// and 8192 bytes; a member whose key is not a `token` cannot be written and is left out.
pub(crate) fn header_value(baggage: &Baggage) -> Option<String> {
    if baggage.is_empty() {
        return None;
    }
    let mut members: Vec<(&str, String)> = baggage
        .iter()
        .filter_map(|(key, (value, metadata))| {
            format_member(key.as_str(), value.as_str(), metadata).map(|m| (key.as_str(), m))
        })
        .collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    let mut count = 0;
    for (_, member) in members {
        if count == MAX_MEMBERS {
            break;
        }
        let separator = usize::from(!out.is_empty());
        if out.len() + separator + member.len() > MAX_BYTES {
            // Too big here; a smaller member further on may still fit.
            continue;
        }
        if separator == 1 {
            out.push(',');
        }
        out.push_str(&member);
        count += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// Keeps only the members whose key is listed (exact, case-sensitive match), each with its
/// properties.
pub(crate) fn allow<S: AsRef<str>>(baggage: &Baggage, keys: &[S]) -> Baggage {
    let mut kept = Baggage::new();
    for (key, (value, metadata)) in baggage {
        if keys.iter().any(|allowed| allowed.as_ref() == key.as_str()) {
            kept.insert_with_metadata(key.clone(), value.clone(), metadata.clone());
        }
    }
    kept
}

/// `key=value;p1;p2=v2`, encoded, or `None` for a key that is not a `token`.
fn format_member(key: &str, value: &str, metadata: &BaggageMetadata) -> Option<String> {
    if !is_token(key) {
        return None;
    }
    let mut out = format!("{key}={}", utf8_percent_encode(value, ENCODE));
    let properties = properties(metadata);
    let properties = format_properties(
        properties
            .iter()
            .map(|(k, v): &(String, Option<String>)| (k.as_str(), v.as_deref())),
    );
    if !properties.is_empty() {
        out.push(';');
        out.push_str(&properties);
    }
    Some(out)
}

/// `p1;p2=v2` with the values encoded.
fn format_properties<'a>(properties: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut out = String::new();
    for (key, value) in properties {
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(key);
        if let Some(value) = value {
            out.push('=');
            out.extend(utf8_percent_encode(value, ENCODE));
        }
    }
    out
}

fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// `OWS = *( SP / HTAB )` trimmed from both ends.
fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `token = 1*tchar`, `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
/// "_" / "`" / "|" / "~" / DIGIT / ALPHA` (RFC 7230 § 3.2.6).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// `value = *baggage-octet`, `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
fn is_value(s: &str) -> bool {
    s.bytes().all(is_baggage_octet)
}

fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A member as the tests compare it: key → (value, decoded properties).
    type Members = BTreeMap<String, (String, Vec<(String, Option<String>)>)>;

    fn members(baggage: &Baggage) -> Members {
        baggage
            .iter()
            .map(|(k, (v, m))| (k.to_string(), (v.to_string(), properties(m))))
            .collect()
    }

    fn got(header: &str) -> Members {
        members(&parse([header]))
    }

    fn one(key: &str, value: &str, props: &[(&str, Option<&str>)]) -> Members {
        let props = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        BTreeMap::from([(key.to_owned(), (value.to_owned(), props))])
    }

    /// Whether `header` is a `baggage-string` of the grammar, with no optional whitespace.
    fn is_baggage_string(header: &str) -> bool {
        header.split(',').all(|member| {
            let mut parts = member.split(';');
            let Some((key, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
                return false;
            };
            is_token(key)
                && is_value(value)
                && parts.all(|p| match p.split_once('=') {
                    Some((k, v)) => is_token(k) && is_value(v),
                    None => is_token(p),
                })
        })
    }

    #[test]
    fn extraction_rules_one_row_per_rule() {
        let ws = |k: &str, v: &str| one(k, v, &[]);
        // (header, members extracted, rule)
        let rows: Vec<(&str, Members, &str)> = vec![
            ("userId=alice", ws("userId", "alice"), "a member"),
            // "Leading and trailing whitespaces (`OWS`) are allowed and are not considered to be
            // a part of the key" / "of the value".
            (
                " userId \t=\t alice ",
                ws("userId", "alice"),
                "OWS around key and value",
            ),
            // "A value contains a URL encoded UTF-8 string" / "Any code points outside of the
            // `baggage-octet` range MUST be percent-encoded."
            (
                "serverNode=DF%2028",
                ws("serverNode", "DF 28"),
                "a percent-encoded space",
            ),
            (
                "userId=Am%C3%A9lie",
                ws("userId", "Amélie"),
                "percent-encoded UTF-8",
            ),
            // "percent-encoded octet sequences that do not match the UTF-8 encoding scheme MUST
            // be replaced with the replacement code point (`U+FFFD`)."
            (
                "k=a%FFb",
                ws("k", "a\u{fffd}b"),
                "invalid UTF-8 is replaced",
            ),
            // "`value` MAY contain any number of the equal sign (`U+003D`) code points. Parsers
            // MUST NOT assume that the equal sign is only used to separate `key` and `value`."
            ("k=a=b==", ws("k", "a=b=="), "equal signs in a value"),
            // `value = *baggage-octet`: it may be empty.
            ("k=", ws("k", ""), "an empty value"),
            // `%` is a `baggage-octet`; a `%` that starts no escape is kept as it is.
            ("k=100%", ws("k", "100%"), "a lone percent sign"),
            // "Additional metadata MAY be appended to values in the form of property set,
            // represented as semi-colon `;` delimited list of keys and/or key-value pairs, e.g.
            // `;k1=v1;k2;k3=v3`."
            (
                "k=v;k1=v1;k2;k3=v3",
                one(
                    "k",
                    "v",
                    &[("k1", Some("v1")), ("k2", None), ("k3", Some("v3"))],
                ),
                "properties",
            ),
            // "Leading and trailing `OWS` is allowed and is not considered to be a part of the
            // property key or value."
            (
                "k=v ; p1 = a ;\tp2 ",
                one("k", "v", &[("p1", Some("a")), ("p2", None)]),
                "OWS around properties",
            ),
            // A property value is a `value`: decoded, so that it cannot become a member.
            (
                "userId=alice;p=%2Cisadmin%3Dtrue",
                one("userId", "alice", &[("p", Some(",isadmin=true"))]),
                "an encoded property value stays inside its property",
            ),
            (
                "k=v;p=%0D%0A",
                one("k", "v", &[("p", Some("\r\n"))]),
                "encoded CR LF in a property keeps the header",
            ),
            // "If a system determines that the value of a baggage entry is not in the format
            // defined in this specification, it MAY remove that entry" — that entry only.
            (
                "a=1,bad key=2,b=2",
                {
                    let mut m = ws("a", "1");
                    m.extend(ws("b", "2"));
                    m
                },
                "a key that is not a token drops its member only",
            ),
            ("a=1,b=two words", ws("a", "1"), "a raw space in a value"),
            ("a=1,b=\"q\"", ws("a", "1"), "a DQUOTE in a value"),
            ("a=1,b=x\\y", ws("a", "1"), "a backslash in a value"),
            ("a=1,b=\u{e9}", ws("a", "1"), "a raw non-ASCII value"),
            (
                "a=1,b=x\u{1}",
                ws("a", "1"),
                "a control character in a value",
            ),
            ("a=1,b", ws("a", "1"), "a member without `=`"),
            ("a=1,=v", ws("a", "1"), "a member without a key"),
            ("a=1,b=2;p=x y", ws("a", "1"), "an invalid property value"),
            ("a=1,b=2;p q", ws("a", "1"), "an invalid property key"),
            (
                "a=1,,b=2, ",
                {
                    let mut m = ws("a", "1");
                    m.extend(ws("b", "2"));
                    m
                },
                "empty members are skipped",
            ),
            // "keys may be deduplicated by keeping the first entry, keeping the last entry, or
            // concatenating values together." The first is kept.
            ("k=1,k=2", ws("k", "1"), "the first entry of a key"),
            // `key = token`: every tchar.
            (
                "!#$%&'*+-.^_`|~09AZaz=v",
                ws("!#$%&'*+-.^_`|~09AZaz", "v"),
                "every tchar in a key",
            ),
        ];
        for (header, expected, rule) in &rows {
            assert_eq!(got(header), *expected, "{rule}: {header:?}");
        }
    }

    #[test]
    fn multiple_fields_are_combined() {
        // "Multiple `baggage` headers are allowed. Values can be combined in a single header
        // according to RFC 7230." "If there are multiple `baggage` headers, all limits apply to
        // the combination of all `baggage` headers and not each header individually."
        let baggage = parse(["userId=alice", "serverNode=DF%2028,isProduction=false"]);
        assert_eq!(baggage.len(), 3);
        assert_eq!(
            header_value(&baggage).as_deref(),
            Some("isProduction=false,serverNode=DF%2028,userId=alice")
        );
        let fields: Vec<String> = (0..70).map(|i| format!("k{i:02}=v")).collect();
        assert_eq!(parse(fields.iter().map(String::as_str)).len(), MAX_MEMBERS);
    }

    #[test]
    fn extract_keeps_the_context_when_nothing_is_valid() {
        let cx = Context::new().with_baggage([opentelemetry::KeyValue::new("old", "1")]);
        assert_eq!(extract(&cx, "bad key=1").baggage().len(), 1);
        let cx = extract(&cx, "new=2");
        assert_eq!(members(cx.baggage()), one("new", "2", &[]));
    }

    #[test]
    fn injection_rules_one_row_per_rule() {
        // (key, value, metadata, member written, rule)
        let rows: &[(&str, &str, &str, Option<&str>, &str)] = &[
            ("k", "v", "", Some("k=v"), "a member"),
            // "Any code points outside of the `baggage-octet` range MUST be percent-encoded."
            ("k", "DF 28", "", Some("k=DF%2028"), "a space"),
            (
                "k",
                "Amélie",
                "",
                Some("k=Am%C3%A9lie"),
                "non-ASCII as UTF-8",
            ),
            (
                "k",
                "a,b;c\"d\\e",
                "",
                Some("k=a%2Cb%3Bc%22d%5Ce"),
                ", ; \" \\",
            ),
            ("k", "a\r\nb\u{7f}", "", Some("k=a%0D%0Ab%7F"), "controls"),
            // "The percent code point (`U+0025`) MUST be percent-encoded."
            ("k", "100%", "", Some("k=100%25"), "a percent sign"),
            // "Code points which are not required to be percent-encoded MAY be percent-encoded."
            // They are not: every other `baggage-octet` is written as it is.
            (
                "k",
                "!#$&'()*+-./:<=>?@[]^_`{|}~",
                "",
                Some("k=!#$&'()*+-./:<=>?@[]^_`{|}~"),
                "baggage-octets are written as they are",
            ),
            // Properties: values encoded the same way, never written back raw.
            (
                "userId",
                "alice",
                "p=%2Cisadmin%3Dtrue",
                Some("userId=alice;p=%2Cisadmin=true"),
                "an extracted property value stays encoded",
            ),
            (
                "k",
                "v",
                "p=a,b;q=x y;flag",
                Some("k=v;p=a%2Cb;q=x%20y;flag"),
                "raw metadata from application code is encoded",
            ),
            (
                "k",
                "v",
                "bad key=1;ok",
                Some("k=v;ok"),
                "a property key that is not a token is left out",
            ),
            // `key = token`: a key that is not one cannot be encoded, so the member is left out.
            ("two words", "v", "", None, "a key that is not a token"),
        ];
        for (key, value, metadata, member, rule) in rows {
            let mut baggage = Baggage::new();
            baggage.insert_with_metadata(key.to_string(), value.to_string(), *metadata);
            let header = header_value(&baggage);
            assert_eq!(header.as_deref(), *member, "{rule}");
            if let Some(header) = header {
                assert!(is_baggage_string(&header), "{rule}: {header:?}");
            }
        }
    }

    #[test]
    fn the_smuggled_member_cannot_appear() {
        let cx = extract(&Context::new(), "userId=alice;p=%2Cisadmin%3Dtrue");
        let sent = header_value(cx.baggage()).unwrap();
        assert_eq!(sent, "userId=alice;p=%2Cisadmin=true");
        let next_hop = parse([sent.as_str()]);
        assert_eq!(next_hop.len(), 1);
        assert!(next_hop.get("isadmin").is_none());
        // The allow-list keeps the member with its property, still encoded.
        let allowed = allow(cx.baggage(), &["userId"]);
        assert_eq!(header_value(&allowed).as_deref(), Some(sent.as_str()));
        assert!(
            allow(cx.baggage(), &["userid"]).is_empty(),
            "keys are case-sensitive"
        );
    }

    #[test]
    fn allow_keeps_only_listed_keys_with_their_properties() {
        let baggage = parse(["user=alice;src=%3Bweb,tenant=t1;x,token=secret"]);
        let kept = allow(&baggage, &["user", "tenant", "absent"]);
        assert_eq!(
            header_value(&kept).as_deref(),
            Some("tenant=t1;x,user=alice;src=%3Bweb")
        );
    }

    #[test]
    fn limits_trim_whole_members() {
        // "If either of the above conditions is not met, a platform MAY drop `list-member`s
        // until both conditions are met." "If a platform cannot propagate all baggage, it MUST
        // NOT propagate any partial `list-member`s."
        //
        // 64 members: a `Baggage` holds no more, and all of them are sent.
        let fields: Vec<String> = (0..64).map(|i| format!("k{i:02}=v")).collect();
        let baggage = parse(fields.iter().map(String::as_str));
        let sent = header_value(&baggage).unwrap();
        assert_eq!(sent.split(',').count(), 64);
        // 8192 bytes: a `Baggage` limits decoded bytes, encoding can triple them. Whole
        // members are taken while they fit, the header is never dropped.
        let mut baggage = Baggage::new();
        for i in 0..8 {
            baggage.insert(format!("k{i}"), ",".repeat(900));
        }
        assert_eq!(baggage.len(), 8);
        let sent = header_value(&baggage).unwrap();
        assert!(sent.len() <= MAX_BYTES, "{}", sent.len());
        let members: Vec<&str> = sent.split(',').collect();
        assert_eq!(members.len(), 3, "3 × 2703 bytes fit in 8192, 4 do not");
        for m in &members {
            assert_eq!(m.len(), 3 + 2700, "{m:.10}… is whole");
        }
        // A member that does not fit is skipped, a smaller one after it still goes.
        let mut baggage = Baggage::new();
        baggage.insert("a", "x".repeat(5000));
        baggage.insert("b", ";".repeat(1500));
        baggage.insert("c", "small");
        assert_eq!(
            header_value(&baggage).map(|h| h.len()),
            Some(2 + 5000 + 1 + 7)
        );
    }

    /// An arbitrary member: a token key, any text as value and property values.
    fn member() -> impl Strategy<Value = (String, String, Vec<(String, Option<String>)>)> {
        let token = "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}";
        (
            token,
            any::<String>(),
            proptest::collection::vec((token, proptest::option::of(any::<String>())), 0..4),
        )
    }

    /// An encoding of `s` that a sender may produce: ours, or every byte escaped.
    fn encoded(s: &str, escape_all: bool) -> String {
        if escape_all {
            s.bytes().map(|b| format!("%{b:02x}")).collect()
        } else {
            utf8_percent_encode(s, ENCODE).to_string()
        }
    }

    proptest! {
        #[test]
        fn accepted_input_round_trips_and_nothing_is_smuggled(
            input in proptest::collection::vec(member(), 1..20),
            escape_all in any::<bool>(),
            ows in "[ \t]{0,2}",
        ) {
            // The header a sender writes for `input`, with OWS everywhere it is allowed.
            let header: Vec<String> = input
                .iter()
                .map(|(k, v, props)| {
                    let mut m = format!("{ows}{k}{ows}={ows}{}{ows}", encoded(v, escape_all));
                    for (pk, pv) in props {
                        m.push_str(&format!(";{ows}{pk}{ows}"));
                        if let Some(pv) = pv {
                            m.push_str(&format!("={ows}{}{ows}", encoded(pv, escape_all)));
                        }
                    }
                    m
                })
                .collect();
            let header = header.join(",");
            let first = parse([header.as_str()]);
            // What the input means: first entry of each key, properties as given.
            let mut expected = Members::new();
            for (k, v, props) in &input {
                expected.entry(k.clone()).or_insert_with(|| (v.clone(), props.clone()));
            }
            let first_members = members(&first);
            // No member appears that was not in the input, and each is the input's.
            for (k, m) in &first_members {
                prop_assert_eq!(Some(m), expected.get(k), "{}", k);
            }
            let sent = header_value(&first);
            if let Some(sent) = &sent {
                prop_assert!(is_baggage_string(sent), "{:?}", sent);
                prop_assert!(sent.len() <= MAX_BYTES);
                prop_assert!(sent.split(',').count() <= MAX_MEMBERS);
                // extract → inject → extract is the identity on the members sent.
                let second = members(&parse([sent.as_str()]));
                for (k, m) in &second {
                    prop_assert_eq!(Some(m), first_members.get(k));
                }
                // Everything is sent when it all fits.
                let full: usize = first
                    .iter()
                    .filter_map(|(k, (v, m))| format_member(k.as_str(), v.as_str(), m))
                    .map(|m| m.len() + 1)
                    .sum();
                if full <= MAX_BYTES + 1 {
                    prop_assert_eq!(&second, &first_members);
                }
            } else {
                prop_assert!(first.is_empty());
            }
        }

        #[test]
        fn arbitrary_headers_and_baggage_always_inject_the_grammar(
            header in ".{0,200}",
            entries in proptest::collection::vec((".{0,8}", ".{0,30}", ".{0,30}"), 0..80),
        ) {
            let from_header = parse([header.as_str()]);
            for (k, _) in &from_header {
                // Every extracted key is the key of a member of the input.
                let is_input_key = header
                    .split(',')
                    .any(|m| m.split(';').next().and_then(|kv| kv.split_once('='))
                        .is_some_and(|(key, _)| ows(key) == k.as_str()));
                prop_assert!(is_input_key, "{} was not a key of {:?}", k, header);
            }
            let mut from_api = Baggage::new();
            for (k, v, m) in &entries {
                from_api.insert_with_metadata(k.clone(), v.clone(), m.as_str());
            }
            for baggage in [&from_header, &from_api] {
                if let Some(sent) = header_value(baggage) {
                    prop_assert!(is_baggage_string(&sent), "{:?}", sent);
                    prop_assert!(!sent.contains(['\r', '\n', ' ', '\t']));
                    prop_assert!(sent.len() <= MAX_BYTES);
                    prop_assert!(sent.split(',').count() <= MAX_MEMBERS);
                    // And it reads back as the same members.
                    let back = members(&parse([sent.as_str()]));
                    let originals = members(baggage);
                    for (k, m) in &back {
                        let original = originals.get(k);
                        prop_assert!(original.is_some(), "{} appeared", k);
                        prop_assert_eq!(&m.0, &original.unwrap().0);
                    }
                }
            }
        }
    }
}
