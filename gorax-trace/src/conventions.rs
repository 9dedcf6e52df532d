//! Which version of the OpenTelemetry semantic conventions the family emits, per category, and
//! the one switch that picks it: `OTEL_SEMCONV_STABILITY_OPT_IN` (parsed here, by
//! [`SemconvOptIn::parse`], and nowhere else), or in code
//! [`TraceConfig::with_http_semconv`](crate::config::TraceConfig::with_http_semconv),
//! [`with_rpc_semconv`](crate::config::TraceConfig::with_rpc_semconv) and
//! [`with_messaging_semconv`](crate::config::TraceConfig::with_messaging_semconv).
//!
//! | category | not listed | `x` | `x/dup` |
//! |---|---|---|---|
//! | `http` (server and client layers) | stable HTTP conventions ([v1.45.0]) | the same | stable plus the pre-1.21 keys (no single version) |
//! | `rpc` (gRPC server and client layers) | the pre-1.37 RPC keys on the 1.37+ metric names, as before (no single version) | the stable RPC conventions of [v1.45.0] only | both sets (no single version) |
//! | `messaging` (queue crate; reserved) | the messaging conventions (Development) of semantic-conventions commit `384d66161cb1`, after [v1.44.0] (no single release: no schema URL) | the same: no stable messaging conventions exist yet | the same |
//!
//! The list is comma-separated; blanks around a value and letter case are ignored, and so are
//! the values of other categories (`database`, ...) and unknown ones (the variable is shared
//! with other OpenTelemetry libraries of the process). When both `x` and `x/dup` are listed,
//! `x/dup` wins, as the conventions say.
//!
//! Each mode says which conventions version its keys follow ([`HttpSemconv::schema_url`],
//! [`RpcSemconv::schema_url`], [`MessagingSemconv::schema_url`]): the adapters record under
//! their own instrumentation scope with that schema URL, and with none when the keys they emit
//! match no single released version (the `dup` modes, the old RPC keys).
//!
//! ```
//! use gorax_trace::conventions::{HttpSemconv, RpcSemconv, SemconvOptIn};
//!
//! let opt_in = SemconvOptIn::parse("http, rpc/dup, database, rpc");
//! assert_eq!(opt_in.http, Some(HttpSemconv::Stable));
//! assert_eq!(opt_in.rpc, Some(RpcSemconv::Dup));
//! assert_eq!(opt_in.messaging, None);
//! assert_eq!(SemconvOptIn::parse("").rpc, None); // not listed: the code default applies
//! ```
//!
//! [v1.45.0]: https://github.com/open-telemetry/semantic-conventions/releases/tag/v1.45.0
//! [v1.44.0]: https://github.com/open-telemetry/semantic-conventions/releases/tag/v1.44.0

/// Schema URL of the semantic conventions v1.45.0: stable HTTP and (from this version) stable
/// RPC conventions.
pub const SCHEMA_URL_1_45_0: &str = "https://opentelemetry.io/schemas/1.45.0";
/// Schema URL of the semantic conventions v1.44.0 (the release before the messaging names the
/// queue crate emits, [`semconv::messaging`](crate::semconv::messaging): not claimed by them
/// until v1.44.0's messaging files are found to be the same).
pub const SCHEMA_URL_1_44_0: &str = "https://opentelemetry.io/schemas/1.44.0";

/// Which HTTP semantic conventions spans carry (`OTEL_SEMCONV_STABILITY_OPT_IN` `http`,
/// `http/dup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HttpSemconv {
    /// The stable HTTP conventions only.
    #[default]
    Stable,
    /// The stable conventions plus the legacy pre-1.21 keys (`http/dup`).
    Dup,
}

impl HttpSemconv {
    /// Whether the legacy keys are emitted beside the stable ones.
    pub fn emits_legacy(self) -> bool {
        self == Self::Dup
    }

    /// The schema URL of what this mode emits: v1.45.0 for the stable keys, none for `http/dup`
    /// (two versions at once).
    pub fn schema_url(self) -> Option<&'static str> {
        match self {
            Self::Stable => Some(SCHEMA_URL_1_45_0),
            Self::Dup => None,
        }
    }
}

