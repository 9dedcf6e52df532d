//! The trust boundary: which connection peers may steer this service's traces
//! (`TRACING_TRUSTED_PEERS`).
//!
//! A trusted caller's `traceparent` is continued (its trace id, its sampled flag) and its
//! baggage kept; an untrusted caller gets a new root trace sampled by the service's own sampler,
//! with a link to its context and no baggage (only the keys of a
//! [`BaggagePolicy::Allow`](crate::propagation::BaggagePolicy::Allow)). The server layer reads
//! the peer from the connection (axum `ConnectInfo`); a request without peer information is
//! untrusted unless every peer is.

use std::net::IpAddr;
use std::sync::Arc;

pub use ipnet::IpNet;

/// Which connection peers are trusted: [`All`](Self::All) (default: every caller continues its
/// trace), [`None`](Self::None) (a public endpoint) or the peers in some networks (the load
/// balancers, the mesh).
///
/// ```
/// use gorax_trace::trust::TrustedPeers;
///
/// let peers = TrustedPeers::parse("10.0.0.0/8, ::1/128").unwrap();
/// assert!(peers.trusts(Some("10.1.2.3".parse().unwrap())));
/// assert!(peers.trusts(Some("::ffff:10.1.2.3".parse().unwrap())));
/// assert!(!peers.trusts(Some("203.0.113.9".parse().unwrap())));
/// assert!(!peers.trusts(None));
/// assert!(TrustedPeers::All.trusts(None));
/// assert!(!TrustedPeers::parse("none").unwrap().trusts(Some("127.0.0.1".parse().unwrap())));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustedPeers {
    /// Every caller (default).
    #[default]
    All,
    /// No caller: every request starts a new trace.
    None,
    /// Callers whose address is in one of these networks.
    Networks(Arc<[IpNet]>),
}

impl TrustedPeers {
    /// Callers in these networks.
    pub fn networks(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self::Networks(networks.into_iter().collect())
    }

    /// Parses `all`, `none` or a comma list of networks (`10.0.0.0/8`, `::1/128`; a bare
    /// address is its own /32 or /128).
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("all") {
            return Ok(Self::All);
        }
        if value.eq_ignore_ascii_case("none") {
            return Ok(Self::None);
        }
        let mut networks = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "expected `all`, `none` or a comma list of networks \
                         (`10.0.0.0/8`, `::1/128`); {item:?} is not a network"
                    )
                })?;
            networks.push(net);
        }
        if networks.is_empty() {
            return Err("expected `all`, `none` or a comma list of networks".to_owned());
        }
        Ok(Self::Networks(networks.into()))
    }

    /// Whether every caller is trusted (no peer lookup is needed).
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// Whether a caller at `peer` (`None`: unknown) is trusted. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`, what a dual-stack listener reports) are compared as IPv4.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Networks(nets) => peer.is_some_and(|ip| {
                let ip = ip.to_canonical();
                nets.iter().any(|n| n.contains(&ip))
            }),
        }
    }
}

impl std::fmt::Display for TrustedPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::None => f.write_str("none"),
            Self::Networks(nets) => {
                for (i, n) in nets.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{n}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("all", "all"),
            (" ALL ", "all"),
            ("none", "none"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.0/8,::1/128", "10.0.0.0/8,::1/128"),
            ("10.0.0.1", "10.0.0.1/32"),
            ("::1", "::1/128"),
            ("10.0.0.0/8, ,192.168.0.0/16", "10.0.0.0/8,192.168.0.0/16"),
        ];
        for (input, shown) in ok {
            assert_eq!(
                TrustedPeers::parse(input).unwrap().to_string(),
                shown,
                "{input}"
            );
        }
        for bad in [
            "",
            ",",
            "10.0.0.0/33",
            "localhost",
            "all,10.0.0.0/8",
            "10.0.0/8",
        ] {
            assert!(TrustedPeers::parse(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::TrustedPeers;
    use crate::config::TraceConfig;

    #[test]
    fn from_the_environment_and_code() {
        let c = TraceConfig::from_vars([("TRACING_TRUSTED_PEERS", "10.0.0.0/8,::1/128")]).unwrap();
        assert_eq!(c.trusted_peers().to_string(), "10.0.0.0/8,::1/128");
        let c = TraceConfig::from_vars([("TRACING_TRUSTED_PEERS", "none")]).unwrap();
        assert_eq!(c.trusted_peers(), &TrustedPeers::None);
        let c = TraceConfig::from_vars(std::iter::empty::<(&str, &str)>()).unwrap();
        assert_eq!(c.trusted_peers(), &TrustedPeers::All);
        let err = TraceConfig::from_vars([("TRACING_TRUSTED_PEERS", "10.0.0.0/33")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRACING_TRUSTED_PEERS"), "{err}");
        let c = TraceConfig::default().with_trusted_peers(TrustedPeers::None);
        assert_eq!(c.trusted_peers(), &TrustedPeers::None);
    }
}
