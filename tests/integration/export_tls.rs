//! OTLP over TLS against collectors written here, whose CA and certificates are generated in the
//! test (rcgen): gRPC (tonic with rustls) and HTTP/protobuf (hyper with tokio-rustls), with a
//! private CA, with mutual TLS, and with the wrong CA (failure counted, no panic, no hang).
//! Also what reaches the collector when the environment and the configuration disagree
//! (headers, resource): the configuration wins, on the wire.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry::trace::Tracer;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    server_cert: String,
    server_key: String,
    client_cert: PathBuf,
    client_key: PathBuf,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = std::env::temp_dir().join(format!(
            "gorax-tls-{name}-{}-{}",
            std::process::id(),
            gorax_tests::unique("")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("gorax test CA {name}"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |sans: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(sans)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = leaf(vec!["gorax-client".into()]);
        let write = |file: &str, pem: &str| {
            let path = dir.join(file);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Self {
            ca: write("ca.pem", &ca_cert.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            ca_pem: ca_cert.pem(),
            server_cert,
            server_key,
            dir,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a collector received: per request, the headers and the resource attributes; span names.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Request>>>);

#[derive(Clone, Debug)]
struct Request {
    headers: HashMap<String, Vec<String>>,
    resource: HashMap<String, String>,
    spans: Vec<String>,
}

impl Captured {
    fn record(&self, headers: &http::HeaderMap, body: ExportTraceServiceRequest) {
        let mut h: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in headers {
            h.entry(k.as_str().to_owned())
                .or_default()
                .push(v.to_str().unwrap_or("<binary>").to_owned());
        }
        let mut resource = HashMap::new();
        let mut spans = Vec::new();
        for rs in body.resource_spans {
            for kv in rs.resource.map(|r| r.attributes).unwrap_or_default() {
                let value = match kv.value.and_then(|v| v.value) {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => s,
                    other => format!("{other:?}"),
                };
                resource.insert(kv.key, value);
            }
            for ss in rs.scope_spans {
                spans.extend(ss.spans.into_iter().map(|s| s.name));
            }
        }
        self.0.lock().unwrap().push(Request {
            headers: h,
            resource,
            spans,
        });
    }

    fn requests(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl TraceService for Captured {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.record(&headers, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// TLS of a collector: its certificate, and the CA its clients must present (mutual TLS).
struct ServerTls<'a> {
    pki: &'a Pki,
    require_client_cert: bool,
}

/// An OTLP/gRPC collector on 127.0.0.1 (TLS when given) on `rt`.
fn grpc_collector(rt: &tokio::runtime::Runtime, tls: Option<ServerTls<'_>>) -> (Captured, u16) {
    let captured = Captured::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&t.pki.server_cert, &t.pki.server_key));
        if t.require_client_cert {
            config = config.client_ca_root(Certificate::from_pem(&t.pki.ca_pem));
        }
        builder = builder.tls_config(config).unwrap();
    }
    let service = TraceServiceServer::new(captured.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let _ = builder
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (captured, port)
}

/// An OTLP/HTTP collector on 127.0.0.1 (TLS when given, with tokio-rustls) on `rt`.
fn http_collector(rt: &tokio::runtime::Runtime, tls: Option<ServerTls<'_>>) -> (Captured, u16) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let captured = Captured::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls.map(|t| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = CertificateDer::pem_slice_iter(t.pki.server_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(t.pki.server_key.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if t.require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(t.pki.ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        tokio_rustls::TlsAcceptor::from(Arc::new(builder.with_single_cert(certs, key).unwrap()))
    });
    let c = captured.clone();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (c, acceptor) = (c.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let c = c.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await?.to_bytes();
                            if let Ok(decoded) = ExportTraceServiceRequest::decode(bytes) {
                                c.record(&parts.headers, decoded);
                            }
                            Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::new(),
                            )))
                        }
                    });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .await;
                    }
                }
            });
        }
    });
    (captured, port)
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn batch(timeout_ms: u64) -> BatchSettings {
    BatchSettings::default()
        .with_scheduled_delay(Duration::from_millis(50))
        .with_export_timeout(Duration::from_millis(timeout_ms))
}