/// Which RPC semantic conventions the gRPC server and client layers emit
/// (`OTEL_SEMCONV_STABILITY_OPT_IN` `rpc`, `rpc/dup`).
///
/// | | [`Legacy`](Self::Legacy) (default) | [`Stable`](Self::Stable) | [`Dup`](Self::Dup) |
/// |---|---|---|---|
/// | span name | `{package.Service}/{Method}` | `{package.Service}/{Method}`, `grpc` for an unrecognized method | as `Stable` |
/// | system | `rpc.system` | `rpc.system.name` | both |
/// | method | `rpc.service` + `rpc.method` (`Method`) | `rpc.method` (`package.Service/Method` or `_OTHER`) + `rpc.method_original` | `rpc.service` + `rpc.method` as `Stable` (one key, one value) |
/// | status | `rpc.grpc.status_code` (int) | `rpc.status_code` (`"OK"`, `"UNAVAILABLE"`) | both |
/// | `error.type` | the numeric code | the code's name | the code's name |
/// | HTTP keys (`url.*`, `http.*`, `user_agent.*`, `network.protocol.*`, `client.address`) | yes | no | yes |
/// | metrics | `rpc.*.call.duration` with the old keys | with the stable keys | both sets of keys |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RpcSemconv {
    /// The keys the layers emitted before the RPC conventions became stable: the pre-1.37
    /// attributes on the 1.37+ metric names (no single conventions version).
    #[default]
    Legacy,
    /// The stable RPC conventions of v1.45.0 only (`rpc`).
    Stable,
    /// Both (`rpc/dup`).
    Dup,
}

impl RpcSemconv {
    /// Whether the old keys (`rpc.system`, `rpc.service`, `rpc.grpc.status_code`, the HTTP
    /// attributes) are emitted.
    pub fn emits_legacy(self) -> bool {
        matches!(self, Self::Legacy | Self::Dup)
    }

    /// Whether the stable keys (`rpc.system.name`, `rpc.status_code`, fully qualified
    /// `rpc.method`) are emitted.
    pub fn emits_stable(self) -> bool {
        matches!(self, Self::Stable | Self::Dup)
    }

    /// The schema URL of what this mode emits: v1.45.0 for the stable keys only, none
    /// otherwise (the old keys are a mix no single version defines).
    pub fn schema_url(self) -> Option<&'static str> {
        match self {
            Self::Stable => Some(SCHEMA_URL_1_45_0),
            Self::Legacy | Self::Dup => None,
        }
    }
}

/// Which messaging semantic conventions the queue crate emits (`OTEL_SEMCONV_STABILITY_OPT_IN`
/// `messaging`, `messaging/dup`: reserved).
///
/// The messaging conventions are still in Development (v1.45.0 included): there is no stable
/// version to opt into, so every mode emits the names of
/// [`semconv::messaging::EMITTED`](crate::semconv::messaging::EMITTED) today (semantic-conventions
/// commit `384d66161cb1`, after v1.44.0). The values are parsed and
/// kept so that the stable names become a switch when they are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MessagingSemconv {
    /// The messaging conventions (Development) of [`semconv::messaging::EMITTED`](crate::semconv::messaging::EMITTED).
    #[default]
    Development,
    /// `messaging`: reserved for the stable conventions; emits the development names until then.
    Stable,
    /// `messaging/dup`: reserved for both; emits the development names until then.
    Dup,
}

impl MessagingSemconv {
    /// The schema URL of what this mode emits, the version table's
    /// ([`MessagingConventions::schema_url`](crate::semconv::messaging::MessagingConventions::schema_url)):
    /// none today, in every mode (the names are a commit's, after v1.44.0, not a release's).
    pub fn schema_url(self) -> Option<&'static str> {
        crate::semconv::messaging::EMITTED.schema_url
    }
}

