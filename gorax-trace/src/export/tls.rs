//! TLS material for the OTLP exporters (feature `tls`): the trust roots (the compiled-in webpki
//! roots, or only the CA(s) of `*_CERTIFICATE`) and the client identity of mutual TLS, read and
//! checked when the exporter is built, so that a missing or malformed file is an
//! [`InitError`](crate::InitError) naming it rather than a failing export later.
//!
//! Why webpki and not the platform's store: the same roots in every container (`scratch` and
//! distroless images have no `/etc/ssl/certs`), no system library, and the same behaviour for
//! gRPC and HTTP; a private CA is given explicitly with `TRACING_CERTIFICATE`.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{BuildError, ExporterError};

/// PEM files as read, each checked to parse.
#[derive(Debug, Clone, Default)]
pub(crate) struct Material {
    /// The trusted CA(s); `None`: the webpki roots.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM).
    pub(crate) identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|e| {
        BuildError::Exporter(ExporterError::caused(
            format!("cannot read the {what} {}", path.display()),
            e,
        ))
    })
}

fn certs(what: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            BuildError::Exporter(ExporterError::caused(
                format!("the {what} {} is not valid PEM", path.display()),
                e,
            ))
        })?;
    if certs.is_empty() {
        return Err(BuildError::Exporter(ExporterError::new(format!(
            "the {what} {} holds no PEM certificate",
            path.display()
        ))));
    }
    Ok(certs)
}

impl Material {
    pub(crate) fn load(
        certificate: Option<&std::path::Path>,
        client_certificate: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Self, BuildError> {
        let mut m = Material::default();
        if let Some(path) = certificate {
            let pem = read("CA certificate file", path)?;
            certs("CA certificate file", path, &pem)?;
            m.ca_pem = Some(pem);
        }
        if let Some((cert, key)) = client_certificate {
            let cert_pem = read("client certificate file", cert)?;
            certs("client certificate file", cert, &cert_pem)?;
            let key_pem = read("client key file", key)?;
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                BuildError::Exporter(ExporterError::caused(
                    format!(
                        "the client key file {} holds no PEM private key",
                        key.display()
                    ),
                    e,
                ))
            })?;
            m.identity_pem = Some((cert_pem, key_pem));
        }
        Ok(m)
    }

    /// The rustls client configuration for OTLP/HTTP: the ring provider chosen here for this
    /// client only (no process-wide default is installed or needed).
    #[cfg(feature = "otlp-http")]
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig, BuildError> {
        let tls_error =
            |e: rustls::Error| BuildError::Exporter(ExporterError::caused("TLS configuration", e));
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                    roots.add(cert).map_err(tls_error)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots);
        match &self.identity_pem {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert).flatten().collect();
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| BuildError::Exporter(ExporterError::caused("client key", e)))?;
                builder.with_client_auth_cert(chain, key).map_err(tls_error)
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// tonic's TLS configuration for OTLP/gRPC (ring, as the `tls` feature selects).
    #[cfg(feature = "otlp-grpc")]
    pub(crate) fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let config = match &self.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        match &self.identity_pem {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}