/// Sends one span through a `Telemetry` built from `config` and shuts down; returns the health
/// snapshot and how long shutdown took.
fn send_one(config: TraceConfig, name: &str) -> (gorax_trace::export::HealthSnapshot, Duration) {
    let telemetry = gorax_trace::Telemetry::new(&config).expect("init");
    telemetry.tracer().in_span(name.to_owned(), |_| {});
    let _ = telemetry.force_flush();
    let health = telemetry.health();
    let started = Instant::now();
    let _ = telemetry.shutdown();
    (health.snapshot(), started.elapsed())
}

fn tls_config(protocol: Protocol, port: u16, ca: &Path) -> TraceConfig {
    let endpoint = match protocol {
        Protocol::Grpc => format!("https://127.0.0.1:{port}"),
        _ => format!("https://127.0.0.1:{port}/v1/traces"),
    };
    TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_certificate(ca)
        .with_batch(batch(5000))
}

fn spans(c: &Captured) -> Vec<String> {
    c.requests().into_iter().flat_map(|r| r.spans).collect()
}

#[test]
fn grpc_over_tls_with_a_private_ca() {
    let pki = Pki::new("grpc");
    let rt = server_runtime();
    let (captured, port) = grpc_collector(
        &rt,
        Some(ServerTls {
            pki: &pki,
            require_client_cert: false,
        }),
    );
    let (health, took) = send_one(tls_config(Protocol::Grpc, port, &pki.ca), "grpc-tls");
    eprintln!("gRPC over TLS: {health:?}, shutdown {took:?}");
    assert_eq!(spans(&captured), ["grpc-tls"]);
    assert_eq!(health.spans_failed, 0);
}

#[test]
fn http_over_tls_with_a_private_ca() {
    let pki = Pki::new("http");
    let rt = server_runtime();
    let (captured, port) = http_collector(
        &rt,
        Some(ServerTls {
            pki: &pki,
            require_client_cert: false,
        }),
    );
    let (health, took) = send_one(
        tls_config(Protocol::HttpProtobuf, port, &pki.ca),
        "http-tls",
    );
    eprintln!("HTTP over TLS: {health:?}, shutdown {took:?}");
    assert_eq!(spans(&captured), ["http-tls"]);
    assert_eq!(health.spans_failed, 0);
}

#[test]
fn mutual_tls_for_both_protocols() {
    let pki = Pki::new("mtls");
    let rt = server_runtime();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let tls = || {
            Some(ServerTls {
                pki: &pki,
                require_client_cert: true,
            })
        };
        let (captured, port) = match protocol {
            Protocol::Grpc => grpc_collector(&rt, tls()),
            _ => http_collector(&rt, tls()),
        };
        let config = tls_config(protocol, port, &pki.ca)
            .with_client_certificate(&pki.client_cert, &pki.client_key);
        let (health, _) = send_one(config, "mtls");
        assert_eq!(spans(&captured), ["mtls"], "{protocol}: {health:?}");
        // Without the client certificate the collector refuses the handshake: counted.
        let config = tls_config(protocol, port, &pki.ca).with_batch(batch(1000));
        let (health, took) = send_one(config, "no-client-cert");
        eprintln!("{protocol} mTLS without a client certificate: {health:?}, shutdown {took:?}");
        assert_eq!(spans(&captured), ["mtls"], "{protocol}");
        assert!(health.spans_failed >= 1, "{protocol}: {health:?}");
    }
}