/// The value of `OTEL_SEMCONV_STABILITY_OPT_IN`, per category: `None` where the list does not
/// name the category (the code's setting, or the default, applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SemconvOptIn {
    /// `http` or `http/dup`.
    pub http: Option<HttpSemconv>,
    /// `rpc` or `rpc/dup`.
    pub rpc: Option<RpcSemconv>,
    /// `messaging` or `messaging/dup` (reserved).
    pub messaging: Option<MessagingSemconv>,
}

impl SemconvOptIn {
    /// Parses a comma-separated opt-in list (see the [module](self) documentation). Never
    /// fails: values of other categories and unknown values are ignored.
    pub fn parse(list: &str) -> Self {
        let mut found = Self::default();
        for value in list.split(',').map(str::trim) {
            let lower = value.to_ascii_lowercase();
            // `x/dup` wins over `x` in either order.
            match lower.as_str() {
                "http" => {
                    found.http.get_or_insert(HttpSemconv::Stable);
                }
                "http/dup" => found.http = Some(HttpSemconv::Dup),
                "rpc" => {
                    found.rpc.get_or_insert(RpcSemconv::Stable);
                }
                "rpc/dup" => found.rpc = Some(RpcSemconv::Dup),
                "messaging" => {
                    found.messaging.get_or_insert(MessagingSemconv::Stable);
                }
                "messaging/dup" => found.messaging = Some(MessagingSemconv::Dup),
                _ => {}
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per rule of the list.
    #[test]
    fn opt_in_list() {
        type Row = (
            &'static str,
            Option<HttpSemconv>,
            Option<RpcSemconv>,
            Option<MessagingSemconv>,
        );
        let cases: &[Row] = &[
            ("", None, None, None),
            ("http", Some(HttpSemconv::Stable), None, None),
            ("http/dup", Some(HttpSemconv::Dup), None, None),
            ("rpc", None, Some(RpcSemconv::Stable), None),
            ("rpc/dup", None, Some(RpcSemconv::Dup), None),
            // dup wins in either order, and case and blanks do not matter
            ("rpc/dup,rpc", None, Some(RpcSemconv::Dup), None),
            (" RPC , Rpc/Dup ", None, Some(RpcSemconv::Dup), None),
            ("http/dup,http", Some(HttpSemconv::Dup), None, None),
            ("messaging", None, None, Some(MessagingSemconv::Stable)),
            (
                "messaging,messaging/dup",
                None,
                None,
                Some(MessagingSemconv::Dup),
            ),
            // other categories and unknown values are someone else's
            ("database,db/dup,rpcx,http/dupe", None, None, None),
            (
                "http/dup,rpc,messaging/dup",
                Some(HttpSemconv::Dup),
                Some(RpcSemconv::Stable),
                Some(MessagingSemconv::Dup),
            ),
        ];
        for (list, http, rpc, messaging) in cases {
            let got = SemconvOptIn::parse(list);
            assert_eq!(
                (got.http, got.rpc, got.messaging),
                (*http, *rpc, *messaging),
                "{list:?}"
            );
        }
    }

    #[test]
    fn schema_urls_only_for_single_versions() {
        assert_eq!(HttpSemconv::Stable.schema_url(), Some(SCHEMA_URL_1_45_0));
        assert_eq!(HttpSemconv::Dup.schema_url(), None);
        assert_eq!(RpcSemconv::Legacy.schema_url(), None);
        assert_eq!(RpcSemconv::Stable.schema_url(), Some(SCHEMA_URL_1_45_0));
        assert_eq!(RpcSemconv::Dup.schema_url(), None);
        assert!(RpcSemconv::Dup.emits_legacy() && RpcSemconv::Dup.emits_stable());
        assert!(!RpcSemconv::Stable.emits_legacy() && !RpcSemconv::Legacy.emits_stable());
        // Messaging: the names of a commit after v1.44.0, not a release's.
        for mode in [
            MessagingSemconv::Development,
            MessagingSemconv::Stable,
            MessagingSemconv::Dup,
        ] {
            assert_eq!(mode.schema_url(), None);
        }
    }
}
