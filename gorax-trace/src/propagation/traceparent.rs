//! `traceparent`: parsing without allocation, formatting on the stack.

use http::HeaderValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Flags the W3C specification defines: `sampled` (0x01) and, in Level 2, `random` (0x02).
pub(crate) const KNOWN_FLAGS: u8 = 0x03;
/// Length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;

/// Parses one `traceparent` value. Returns a remote [`SpanContext`] with an empty trace state,
/// or `None` when the value is not valid (the caller then starts a new trace).
///
/// ```
/// # use gorax_trace::propagation::parse_traceparent;
/// assert!(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
/// assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// assert!(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// ```
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let b = value.trim_matches([' ', '\t']).as_bytes();
    if b.len() < TRACEPARENT_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex_u8(&b[0..2])?;
    match version {
        0x00 if b.len() != TRACEPARENT_LEN => return None,
        0xff => return None,
        // Future versions: parse what version 00 defines, require a delimiter after it.
        _ if b.len() > TRACEPARENT_LEN && b[TRACEPARENT_LEN] != b'-' => return None,
        _ => {}
    }
    let trace_id = hex_u128(&b[3..35])?;
    let span_id = hex_u64(&b[36..52])?;
    let flags = hex_u8(&b[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags & KNOWN_FLAGS),
        true,
        TraceState::NONE,
    ))
}

/// A formatted `traceparent` value on the stack (no allocation).
#[derive(Clone, Copy)]
pub struct Traceparent([u8; TRACEPARENT_LEN]);

impl Traceparent {
    /// Formats the version-00 `traceparent` of `span_context`.
    pub fn new(span_context: &SpanContext) -> Self {
        let mut buf = [b'-'; TRACEPARENT_LEN];
        buf[0] = b'0';
        buf[1] = b'0';
        write_hex(&mut buf[3..35], &span_context.trace_id().to_bytes());
        write_hex(&mut buf[36..52], &span_context.span_id().to_bytes());
        write_hex(
            &mut buf[53..55],
            &[span_context.trace_flags().to_u8() & KNOWN_FLAGS],
        );
        Traceparent(buf)
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and '-' are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The value as an HTTP header value.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl std::fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Traceparent {
    /// The trace id as 32 lowercase hex digits (no allocation).
    pub fn trace_id_hex(&self) -> &str {
        &self.as_str()[3..35]
    }

    /// The parent (span) id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> &str {
        &self.as_str()[36..52]
    }
}

/// Lowercase hex digit values; 0xff marks every other byte (upper case is invalid in W3C ids).
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff_u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Up to 16 hex digits, branch-free per digit: invalid digits are collected and checked once.
#[inline]
fn hex_u64(b: &[u8]) -> Option<u64> {
    let mut acc = 0_u64;
    let mut invalid = 0_u8;
    for &c in b {
        let v = HEX_VALUE[usize::from(c)];
        invalid |= v;
        acc = acc << 4 | u64::from(v & 0x0f);
    }
    (invalid & 0xf0 == 0).then_some(acc)
}

#[inline]
fn hex_u8(b: &[u8]) -> Option<u8> {
    hex_u64(b).map(|v| v as u8)
}

#[inline]
fn hex_u128(b: &[u8]) -> Option<u128> {
    let (high, low) = b.split_at(16);
    Some(u128::from(hex_u64(high)?) << 64 | u128::from(hex_u64(low)?))
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}