/// The wrong CA: the handshake fails, the failure is counted, nothing panics, shutdown returns.
#[test]
fn wrong_ca_is_a_counted_failure() {
    let pki = Pki::new("server");
    let other = Pki::new("other");
    let rt = server_runtime();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let tls = Some(ServerTls {
            pki: &pki,
            require_client_cert: false,
        });
        let (captured, port) = match protocol {
            Protocol::Grpc => grpc_collector(&rt, tls),
            _ => http_collector(&rt, tls),
        };
        let config = tls_config(protocol, port, &other.ca).with_batch(batch(1000));
        let (health, took) = send_one(config, "wrong-ca");
        eprintln!("{protocol} with the wrong CA: {health:?}, shutdown {took:?}");
        assert!(spans(&captured).is_empty());
        assert!(health.spans_failed >= 1, "{protocol}: {health:?}");
        assert_eq!(health.spans_exported, 0);
    }
}

/// A CA file that does not exist, or holds no certificate, is an `InitError` naming it.
#[test]
fn bad_certificate_files_are_init_errors() {
    let pki = Pki::new("files");
    let junk = pki.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for ca in [pki.dir.join("missing.pem"), junk] {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let err = gorax_trace::Telemetry::new(&tls_config(protocol, 443, &ca)).unwrap_err();
            assert!(
                err.to_string().contains(&*ca.to_string_lossy()),
                "{protocol}: {err}"
            );
        }
    }
}

/// The environment says one thing, the configuration another: what the collector receives is
/// the configuration (headers and resource), over both protocols. opentelemetry-otlp reads
/// `OTEL_EXPORTER_OTLP_HEADERS` and the SDK's default resource reads `OTEL_RESOURCE_ATTRIBUTES`
/// and `OTEL_SERVICE_NAME` by themselves, so this runs in a child process with that environment.
#[test]
fn the_configuration_wins_on_the_wire() {
    const CHILD: &str = "GORAX_TEST_WIRE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return wire_child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "export_tls::the_configuration_wins_on_the_wire",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=from-otel-env,x-extra=from-otel-env",
        )
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-api-key=from-otel-env",
        )
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=otel-env,team=otel-env",
        )
        .env("OTEL_SERVICE_NAME", "otel-env")
        .env("OTEL_EXPORTER_OTLP_INSECURE", "false")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        .env("TRACING_HEADERS", "x-api-key=from-tracing")
        .env("TRACING_SERVICE_NAME", "from-tracing")
        .env("TRACING_RESOURCE_ATTRIBUTES", "team=from-tracing")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("1 passed"), "{log}");
}

fn wire_child() {
    let rt = server_runtime();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let (captured, port) = match protocol {
            Protocol::Grpc => grpc_collector(&rt, None),
            _ => http_collector(&rt, None),
        };
        let endpoint = match protocol {
            Protocol::Grpc => format!("http://127.0.0.1:{port}"),
            _ => format!("http://127.0.0.1:{port}/v1/traces"),
        };
        let config = TraceConfig::from_env()
            .unwrap()
            .with_endpoint(endpoint)
            .with_protocol(protocol)
            .with_header("x-code", "from-code")
            .with_batch(batch(5000));
        let (health, _) = send_one(config, "wire");
        let requests = captured.requests();
        assert_eq!(requests.len(), 1, "{protocol}: {health:?}");
        let r = &requests[0];
        assert_eq!(
            r.headers.get("x-api-key"),
            Some(&vec!["from-tracing".to_owned()]),
            "{protocol}: {r:?}"
        );
        assert_eq!(
            r.headers.get("x-code"),
            Some(&vec!["from-code".to_owned()]),
            "{protocol}"
        );
        assert_eq!(r.headers.get("x-extra"), None, "{protocol}: {r:?}");
        assert_eq!(
            r.resource.get("service.name").map(String::as_str),
            Some("from-tracing"),
            "{protocol}: {r:?}"
        );
        assert_eq!(
            r.resource.get("team").map(String::as_str),
            Some("from-tracing"),
            "{protocol}"
        );
        assert!(
            r.resource.contains_key("telemetry.sdk.name"),
            "{protocol}: {r:?}"
        );
    }
}
