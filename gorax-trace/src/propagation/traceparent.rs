//! `traceparent`: parsing without allocation, formatting on the stack.

use http::HeaderValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Flags the W3C specification defines: `sampled` (0x01) and, in Level 2, `random` (0x02).
pub(crate) const KNOWN_FLAGS: u8 = 0x03;
// `Traceparent::new` writes the masked flags as one decimal digit.
const _: () = assert!(KNOWN_FLAGS < 10);
/// Length of a version-00 `traceparent`.
pub(crate) const TRACEPARENT_LEN: usize = 55;

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
    parse_bytes(value.trim_matches([' ', '\t']).as_bytes())
}

/// [`parse_traceparent`] of a value without surrounding whitespace, as bytes.
pub(crate) fn parse_bytes(b: &[u8]) -> Option<SpanContext> {
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
        let trace_id = u128::from_be_bytes(span_context.trace_id().to_bytes());
        buf[3..19].copy_from_slice(&hex16((trace_id >> 64) as u64));
        buf[19..35].copy_from_slice(&hex16(trace_id as u64));
        buf[36..52].copy_from_slice(&hex16(u64::from_be_bytes(
            span_context.span_id().to_bytes(),
        )));
        // Flags are 0 to 3 after masking: one digit after a `0`.
        buf[53] = b'0';
        buf[54] = b'0' + (span_context.trace_flags().to_u8() & KNOWN_FLAGS);
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

/// Eight lowercase hex digits (`b[0]` the most significant) as a number, eight at a time in a
/// `u64` (SWAR): every byte is checked to be `0-9` or `a-f` (upper case is invalid in W3C ids).
#[inline]
fn hex8(b: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_be_bytes(b);
    // For bytes below 0x80 (checked below), `x + (0x80 - c) * ONES` sets a byte's high bit
    // exactly when that byte is >= c, without carries between bytes.
    let ge = |c: u64| x.wrapping_add((0x80 - c) * ONES);
    let digit = ge(0x30) & !ge(0x3a);
    let letter = ge(0x61) & !ge(0x67);
    if (digit | letter) & HIGH != HIGH || x & HIGH != 0 {
        return None;
    }
    // A digit's value is its low nibble; a letter's is its low nibble plus 9.
    let v = (x & 0x0f0f_0f0f_0f0f_0f0f) + ((letter & HIGH) >> 7) * 9;
    // Pack the eight nibbles: pairs into bytes, bytes into 16 bits, then into 32 bits.
    let v = (v | v >> 4) & 0x00ff_00ff_00ff_00ff;
    let v = (v | v >> 8) & 0x0000_ffff_0000_ffff;
    Some((v | v >> 16) as u32)
}

/// Sixteen hex digits.
#[inline]
fn hex_u64(b: &[u8]) -> Option<u64> {
    let (high, low) = b.split_first_chunk::<8>()?;
    let low: [u8; 8] = low.try_into().ok()?;
    Some(u64::from(hex8(*high)?) << 32 | u64::from(hex8(low)?))
}

/// Two hex digits.
#[inline]
fn hex_u8(b: &[u8]) -> Option<u8> {
    const HEX: [u8; 8] = *b"00000000";
    let mut eight = HEX;
    eight[6..].copy_from_slice(b.get(..2)?);
    hex8(eight).map(|v| v as u8)
}

/// Thirty-two hex digits.
#[inline]
fn hex_u128(b: &[u8]) -> Option<u128> {
    let (high, low) = b.split_at(16);
    Some(u128::from(hex_u64(high)?) << 64 | u128::from(hex_u64(low)?))
}

/// The two lowercase hex digits of every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
};

/// The sixteen lowercase hex digits of `v` (most significant first), a byte's two digits per
/// table lookup (half the instructions of spreading the nibbles over a `u128`).
#[inline]
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0; 16];
    for (pair, byte) in out.chunks_exact_mut(2).zip(v.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SWAR decoder agrees with a byte-by-byte one on every byte value in every position.
    #[test]
    fn hex8_matches_a_plain_decoder() {
        fn plain(b: [u8; 8]) -> Option<u32> {
            b.iter().try_fold(0_u32, |acc, &c| {
                let v = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                Some(acc << 4 | u32::from(v))
            })
        }
        let base = *b"0123abcd";
        for pos in 0..8 {
            for c in 0..=255_u8 {
                let mut b = base;
                b[pos] = c;
                assert_eq!(hex8(b), plain(b), "{b:?}");
            }
        }
        for b in [*b"ffffffff", *b"00000000", *b"9a9a9a9a", *b"fedcba98"] {
            assert_eq!(hex8(b), plain(b));
        }
        assert_eq!(hex_u8(b"ff"), Some(0xff));
        assert_eq!(hex_u8(b"0g"), None);
        assert_eq!(hex_u64(b"00f067aa0ba902b7"), Some(0x00f0_67aa_0ba9_02b7));
    }

    #[test]
    fn hex16_matches_format() {
        let mut v = 0x0123_4567_89ab_cdef_u64;
        for _ in 0..1000 {
            assert_eq!(&hex16(v), format!("{v:016x}").as_bytes());
            v = v
                .rotate_left(7)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(1);
        }
        for v in [0, u64::MAX, 1, 0xa, 0xf0, 0x0a0a_0a0a_0a0a_0a0a] {
            assert_eq!(&hex16(v), format!("{v:016x}").as_bytes());
        }
    }
}
