//! Tests of the configuration: defaults, every variable, precedence, errors.

use super::*;
use crate::export::BatchSettings;
use crate::httpconv::HttpSemconv;
use crate::propagation::Propagators;
use crate::sampling::Sampler;
use std::ffi::OsString;
use std::time::Duration;

/// Variables as `NAME=value` (split at the first `=`).
type Env = &'static [&'static str];

fn vars(env: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    env.iter()
        .map(|v| v.split_once('=').expect("NAME=value"))
        .collect()
}

fn config(env: &[&'static str]) -> TraceConfig {
    TraceConfig::from_vars(vars(env)).unwrap_or_else(|e| panic!("{env:?}: {e}"))
}

fn error(env: &[&'static str]) -> ConfigError {
    match TraceConfig::from_vars(vars(env)) {
        Ok(c) => panic!("{env:?} should be rejected, got {c:?}"),
        Err(e) => e,
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults() {
    let c = TraceConfig::new();
    assert!(c.enabled());
    assert_eq!(c.exporter(), ExporterKind::Console);
    assert_eq!(c.otlp_endpoint(), None);
    assert_eq!(c.protocol(), Protocol::Grpc);
    assert!(!c.uses_tls());
    assert!(
        c.service_name().starts_with("unknown_service:"),
        "{}",
        c.service_name()
    );
    assert_eq!(c.sampler(), Sampler::ParentBasedAlwaysOn);
    assert_eq!(c.propagators(), Propagators::W3C);
    assert_eq!(c.http_semconv(), HttpSemconv::Stable);
    let b = c.batch();
    assert_eq!((b.max_queue_size, b.max_export_batch_size), (2048, 512));
    assert_eq!(
        (b.scheduled_delay, b.export_timeout),
        (Duration::from_secs(5), Duration::from_secs(10))
    );
    assert!(c.warnings().is_empty());
    assert_eq!(format!("{c:?}"), format!("{:?}", config(&[])));
}

/// Good values: variables, getter, expected rendering (and no warning).
#[test]
fn good_values() {
    type Get = fn(&TraceConfig) -> String;
    let enabled: Get = |c| c.enabled().to_string();
    let exporter: Get = |c| c.exporter().to_string();
    let protocol: Get = |c| c.protocol().to_string();
    let headers: Get = |c| format!("{:?}", c.headers());
    let tls: Get = |c| c.uses_tls().to_string();
    let name: Get = |c| c.service_name().to_owned();
    let version: Get = |c| format!("{:?}", c.service_version());
    let env: Get = |c| format!("{:?}", c.environment());
    let attrs: Get = |c| format!("{:?}", c.resource_attributes());
    let sampler: Get = |c| c.sampler().to_string();
    let props: Get = |c| format!("{:?}", c.propagators());
    let semconv: Get = |c| format!("{:?}", c.http_semconv());
    let rpc: Get = |c| format!("{:?}", c.rpc_semconv());
    let messaging: Get = |c| format!("{:?}", c.messaging_semconv());
    let batch: Get = |c| format!("{:?}", c.batch());
    let cases: &[(Env, Get, &str)] = &[
        (&["TRACING_ENABLED=false"], enabled, "false"),
        (&["TRACING_ENABLED=No"], enabled, "false"),
        (&["TRACING_ENABLED=0"], enabled, "false"),
        (&["TRACING_ENABLED=YES"], enabled, "true"),
        (&["TRACING_ENABLED=1"], enabled, "true"),
        (&["TRACING_ENABLED= TRUE "], enabled, "true"),
        (&["OTEL_SDK_DISABLED=true"], enabled, "false"),
        (&["OTEL_SDK_DISABLED=FALSE"], enabled, "true"),
        (&["TRACING_EXPORTER=none"], exporter, "none"),
        (
            &["TRACING_EXPORTER=Console", "TRACING_ENDPOINT=c:4317"],
            exporter,
            "console",
        ),
        (&["OTEL_TRACES_EXPORTER=otlp"], exporter, "otlp"),
        (&["OTEL_TRACES_EXPORTER=console"], exporter, "console"),
        (&["TRACING_ENDPOINT=localhost:4317"], exporter, "otlp"),
        (
            &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317"],
            exporter,
            "otlp",
        ),
        (&["TRACING_PROTOCOL=http"], protocol, "http/protobuf"),
        (
            &["TRACING_PROTOCOL=HTTP/protobuf"],
            protocol,
            "http/protobuf",
        ),
        (
            &["TRACING_PROTOCOL=grpc", "TRACING_ENDPOINT=c:4318"],
            protocol,
            "grpc",
        ),
        (
            &["OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"],
            protocol,
            "http/protobuf",
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            ],
            protocol,
            "grpc",
        ),
        (
            &["TRACING_HEADERS=k=a%20b, x = y,"],
            headers,
            r#"[("k", "a%20b"), ("x", "y")]"#,
        ),
        (
            &["OTEL_EXPORTER_OTLP_HEADERS=k=a%20b,auth=Basic dQ=="],
            headers,
            r#"[("k", "a b"), ("auth", "Basic dQ==")]"#,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS=a=1",
                "OTEL_EXPORTER_OTLP_HEADERS=b=2",
            ],
            headers,
            r#"[("a", "1")]"#,
        ),
        (
            &["TRACING_INSECURE=yes", "TRACING_ENDPOINT=c:443"],
            tls,
            "false",
        ),
        (
            &["OTEL_EXPORTER_OTLP_INSECURE=true", "TRACING_ENDPOINT=c:443"],
            tls,
            "false",
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_INSECURE=false",
                "TRACING_ENDPOINT=https://c",
            ],
            tls,
            "true",
        ),
        (&["TRACING_SERVICE_NAME=billing"], name, "billing"),
        (&["OTEL_SERVICE_NAME=billing"], name, "billing"),
        (
            &["OTEL_RESOURCE_ATTRIBUTES=service.name=billing"],
            name,
            "billing",
        ),
        (
            &[
                "OTEL_SERVICE_NAME=a",
                "OTEL_RESOURCE_ATTRIBUTES=service.name=b",
            ],
            name,
            "a",
        ),
        (
            &["TRACING_SERVICE_VERSION=1.2.3"],
            version,
            r#"Some("1.2.3")"#,
        ),
        (
            &["OTEL_RESOURCE_ATTRIBUTES=service.version=1.2.3"],
            version,
            r#"Some("1.2.3")"#,
        ),
        (&["TRACING_ENVIRONMENT=prod"], env, r#"Some("prod")"#),
        (
            &["OTEL_RESOURCE_ATTRIBUTES=deployment.environment=staging"],
            env,
            r#"Some("staging")"#,
        ),
        (
            &[
                "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=old,deployment.environment.name=new",
            ],
            env,
            r#"Some("new")"#,
        ),
        (
            &["OTEL_RESOURCE_ATTRIBUTES=h=a%2Cb,service.name=x,k=1,k=2"],
            attrs,
            r#"[("h", "a,b"), ("k", "2")]"#,
        ),
        (
            &["TRACING_RESOURCE_ATTRIBUTES=team=core"],
            attrs,
            r#"[("team", "core")]"#,
        ),
        (
            &["TRACING_SAMPLE_RATE=0.25"],
            sampler,
            "parentbased_traceidratio(0.25)",
        ),
        (
            &["TRACING_SAMPLE_RATE=0"],
            sampler,
            "parentbased_traceidratio(0)",
        ),
        (
            &["TRACING_SAMPLE_RATE=1"],
            sampler,
            "parentbased_traceidratio(1)",
        ),
        (&["OTEL_TRACES_SAMPLER=always_on"], sampler, "always_on"),
        (&["OTEL_TRACES_SAMPLER=ALWAYS_OFF"], sampler, "always_off"),
        (
            &[
                "OTEL_TRACES_SAMPLER=traceidratio",
                "OTEL_TRACES_SAMPLER_ARG=0.5",
            ],
            sampler,
            "traceidratio(0.5)",
        ),
        (
            &["OTEL_TRACES_SAMPLER=traceidratio"],
            sampler,
            "traceidratio(1)",
        ),
        (
            &["OTEL_TRACES_SAMPLER=parentbased_always_on"],
            sampler,
            "parentbased_always_on",
        ),
        (
            &["OTEL_TRACES_SAMPLER=parentbased_always_off"],
            sampler,
            "parentbased_always_off",
        ),
        (
            &[
                "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG=0.1",
            ],
            sampler,
            "parentbased_traceidratio(0.1)",
        ),
        (
            &["OTEL_PROPAGATORS=none"],
            props,
            "Propagators { trace_context: false, baggage: false }",
        ),
        (
            &["OTEL_PROPAGATORS=tracecontext"],
            props,
            "Propagators { trace_context: true, baggage: false }",
        ),
        (
            &["OTEL_PROPAGATORS=baggage, TraceContext"],
            props,
            "Propagators { trace_context: true, baggage: true }",
        ),
        (
            &["TRACING_PROPAGATORS=baggage"],
            props,
            "Propagators { trace_context: false, baggage: true }",
        ),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=http/dup"], semconv, "Dup"),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=database, http/dup"],
            semconv,
            "Dup",
        ),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=http"], semconv, "Stable"),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=http"], rpc, "Legacy"),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=rpc"], rpc, "Stable"),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=rpc"], semconv, "Stable"),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup"], rpc, "Dup"),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=rpc,rpc/dup"], rpc, "Dup"),
        (&["OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup , rpc"], rpc, "Dup"),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=http/dup,rpc"],
            semconv,
            "Dup",
        ),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=http/dup,rpc"],
            rpc,
            "Stable",
        ),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=messaging"],
            messaging,
            "Stable",
        ),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup"],
            messaging,
            "Dup",
        ),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=rpc"],
            messaging,
            "Development",
        ),
        (
            &["OTEL_SEMCONV_STABILITY_OPT_IN=database"],
            semconv,
            "Stable",
        ),
        (
            &[
                "TRACING_BATCH_QUEUE_SIZE=100",
                "TRACING_BATCH_DELAY_MS=0",
                "TRACING_BATCH_SIZE=100",
                "TRACING_EXPORT_TIMEOUT_MS=2500",
            ],
            batch,
            "BatchSettings { max_queue_size: 100, scheduled_delay: 0ns, max_export_batch_size: 100, export_timeout: 2.5s, max_queue_bytes: 16777216 }",
        ),
        (
            &[
                "OTEL_BSP_MAX_QUEUE_SIZE=4096",
                "OTEL_BSP_SCHEDULE_DELAY=1000",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1024",
                "OTEL_BSP_EXPORT_TIMEOUT=30000",
            ],
            batch,
            "BatchSettings { max_queue_size: 4096, scheduled_delay: 1s, max_export_batch_size: 1024, export_timeout: 30s, max_queue_bytes: 16777216 }",
        ),
    ];
    for (env, get, want) in cases {
        let c = config(env);
        assert_eq!(get(&c), *want, "{env:?}");
        assert!(c.warnings().is_empty(), "{env:?}: {:?}", c.warnings());
    }
}

/// Each rejected alone: variables, then the variable and (shown) value in the error.
#[test]
fn bad_values() {
    let cases: &[(Env, &str, &str)] = &[
        (&["TRACING_SAMPLE_RATE=10%"], "TRACING_SAMPLE_RATE", "10%"),
        (&["TRACING_SAMPLE_RATE=1.5"], "TRACING_SAMPLE_RATE", "1.5"),
        (&["TRACING_SAMPLE_RATE=-0.1"], "TRACING_SAMPLE_RATE", "-0.1"),
        (&["TRACING_SAMPLE_RATE=NaN"], "TRACING_SAMPLE_RATE", "NaN"),
        (&["TRACING_SAMPLE_RATE=inf"], "TRACING_SAMPLE_RATE", "inf"),
        (&["TRACING_SAMPLE_RATE=abc"], "TRACING_SAMPLE_RATE", "abc"),
        (&["TRACING_ENABLED=maybe"], "TRACING_ENABLED", "maybe"),
        (&["OTEL_SDK_DISABLED=1"], "OTEL_SDK_DISABLED", "1"),
        (&["TRACING_INSECURE=sure"], "TRACING_INSECURE", "sure"),
        (
            &["OTEL_EXPORTER_OTLP_INSECURE=yes"],
            "OTEL_EXPORTER_OTLP_INSECURE",
            "yes",
        ),
        (
            &["TRACING_ENDPOINT=localhost"],
            "TRACING_ENDPOINT",
            "localhost",
        ),
        (&["TRACING_ENDPOINT=:4317"], "TRACING_ENDPOINT", ":4317"),
        (&["TRACING_ENDPOINT=http://"], "TRACING_ENDPOINT", "http://"),
        (
            &["TRACING_ENDPOINT=http://:4317"],
            "TRACING_ENDPOINT",
            "http://:4317",
        ),
        (
            &["TRACING_ENDPOINT=ftp://x:1"],
            "TRACING_ENDPOINT",
            "ftp://x:1",
        ),
        (
            &["TRACING_ENDPOINT=host:99999"],
            "TRACING_ENDPOINT",
            "host:99999",
        ),
        (&["TRACING_ENDPOINT=host:0"], "TRACING_ENDPOINT", "host:0"),
        (
            &["TRACING_ENDPOINT=host:+80"],
            "TRACING_ENDPOINT",
            "host:+80",
        ),
        (&["TRACING_ENDPOINT=host:"], "TRACING_ENDPOINT", "host:"),
        (
            &["TRACING_ENDPOINT=host name:4317"],
            "TRACING_ENDPOINT",
            "host name:4317",
        ),
        (
            &["TRACING_ENDPOINT=c:4318/v1/traces"],
            "TRACING_ENDPOINT",
            "c:4318/v1/traces",
        ),
        (
            &["TRACING_ENDPOINT=::1:4317"],
            "TRACING_ENDPOINT",
            "::1:4317",
        ),
        (
            &["TRACING_ENDPOINT=[::1:4317"],
            "TRACING_ENDPOINT",
            "[::1:4317",
        ),
        (
            &["OTEL_EXPORTER_OTLP_ENDPOINT=c:4317"],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "c:4317",
        ),
        (
            &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=grpc://c"],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "grpc://c",
        ),
        (&["TRACING_HEADERS=a"], "TRACING_HEADERS", "a"),
        (&["TRACING_HEADERS==b"], "TRACING_HEADERS", "=***"),
        (
            &["OTEL_EXPORTER_OTLP_HEADERS=k=%zz"],
            "OTEL_EXPORTER_OTLP_HEADERS",
            "k=***",
        ),
        (
            &["OTEL_EXPORTER_OTLP_TRACES_HEADERS=k=%ff"],
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "k=***",
        ),
        (
            &["TRACING_RESOURCE_ATTRIBUTES=team"],
            "TRACING_RESOURCE_ATTRIBUTES",
            "team",
        ),
        (
            &["OTEL_RESOURCE_ATTRIBUTES==x"],
            "OTEL_RESOURCE_ATTRIBUTES",
            "=x",
        ),
        (&["TRACING_EXPORTER=jaeger"], "TRACING_EXPORTER", "jaeger"),
        (
            &["OTEL_TRACES_EXPORTER=zipkin"],
            "OTEL_TRACES_EXPORTER",
            "zipkin",
        ),
        (
            &["OTEL_TRACES_EXPORTER=otlp,none"],
            "OTEL_TRACES_EXPORTER",
            "otlp,none",
        ),
        (
            &["TRACING_EXPORTER=otlp,,viewer"],
            "TRACING_EXPORTER",
            "otlp,,viewer",
        ),
        (
            &["TRACING_EXPORTER=viewer,jaeger"],
            "TRACING_EXPORTER",
            "viewer,jaeger",
        ),
        (
            &["TRACING_VIEWER_ADDR=localhost:16786"],
            "TRACING_VIEWER_ADDR",
            "localhost:16786",
        ),
        (
            &["TRACING_VIEWER_MAX_TRACES=0"],
            "TRACING_VIEWER_MAX_TRACES",
            "0",
        ),
        (
            &["TRACING_VIEWER_MAX_BYTES=1024"],
            "TRACING_VIEWER_MAX_BYTES",
            "1024",
        ),
        (&["TRACING_PROTOCOL=udp"], "TRACING_PROTOCOL", "udp"),
        (
            &["OTEL_EXPORTER_OTLP_PROTOCOL=http/json"],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
        ),
        (
            &["OTEL_TRACES_SAMPLER=jaeger_remote"],
            "OTEL_TRACES_SAMPLER",
            "jaeger_remote",
        ),
        (
            &[
                "OTEL_TRACES_SAMPLER=traceidratio",
                "OTEL_TRACES_SAMPLER_ARG=2",
            ],
            "OTEL_TRACES_SAMPLER_ARG",
            "2",
        ),
        (&["OTEL_PROPAGATORS=ottrace"], "OTEL_PROPAGATORS", "ottrace"),
        (
            &["OTEL_PROPAGATORS=tracecontext,ottrace"],
            "OTEL_PROPAGATORS",
            "tracecontext,ottrace",
        ),
        (&["OTEL_PROPAGATORS=foo"], "OTEL_PROPAGATORS", "foo"),
        (
            &["TRACING_PROPAGATORS=none,baggage"],
            "TRACING_PROPAGATORS",
            "none,baggage",
        ),
        (&["OTEL_PROPAGATORS=,"], "OTEL_PROPAGATORS", ","),
        (
            &["OTEL_BSP_MAX_QUEUE_SIZE=0"],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "0",
        ),
        (&["TRACING_BATCH_SIZE=0"], "TRACING_BATCH_SIZE", "0"),
        (
            &["TRACING_BATCH_QUEUE_SIZE=-1"],
            "TRACING_BATCH_QUEUE_SIZE",
            "-1",
        ),
        (
            &["TRACING_BATCH_DELAY_MS=5s"],
            "TRACING_BATCH_DELAY_MS",
            "5s",
        ),
        (
            &["OTEL_BSP_EXPORT_TIMEOUT=-1"],
            "OTEL_BSP_EXPORT_TIMEOUT",
            "-1",
        ),
        (&["TRACING_BATCH_SIZE=4096"], "TRACING_BATCH_SIZE", "4096"),
        (
            &["OTEL_BSP_MAX_QUEUE_SIZE=100"],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "100",
        ),
    ];
    for (env, variable, value) in cases {
        let e = error(env);
        assert_eq!(e.errors().len(), 1, "{env:?}: {e}");
        let bad = &e.errors()[0];
        assert_eq!(
            (bad.variable.as_str(), bad.value.as_str()),
            (*variable, *value),
            "{env:?}"
        );
        assert!(!bad.reason.is_empty());
        assert!(
            e.to_string().contains(&format!("{variable}={value:?}: ")),
            "{e}"
        );
    }
}

/// A `main` returning `Result<_, Box<dyn Error>>` prints the error's `Debug` form: it is the
/// message, for the config error and the errors that wrap it.
#[test]
fn config_errors_debug_as_their_message() {
    let e = error(&["TRACING_SAMPLE_RATE=10%"]);
    let text = e.to_string();
    assert!(text.starts_with("invalid tracing configuration: TRACING_SAMPLE_RATE=\"10%\": "));
    assert_eq!(format!("{e:?}"), text);
    assert!(format!("{e:#?}").starts_with("ConfigError {"), "{e:#?}");
    let boxed: Box<dyn std::error::Error> = Box::new(error(&["TRACING_SAMPLE_RATE=10%"]));
    assert_eq!(format!("{boxed:?}"), text);
    let init = crate::InitError::from(error(&["TRACING_SAMPLE_RATE=10%"]));
    assert_eq!(format!("{init:?}"), text);
    #[cfg(feature = "fmt")]
    {
        let install = crate::subscriber::InstallError::from(error(&["TRACING_SAMPLE_RATE=10%"]));
        assert_eq!(format!("{install:?}"), text);
    }
}

#[test]
fn all_bad_variables_are_reported_together() {
    let e = error(&[
        "TRACING_ENABLED=maybe",
        "TRACING_SAMPLE_RATE=10%",
        "TRACING_ENDPOINT=localhost",
        "OTEL_PROPAGATORS=ottrace",
        "OTEL_EXPORTER_OTLP_ENDPOINT=ftp://x:1",
    ]);
    assert_eq!(e.errors().len(), 5, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("invalid tracing configuration: "),
        "{text}"
    );
    for bad in e.errors() {
        assert!(
            text.contains(&format!("{}={:?}", bad.variable, bad.value)),
            "{bad} missing from {text}"
        );
    }
    let mut names: Vec<&str> = e.errors().iter().map(|b| b.variable.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_PROPAGATORS",
            "TRACING_ENABLED",
            "TRACING_ENDPOINT",
            "TRACING_SAMPLE_RATE"
        ]
    );
    let two = error(&["TRACING_ENABLED=maybe", "TRACING_SAMPLE_RATE=10%"]);
    assert_eq!(
        two.to_string(),
        "invalid tracing configuration: TRACING_SAMPLE_RATE=\"10%\": expected a number between 0.0 and 1.0; \
             TRACING_ENABLED=\"maybe\": expected true or false"
    );
}

#[test]
fn shadowed_bad_values_are_still_errors() {
    let e = error(&[
        "TRACING_SAMPLE_RATE=0.5",
        "OTEL_TRACES_SAMPLER=jaeger_remote",
    ]);
    assert_eq!(e.errors()[0].variable, "OTEL_TRACES_SAMPLER");
    let e = error(&[
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
    ]);
    assert_eq!(e.errors()[0].variable, "OTEL_EXPORTER_OTLP_PROTOCOL");
}

#[test]
fn header_secrets_are_not_echoed() {
    let text = error(&["OTEL_EXPORTER_OTLP_HEADERS=x-api-key=secret123,broken"]).to_string();
    assert!(!text.contains("secret123"), "{text}");
    assert!(
        text.contains("x-api-key=***") && text.contains("broken"),
        "{text}"
    );
    let c = config(&[
        "TRACING_HEADERS=x-api-key=secret1",
        "OTEL_EXPORTER_OTLP_HEADERS=x-api-key=secret2",
    ]);
    assert_eq!(c.headers(), pairs(&[("x-api-key", "secret1")]));
    assert_eq!(c.warnings().len(), 1);
    let shown = format!("{:?} {c:?}", c.warnings());
    assert!(
        !shown.contains("secret1") && !shown.contains("secret2"),
        "{shown}"
    );
}

#[test]
fn batch_size_above_queue_names_both_variables() {
    let e = error(&["TRACING_BATCH_SIZE=4096", "OTEL_BSP_MAX_QUEUE_SIZE=1000"]);
    let (variable, reason) = (&e.errors()[0].variable, &e.errors()[0].reason);
    assert_eq!(variable, "TRACING_BATCH_SIZE");
    assert!(reason.contains("4096 (TRACING_BATCH_SIZE)"), "{reason}");
    assert!(
        reason.contains("1000 (OTEL_BSP_MAX_QUEUE_SIZE)"),
        "{reason}"
    );
    let e = error(&["OTEL_BSP_MAX_QUEUE_SIZE=100"]);
    let reason = &e.errors()[0].reason;
    assert!(
        reason.contains("TRACING_BATCH_SIZE") && reason.contains("100 (OTEL_BSP_MAX_QUEUE_SIZE)"),
        "{reason}"
    );
}

/// The user guide's endpoints and the OTLP URL rules: variables, URL, protocol, TLS.
#[test]
fn endpoints() {
    use Protocol::{Grpc, HttpProtobuf as Http};
    let cases: &[(Env, &str, Protocol, bool)] = &[
        (
            &["TRACING_ENDPOINT=localhost:4317"],
            "http://localhost:4317",
            Grpc,
            false,
        ),
        (
            &["TRACING_ENDPOINT=tempo.example.com:443"],
            "https://tempo.example.com:443",
            Grpc,
            true,
        ),
        (
            &["TRACING_ENDPOINT=api.honeycomb.io:443"],
            "https://api.honeycomb.io:443",
            Grpc,
            true,
        ),
        (
            &[
                "TRACING_ENDPOINT=api.honeycomb.io:443",
                "TRACING_INSECURE=true",
            ],
            "http://api.honeycomb.io:443",
            Grpc,
            false,
        ),
        (
            &["TRACING_ENDPOINT=localhost:4318"],
            "http://localhost:4318/v1/traces",
            Http,
            false,
        ),
        (
            &["TRACING_ENDPOINT=c:4317", "TRACING_PROTOCOL=http"],
            "http://c:4317/v1/traces",
            Http,
            false,
        ),
        (
            &["TRACING_ENDPOINT=[::1]:4317"],
            "http://[::1]:4317",
            Grpc,
            false,
        ),
        (
            &["TRACING_ENDPOINT=https://collector.example.com"],
            "https://collector.example.com",
            Grpc,
            true,
        ),
        (
            &["TRACING_ENDPOINT=http://c:4318"],
            "http://c:4318/v1/traces",
            Http,
            false,
        ),
        (
            &["TRACING_ENDPOINT=http://c:4318/"],
            "http://c:4318/v1/traces",
            Http,
            false,
        ),
        (
            &["TRACING_ENDPOINT=http://c:4318/v1/traces"],
            "http://c:4318/v1/traces",
            Http,
            false,
        ),
        (
            &[
                "TRACING_ENDPOINT=https://c/otlp/traces",
                "TRACING_PROTOCOL=http",
            ],
            "https://c/otlp/traces",
            Http,
            true,
        ),
        (
            &["TRACING_ENDPOINT=http://c:4317/prefix"],
            "http://c:4317/prefix",
            Grpc,
            false,
        ),
        (
            &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"],
            "http://c:4318/v1/traces",
            Http,
            false,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318/",
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            ],
            "http://c:4318/v1/traces",
            Http,
            false,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_ENDPOINT=https://c/base/",
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            ],
            "https://c/base/v1/traces",
            Http,
            true,
        ),
        // The specification's default protocol for the OTEL_* endpoints is http/protobuf.
        (
            &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317"],
            "http://c:4317/v1/traces",
            Http,
            false,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
            ],
            "http://c:4317",
            Grpc,
            false,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://c:4318/custom",
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            ],
            "http://c:4318/custom",
            Http,
            false,
        ),
        (
            &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://c:4318/v1/traces"],
            "http://c:4318/v1/traces",
            Http,
            false,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://t:4317",
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://b:4317",
            ],
            "http://t:4317",
            Http,
            false,
        ),
    ];
    for (env, url, protocol, tls) in cases {
        let c = config(env);
        assert_eq!(c.otlp_endpoint().as_deref(), Some(*url), "{env:?}");
        assert_eq!(c.protocol(), *protocol, "{env:?}");
        assert_eq!(c.uses_tls(), *tls, "{env:?}");
        assert_eq!(c.exporter(), ExporterKind::Otlp, "{env:?}");
        assert!(c.warnings().is_empty(), "{env:?}: {:?}", c.warnings());
    }
}

#[test]
fn builders_recompute_the_endpoint() {
    let c =
        config(&["TRACING_ENDPOINT=tempo.example.com:443"]).with_protocol(Protocol::HttpProtobuf);
    assert_eq!(
        c.otlp_endpoint().as_deref(),
        Some("https://tempo.example.com:443/v1/traces")
    );
    let c = c.with_insecure(true);
    assert_eq!(
        c.otlp_endpoint().as_deref(),
        Some("http://tempo.example.com:443/v1/traces")
    );
    assert!(!c.uses_tls());
    let c = TraceConfig::new().with_endpoint("localhost:4318");
    assert_eq!(c.exporter(), ExporterKind::Otlp);
    assert_eq!(
        c.otlp_endpoint().as_deref(),
        Some("http://localhost:4318/v1/traces")
    );
    assert_eq!(
        c.with_exporter(ExporterKind::None).exporter(),
        ExporterKind::None
    );
}

#[test]
fn builders_validate() {
    for bad in [
        "localhost",
        ":4317",
        "http://",
        "ftp://x:1",
        "host:99999",
        "host name:4317",
        "",
        // Issue 20: a port past 65535 behind a scheme, a bracketed non-address, a bad name.
        "http://127.0.0.1:99999/v1/traces",
        "http://[zz]:1",
        "bad_host_name!:4317",
        "http://-bad-:4318",
    ] {
        let e = TraceConfig::new()
            .with_endpoint(bad)
            .validate()
            .unwrap_err();
        assert_eq!(
            (
                e.errors()[0].variable.as_str(),
                e.errors()[0].value.as_str()
            ),
            ("with_endpoint", bad)
        );
    }
    for bad in [1.5, -0.1, f64::NAN, f64::INFINITY] {
        let e = TraceConfig::new()
            .with_sample_rate(bad)
            .validate()
            .unwrap_err();
        assert_eq!(e.errors()[0].variable, "with_sample_rate");
    }
    let c = TraceConfig::new().with_sample_rate(0.0);
    assert_eq!(c.sampler(), Sampler::ParentBasedTraceIdRatio(0.0));
}

/// Per family: the TRACING_ and OTEL_ variables, getter, code override, and the expected
/// value with defaults only, OTEL only, TRACING only (and with both), and code over both.
#[test]
fn precedence_code_tracing_otel_default() {
    struct Family {
        tracing: &'static str,
        otel: &'static str,
        get: fn(&TraceConfig) -> String,
        code: fn(TraceConfig) -> TraceConfig,
        want: [&'static str; 4],
    }
    let families = [
        Family {
            tracing: "TRACING_ENABLED=true",
            otel: "OTEL_SDK_DISABLED=true",
            get: |c| c.enabled().to_string(),
            code: |c| c.with_enabled(false),
            want: ["true", "false", "true", "false"],
        },
        Family {
            tracing: "TRACING_EXPORTER=none",
            otel: "OTEL_TRACES_EXPORTER=otlp",
            get: |c| c.exporter().to_string(),
            code: |c| c.with_exporter(ExporterKind::Console),
            want: ["console", "otlp", "none", "console"],
        },
        Family {
            tracing: "TRACING_ENDPOINT=localhost:4317",
            otel: "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel:4317",
            get: |c| format!("{:?}", c.otlp_endpoint()),
            code: |c| c.with_endpoint("code:4317"),
            want: [
                "None",
                // OTEL_* endpoints default to http/protobuf (specification).
                r#"Some("http://otel:4317/v1/traces")"#,
                r#"Some("http://localhost:4317")"#,
                r#"Some("http://code:4317")"#,
            ],
        },
        Family {
            tracing: "TRACING_PROTOCOL=grpc",
            otel: "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            get: |c| c.protocol().to_string(),
            code: |c| c.with_protocol(Protocol::HttpProtobuf),
            want: ["grpc", "http/protobuf", "grpc", "http/protobuf"],
        },
        Family {
            tracing: "TRACING_HEADERS=k=tracing",
            otel: "OTEL_EXPORTER_OTLP_HEADERS=k=otel",
            get: |c| format!("{:?}", c.headers()),
            code: |c| c.with_header("K", "code"),
            want: [
                "[]",
                r#"[("k", "otel")]"#,
                r#"[("k", "tracing")]"#,
                r#"[("K", "code")]"#,
            ],
        },
        Family {
            tracing: "TRACING_INSECURE=false",
            otel: "OTEL_EXPORTER_OTLP_INSECURE=true",
            get: |c| c.uses_tls().to_string(),
            code: |c| c.with_insecure(true),
            want: ["true", "false", "true", "false"],
        },
        Family {
            tracing: "TRACING_SERVICE_NAME=tracing",
            otel: "OTEL_SERVICE_NAME=otel",
            get: |c| c.service_name().to_owned(),
            code: |c| c.with_service_name("code"),
            want: ["unknown_service:*", "otel", "tracing", "code"],
        },
        Family {
            tracing: "TRACING_SERVICE_NAME=tracing",
            otel: "OTEL_RESOURCE_ATTRIBUTES=service.name=otel",
            get: |c| c.service_name().to_owned(),
            code: |c| c.with_resource_attribute("service.name", "code"),
            want: ["unknown_service:*", "otel", "tracing", "code"],
        },
        Family {
            tracing: "TRACING_SERVICE_VERSION=2.0",
            otel: "OTEL_RESOURCE_ATTRIBUTES=service.version=1.0",
            get: |c| format!("{:?}", c.service_version()),
            code: |c| c.with_service_version("3.0"),
            want: ["None", r#"Some("1.0")"#, r#"Some("2.0")"#, r#"Some("3.0")"#],
        },
        Family {
            tracing: "TRACING_ENVIRONMENT=prod",
            otel: "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=dev",
            get: |c| format!("{:?}", c.environment()),
            code: |c| c.with_environment("test"),
            want: [
                "None",
                r#"Some("dev")"#,
                r#"Some("prod")"#,
                r#"Some("test")"#,
            ],
        },
        Family {
            tracing: "TRACING_RESOURCE_ATTRIBUTES=team=core",
            otel: "OTEL_RESOURCE_ATTRIBUTES=team=infra",
            get: |c| format!("{:?}", c.resource_attributes()),
            code: |c| c.with_resource_attribute("team", "code"),
            want: [
                "[]",
                r#"[("team", "infra")]"#,
                r#"[("team", "core")]"#,
                r#"[("team", "code")]"#,
            ],
        },
        Family {
            tracing: "TRACING_SAMPLE_RATE=0.1",
            otel: "OTEL_TRACES_SAMPLER=always_off",
            get: |c| c.sampler().to_string(),
            code: |c| c.with_sample_rate(0.5),
            want: [
                "parentbased_always_on",
                "always_off",
                "parentbased_traceidratio(0.1)",
                "parentbased_traceidratio(0.5)",
            ],
        },
        Family {
            tracing: "TRACING_PROPAGATORS=baggage",
            otel: "OTEL_PROPAGATORS=none",
            get: |c| format!("{:?}", c.propagators()),
            code: |c| {
                c.with_propagators(Propagators {
                    trace_context: true,
                    ..Propagators::NONE
                })
            },
            want: [
                "Propagators { trace_context: true, baggage: true }",
                "Propagators { trace_context: false, baggage: false }",
                "Propagators { trace_context: false, baggage: true }",
                "Propagators { trace_context: true, baggage: false }",
            ],
        },
        Family {
            tracing: "TRACING_BATCH_QUEUE_SIZE=1000",
            otel: "OTEL_BSP_MAX_QUEUE_SIZE=3000",
            get: |c| c.batch().max_queue_size.to_string(),
            code: |c| {
                c.with_batch(BatchSettings {
                    max_queue_size: 7,
                    ..BatchSettings::default()
                })
            },
            want: ["2048", "3000", "1000", "7"],
        },
        Family {
            tracing: "TRACING_BATCH_DELAY_MS=100",
            otel: "OTEL_BSP_SCHEDULE_DELAY=200",
            get: |c| format!("{:?}", c.batch().scheduled_delay),
            code: |c| {
                c.with_batch(BatchSettings {
                    scheduled_delay: Duration::from_millis(300),
                    ..BatchSettings::default()
                })
            },
            want: ["5s", "200ms", "100ms", "300ms"],
        },
        Family {
            tracing: "TRACING_BATCH_SIZE=10",
            otel: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=20",
            get: |c| c.batch().max_export_batch_size.to_string(),
            code: |c| {
                c.with_batch(BatchSettings {
                    max_export_batch_size: 30,
                    ..BatchSettings::default()
                })
            },
            want: ["512", "20", "10", "30"],
        },
        Family {
            tracing: "TRACING_EXPORT_TIMEOUT_MS=1000",
            otel: "OTEL_BSP_EXPORT_TIMEOUT=2000",
            get: |c| format!("{:?}", c.batch().export_timeout),
            code: |c| {
                c.with_batch(BatchSettings {
                    export_timeout: Duration::from_secs(3),
                    ..BatchSettings::default()
                })
            },
            want: ["10s", "2s", "1s", "3s"],
        },
    ];
    for f in families {
        let (tracing, tracing_value) = f.tracing.split_once('=').unwrap();
        let (otel, otel_value) = f.otel.split_once('=').unwrap();
        // TLS needs an endpoint on port 443 to show.
        let base = if tracing == "TRACING_INSECURE" {
            "TRACING_ENDPOINT=e:443"
        } else {
            "TRACING_UNRELATED=x"
        };
        let with = |env: &[&'static str]| config(&[&[base], env].concat());
        let got = (f.get)(&with(&[]));
        match f.want[0].strip_suffix('*') {
            // `unknown_service:` and the executable's name, as the resource conventions say.
            Some(prefix) => assert!(got.starts_with(prefix) && got.len() > prefix.len(), "{got}"),
            None => assert_eq!(got, f.want[0], "{tracing}: default"),
        }
        // Issue 20: the same override as a code default (`from_vars_with_defaults`) holds
        // alone and is beaten by each environment family.
        let defaults = (f.code)(TraceConfig::new());
        let over = |env: &[&'static str]| {
            TraceConfig::from_vars_with_defaults(vars(&[&[base], env].concat()), defaults.clone())
                .unwrap()
        };
        assert_eq!((f.get)(&over(&[])), f.want[3], "{tracing}: code default");
        assert_eq!(
            (f.get)(&over(&[f.otel])),
            f.want[1],
            "{tracing}: OTEL over code default"
        );
        assert_eq!(
            (f.get)(&over(&[f.tracing])),
            f.want[2],
            "{tracing}: TRACING over code default"
        );
        let only_otel = with(&[f.otel]);
        assert_eq!((f.get)(&only_otel), f.want[1], "{tracing}: OTEL only");
        assert!(
            only_otel.warnings().is_empty(),
            "{tracing}: {:?}",
            only_otel.warnings()
        );
        assert_eq!(
            (f.get)(&with(&[f.tracing])),
            f.want[2],
            "{tracing}: TRACING only"
        );
        let both = with(&[f.tracing, f.otel]);
        assert_eq!((f.get)(&both), f.want[2], "{tracing}: TRACING over OTEL");
        assert_eq!(both.warnings().len(), 1, "{tracing}: {:?}", both.warnings());
        let warning = &both.warnings()[0];
        let winner = format!("using {tracing}");
        let mut parts = vec![tracing, otel, &winner];
        if tracing != "TRACING_HEADERS" {
            let last = |v: &'static str| v.rsplit('=').next().unwrap();
            parts.extend([last(tracing_value), last(otel_value)]);
        }
        for part in parts {
            assert!(
                warning.contains(part),
                "{tracing}: {part} missing from {warning}"
            );
        }
        assert_eq!(
            (f.get)(&(f.code)(both)),
            f.want[3],
            "{tracing}: code over env"
        );
    }
}

#[test]
fn agreeing_families_do_not_warn() {
    let c = config(&[
        "TRACING_SERVICE_NAME=svc",
        "OTEL_SERVICE_NAME=svc",
        "TRACING_SAMPLE_RATE=0.5",
        "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG=0.5",
        "TRACING_ENABLED=yes",
        "OTEL_SDK_DISABLED=false",
    ]);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn resource_attributes_merge_per_key() {
    let c = config(&[
        "TRACING_RESOURCE_ATTRIBUTES=team=core,region=eu",
        "OTEL_RESOURCE_ATTRIBUTES=team=infra,host.name=a%20b,service.name=svc",
    ]);
    assert_eq!(
        c.resource_attributes(),
        pairs(&[("team", "core"), ("host.name", "a b"), ("region", "eu")])
    );
    assert_eq!(c.service_name(), "svc");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(
        c.warnings()[0].contains(r#"[team]="core""#),
        "{:?}",
        c.warnings()
    );
    let c = c
        .with_resource_attribute("region", "us")
        .with_resource_attribute("deployment.environment.name", "prod");
    assert_eq!(
        c.resource_attributes(),
        pairs(&[("team", "core"), ("host.name", "a b"), ("region", "us")])
    );
    assert_eq!(c.environment(), Some("prod"));
}

#[test]
fn sampler_arg_without_ratio_sampler_warns() {
    let c = config(&[
        "OTEL_TRACES_SAMPLER=always_on",
        "OTEL_TRACES_SAMPLER_ARG=0.5",
    ]);
    assert_eq!(c.sampler(), Sampler::AlwaysOn);
    assert_eq!(c.warnings().len(), 1);
    assert!(
        c.warnings()[0].contains(r#"OTEL_TRACES_SAMPLER_ARG="0.5""#),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn empty_values_are_unset() {
    let c = config(&[
        "TRACING_ENABLED=",
        "TRACING_SAMPLE_RATE=",
        "TRACING_ENDPOINT=  ",
        "TRACING_SERVICE_NAME=",
        "OTEL_SERVICE_NAME=svc",
        "OTEL_SDK_DISABLED=",
        "OTEL_PROPAGATORS=",
        "OTEL_EXPORTER_OTLP_HEADERS=",
        "TRACING_BATCH_SIZE=",
        "OTEL_TRACES_SAMPLER= ",
    ]);
    assert!(c.enabled());
    assert_eq!(c.sampler(), Sampler::ParentBasedAlwaysOn);
    assert_eq!(
        (c.exporter(), c.otlp_endpoint()),
        (ExporterKind::Console, None)
    );
    assert_eq!(c.service_name(), "svc");
    assert_eq!(c.propagators(), Propagators::default());
    assert!(c.headers().is_empty());
    assert_eq!(c.batch(), &BatchSettings::default());
    assert!(c.warnings().is_empty());
}

#[test]
fn displays() {
    let cases = [
        (Sampler::AlwaysOn.to_string(), "always_on"),
        (Sampler::AlwaysOff.to_string(), "always_off"),
        (Sampler::TraceIdRatio(0.5).to_string(), "traceidratio(0.5)"),
        (
            Sampler::ParentBasedAlwaysOn.to_string(),
            "parentbased_always_on",
        ),
        (
            Sampler::ParentBasedAlwaysOff.to_string(),
            "parentbased_always_off",
        ),
        (
            Sampler::ParentBasedTraceIdRatio(0.25).to_string(),
            "parentbased_traceidratio(0.25)",
        ),
        (ExporterKind::Otlp.to_string(), "otlp"),
        (ExporterKind::Console.to_string(), "console"),
        (ExporterKind::None.to_string(), "none"),
        (Protocol::Grpc.to_string(), "grpc"),
        (Protocol::HttpProtobuf.to_string(), "http/protobuf"),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

#[cfg(unix)]
#[test]
fn from_env_reports_non_utf8_values_of_known_variables_only() {
    use std::os::unix::ffi::OsStringExt;
    let bad = || OsString::from_vec(vec![b'a', 0xff]);
    let e = TraceConfig::from_os_vars(
        [
            (OsString::from("TRACING_ENABLED"), bad()),
            (OsString::from("UNRELATED"), bad()),
            (bad(), OsString::from("x")),
            (OsString::from("TRACING_SAMPLE_RATE"), OsString::from("2")),
        ],
        TraceConfig::default(),
    )
    .unwrap_err();
    let names: Vec<&str> = e.errors().iter().map(|b| b.variable.as_str()).collect();
    assert_eq!(names, ["TRACING_ENABLED", "TRACING_SAMPLE_RATE"]);
    let c = TraceConfig::from_os_vars(
        [(
            OsString::from("TRACING_SERVICE_NAME"),
            OsString::from("svc"),
        )],
        TraceConfig::default(),
    )
    .unwrap();
    assert_eq!(c.service_name(), "svc");
}

#[test]
fn debug_hides_header_values() {
    let shown = format!(
        "{:?}",
        TraceConfig::new().with_header("authorization", "Bearer hunter2")
    );
    assert!(
        shown.contains("authorization=***") && !shown.contains("hunter2"),
        "{shown}"
    );
}

/// Insecure means what it says: with an `https://` endpoint it is an error (from the
/// environment and from code), never TLS behind a getter that says none.
#[test]
fn insecure_with_https_is_an_error() {
    for env in [
        &["TRACING_INSECURE=true", "TRACING_ENDPOINT=https://c:8443"][..],
        &[
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://c:8443",
            "OTEL_EXPORTER_OTLP_INSECURE=true",
        ],
    ] {
        let e = error(env);
        assert!(e.to_string().contains("https://"), "{e}");
    }
    let e = TraceConfig::new()
        .with_endpoint("https://c:8443")
        .with_insecure(true)
        .validate()
        .unwrap_err();
    assert_eq!(e.errors()[0].variable, "with_insecure");
    // host:443 with insecure is plain http, and says so.
    let c = TraceConfig::new()
        .with_endpoint("c:443")
        .with_insecure(true);
    assert_eq!(c.otlp_endpoint().as_deref(), Some("http://c:443"));
    assert!(!c.uses_tls());
    assert!(c.validate().is_ok());
}

/// Header names and values are checked when read, for both protocols; every bad member of a
/// list is named, and no value is echoed.
#[test]
fn bad_headers_are_errors_naming_every_member() {
    let e = error(&["OTEL_EXPORTER_OTLP_HEADERS=novalue,=x,a=%zz,bad header=1,b=line%0Abreak"]);
    let msg = e.to_string();
    for part in [
        "\"novalue\" is not key=value",
        "empty key",
        "\"a\" has invalid percent-encoding",
        "\"bad header\" is not a valid header name",
        "the value of \"b\" is not a valid header value",
    ] {
        assert!(msg.contains(part), "{part:?} missing in {msg}");
    }
    assert!(!msg.contains("line%0A"), "{msg}");
    let e = error(&["TRACING_HEADERS=x-ok=1,bad header=1"]);
    assert!(e.to_string().contains("bad header"), "{e}");
    let e = TraceConfig::new()
        .with_header("x-api-key", "a\nb")
        .with_header("bad name", "v")
        .validate()
        .unwrap_err();
    assert_eq!(e.errors().len(), 2, "{e}");
    // A later valid value of the same header replaces the bad one.
    assert!(
        TraceConfig::new()
            .with_header("x-api-key", "a\nb")
            .with_header("X-Api-Key", "ok")
            .validate()
            .is_ok()
    );
}

/// Sizes have upper bounds; a zero export timeout is rejected; the byte budget has a variable.
#[test]
fn batch_bounds() {
    let e = error(&[
        "TRACING_BATCH_SIZE=1000000000",
        "TRACING_BATCH_QUEUE_SIZE=1000000000",
    ]);
    assert_eq!(e.errors().len(), 2, "{e}");
    assert!(e.to_string().contains("up to 65536"), "{e}");
    assert!(e.to_string().contains("up to 8192"), "{e}");
    error(&["TRACING_EXPORT_TIMEOUT_MS=0"]);
    error(&["OTEL_BSP_EXPORT_TIMEOUT=0"]);
    error(&["TRACING_BATCH_MAX_BYTES=0"]);
    error(&["TRACING_BATCH_MAX_BYTES=2000000000"]);
    let c = config(&["TRACING_BATCH_MAX_BYTES=1048576"]);
    assert_eq!(c.batch().max_queue_bytes, 1 << 20);
    let c = config(&["TRACING_BATCH_QUEUE_SIZE=65536", "TRACING_BATCH_SIZE=8192"]);
    assert_eq!(c.batch().max_queue_size, MAX_QUEUE_SIZE);
    for bad in [
        BatchSettings {
            max_queue_size: MAX_QUEUE_SIZE + 1,
            ..BatchSettings::default()
        },
        BatchSettings {
            export_timeout: Duration::ZERO,
            ..BatchSettings::default()
        },
        BatchSettings {
            max_queue_bytes: 0,
            ..BatchSettings::default()
        },
    ] {
        assert!(TraceConfig::new().with_batch(bad).validate().is_err());
    }
}

#[test]
fn attribute_value_length_limit() {
    assert_eq!(
        TraceConfig::new().attribute_value_length_limit(),
        Some(DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT)
    );
    let limit = |env: &[&'static str]| config(env).attribute_value_length_limit();
    assert_eq!(limit(&["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=100"]), Some(100));
    assert_eq!(
        limit(&[
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=100",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT=200"
        ]),
        Some(200)
    );
    assert_eq!(
        limit(&[
            "TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT=50",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT=200"
        ]),
        Some(50)
    );
    error(&["TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT=-1"]);
    let c = TraceConfig::new().with_attribute_value_length_limit(None);
    assert_eq!(c.attribute_value_length_limit(), None);
}

#[test]
fn certificates() {
    let c = config(&[
        "OTEL_EXPORTER_OTLP_CERTIFICATE=/ca.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE=/c.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY=/k.pem",
    ]);
    assert_eq!(c.certificate(), Some(std::path::Path::new("/ca.pem")));
    assert_eq!(
        c.client_certificate(),
        Some((
            std::path::Path::new("/c.pem"),
            std::path::Path::new("/k.pem")
        ))
    );
    let c = config(&[
        "TRACING_CERTIFICATE=/t.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=/o.pem",
    ]);
    assert_eq!(c.certificate(), Some(std::path::Path::new("/t.pem")));
    assert_eq!(c.warnings().len(), 1);
    let e = error(&["TRACING_CLIENT_CERTIFICATE=/c.pem"]);
    assert_eq!(e.errors()[0].variable, "TRACING_CLIENT_KEY");
}

#[test]
fn other_propagators_parse_or_name_their_feature() {
    use crate::propagation::Formats;
    let c =
        TraceConfig::from_vars([("OTEL_PROPAGATORS", "tracecontext, baggage, jaeger")]).unwrap();
    assert_eq!(
        c.propagators(),
        Propagators {
            other: Formats::JAEGER,
            ..Propagators::W3C
        }
    );
    for (name, formats, feature, enabled) in [
        (
            "b3",
            Formats::B3,
            "propagator-b3",
            cfg!(feature = "propagator-b3"),
        ),
        (
            "B3Multi",
            Formats::B3_MULTI,
            "propagator-b3",
            cfg!(feature = "propagator-b3"),
        ),
        (
            "xray",
            Formats::XRAY,
            "propagator-xray",
            cfg!(feature = "propagator-xray"),
        ),
    ] {
        let got = TraceConfig::from_vars([("OTEL_PROPAGATORS", name)]);
        match enabled {
            true => assert_eq!(got.unwrap().propagators().other, formats),
            false => {
                let e = got.unwrap_err();
                assert_eq!(e.errors()[0].variable, "OTEL_PROPAGATORS");
                assert!(e.to_string().contains(feature), "{e}");
            }
        }
    }
    let e = TraceConfig::from_vars([("OTEL_PROPAGATORS", "none,jaeger")]).unwrap_err();
    assert!(e.to_string().contains("none cannot be combined"), "{e}");
}

/// Metrics (issue 13): on/off, exporters, the endpoint beside the traces', interval, errors.
#[test]
fn metrics_settings() {
    use crate::metrics::MetricsExporters;
    let off = config(&[]);
    assert!(!off.metrics_enabled());
    assert_eq!(off.metric_export_interval(), DEFAULT_METRIC_EXPORT_INTERVAL);
    // The reader's 30 s and the OTLP exporter's 10 s both apply: the shorter one.
    assert_eq!(off.metric_export_timeout(), DEFAULT_OTLP_EXPORTER_TIMEOUT);
    assert!(DEFAULT_OTLP_EXPORTER_TIMEOUT < DEFAULT_METRIC_EXPORT_TIMEOUT);

    // Naming an exporter turns metrics on; TRACING_METRICS_ENABLED=false wins.
    let c = config(&["OTEL_METRICS_EXPORTER=otlp,prometheus"]);
    assert!(c.metrics_enabled());
    assert_eq!(
        c.metrics_exporters(),
        MetricsExporters {
            otlp: true,
            prometheus: true
        }
    );
    assert!(
        !config(&[
            "OTEL_METRICS_EXPORTER=otlp",
            "TRACING_METRICS_ENABLED=false"
        ])
        .metrics_enabled()
    );
    assert!(!config(&["OTEL_METRICS_EXPORTER=none"]).metrics_enabled());
    let on = config(&["TRACING_METRICS_ENABLED=true"]);
    assert!(on.metrics_enabled());
    assert_eq!(on.metrics_exporters(), MetricsExporters::default());

    // The endpoint: beside the traces' one, /v1/metrics for HTTP.
    let cases: &[(Env, Option<&str>)] = &[
        (&[], None),
        (
            &["TRACING_ENDPOINT=collector:4317"],
            Some("http://collector:4317"),
        ),
        (
            &["TRACING_ENDPOINT=collector:4318"],
            Some("http://collector:4318/v1/metrics"),
        ),
        (
            &["TRACING_ENDPOINT=http://c:4318/v1/traces"],
            Some("http://c:4318/v1/metrics"),
        ),
        (
            &[
                "TRACING_ENDPOINT=https://c/otlp",
                "TRACING_PROTOCOL=http/protobuf",
            ],
            Some("https://c/otlp/v1/metrics"),
        ),
        (
            &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"],
            Some("http://c:4318/v1/metrics"),
        ),
        // A signal-specific traces endpoint says nothing about metrics: the base one does.
        (
            &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://t:4318/v1/traces"],
            None,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://t:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://b:4318",
            ],
            Some("http://b:4318/v1/metrics"),
        ),
        (
            &[
                "TRACING_ENDPOINT=collector:4318",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://m:9000/custom",
            ],
            Some("http://m:9000/custom"),
        ),
        (
            &[
                "TRACING_ENDPOINT=collector:4318",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc",
            ],
            Some("http://collector:4318"),
        ),
    ];
    for (env, want) in cases {
        assert_eq!(
            config(env).metrics_otlp_endpoint().as_deref(),
            *want,
            "{env:?}"
        );
    }
    assert_eq!(
        config(&[
            "OTEL_METRIC_EXPORT_INTERVAL=5000",
            "OTEL_METRIC_EXPORT_TIMEOUT=1000"
        ])
        .metric_export_interval(),
        Duration::from_secs(5)
    );

    // Compression: the metrics' own variable, else the traces'.
    let c = config(&["OTEL_EXPORTER_OTLP_METRICS_COMPRESSION=gzip"]);
    assert_eq!(
        (c.compression(), c.metrics_compression()),
        (Compression::None, Compression::Gzip)
    );
    let c = config(&[
        "TRACING_COMPRESSION=gzip",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION=none",
    ]);
    assert_eq!(
        (c.compression(), c.metrics_compression()),
        (Compression::Gzip, Compression::None)
    );
    assert_eq!(
        config(&["TRACING_COMPRESSION=gzip"]).metrics_compression(),
        Compression::Gzip
    );

    // Bad values, reported by name and value.
    for (env, var) in [
        (
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION=zstd",
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        ),
        ("OTEL_METRICS_EXPORTER=console", "OTEL_METRICS_EXPORTER"),
        ("OTEL_METRICS_EXPORTER=statsd", "OTEL_METRICS_EXPORTER"),
        ("TRACING_METRICS_ENABLED=maybe", "TRACING_METRICS_ENABLED"),
        (
            "OTEL_METRIC_EXPORT_INTERVAL=0",
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
        (
            "OTEL_METRIC_EXPORT_TIMEOUT=-1",
            "OTEL_METRIC_EXPORT_TIMEOUT",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=collector:4318",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=udp",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ),
    ] {
        let e = error(&[env]);
        assert_eq!(e.errors()[0].variable, var, "{env}");
        assert!(e.to_string().contains(var), "{e}");
    }
}

/// `TRACING_COMPRESSION` > `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` > `OTEL_EXPORTER_OTLP_COMPRESSION`
/// > `none`; code over all; the specification's values only, any case.
#[test]
fn compression() {
    assert_eq!(TraceConfig::new().compression(), Compression::None);
    assert_eq!(config(&[]).compression(), Compression::None);
    for (env, want) in [
        (&["TRACING_COMPRESSION=gzip"][..], Compression::Gzip),
        (&["TRACING_COMPRESSION=GZIP"][..], Compression::Gzip),
        (
            &["OTEL_EXPORTER_OTLP_COMPRESSION=gzip"][..],
            Compression::Gzip,
        ),
        (
            &["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip"][..],
            Compression::Gzip,
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=none",
                "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
            ][..],
            Compression::None,
        ),
        (
            &[
                "TRACING_COMPRESSION=none",
                "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
            ][..],
            Compression::None,
        ),
        (&["TRACING_COMPRESSION="][..], Compression::None),
    ] {
        assert_eq!(config(env).compression(), want, "{env:?}");
    }
    let c = config(&[
        "TRACING_COMPRESSION=none",
        "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
    ]);
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(c.warnings()[0].contains("TRACING_COMPRESSION"));
    let c = config(&["OTEL_EXPORTER_OTLP_COMPRESSION=gzip"]).with_compression(Compression::None);
    assert_eq!(c.compression(), Compression::None);
    assert_eq!(Compression::Gzip.to_string(), "gzip");

    for var in [
        "TRACING_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ] {
        for value in ["zstd", "deflate", "gzip,none"] {
            let err = TraceConfig::from_vars([(var, value)]).unwrap_err();
            let e = &err.errors()[0];
            assert_eq!((e.variable.as_str(), e.value.as_str()), (var, value));
            assert!(e.reason.contains("gzip or none"), "{}", e.reason);
        }
    }
}

#[test]
fn export_concurrency() {
    assert_eq!(
        TraceConfig::new().export_concurrency(),
        DEFAULT_EXPORT_CONCURRENCY
    );
    assert_eq!(
        config(&["TRACING_EXPORT_CONCURRENCY=4"]).export_concurrency(),
        4
    );
    assert_eq!(
        config(&["TRACING_EXPORT_CONCURRENCY=16"]).export_concurrency(),
        MAX_EXPORT_CONCURRENCY
    );
    for value in ["0", "17", "-1", "two"] {
        let err = TraceConfig::from_vars([("TRACING_EXPORT_CONCURRENCY", value)]).unwrap_err();
        let e = &err.errors()[0];
        assert_eq!(
            (e.variable.as_str(), e.value.as_str()),
            ("TRACING_EXPORT_CONCURRENCY", value)
        );
    }
    assert!(
        TraceConfig::new()
            .with_export_concurrency(8)
            .validate()
            .is_ok()
    );
    for bad in [0, 17] {
        let err = TraceConfig::new()
            .with_export_concurrency(bad)
            .validate()
            .unwrap_err();
        assert_eq!(err.errors()[0].variable, "with_export_concurrency");
        assert_eq!(err.errors()[0].value, bad.to_string());
    }
}

/// Issue 19: one shutdown budget (default: the span export timeout), the OTLP timeouts of the
/// SDK specification, and an upper bound on every timeout, delay and interval, reported by name.
#[test]
fn timeouts_are_bounded_and_the_shutdown_budget_defaults_to_the_export_timeout() {
    let ms = Duration::from_millis;
    assert_eq!(config(&[]).shutdown_timeout(), ms(10_000));
    let c = config(&["TRACING_EXPORT_TIMEOUT_MS=1500"]);
    assert_eq!(c.shutdown_timeout(), ms(1500));
    let c = config(&[
        "TRACING_SHUTDOWN_TIMEOUT_MS=800",
        "TRACING_EXPORT_TIMEOUT_MS=1500",
    ]);
    assert_eq!(c.shutdown_timeout(), ms(800));
    // OTEL_EXPORTER_OTLP_TIMEOUT applies to both signals; the signal's own variable wins.
    let c = config(&["OTEL_EXPORTER_OTLP_TIMEOUT=2000"]);
    assert_eq!(c.batch().export_timeout, ms(2000));
    assert_eq!(c.metric_export_timeout(), ms(2000));
    let c = config(&[
        "OTEL_EXPORTER_OTLP_TIMEOUT=2000",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=3000",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT=4000",
    ]);
    assert_eq!(c.batch().export_timeout, ms(3000));
    assert_eq!(c.metric_export_timeout(), ms(4000));
    for (var, too_much) in [
        ("TRACING_SHUTDOWN_TIMEOUT_MS", "120001"),
        ("TRACING_EXPORT_TIMEOUT_MS", "120001"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "120001"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "120001"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "120001"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "120001"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "120001"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600001"),
        ("TRACING_BATCH_DELAY_MS", "600001"),
        ("OTEL_BSP_SCHEDULE_DELAY", "600001"),
        ("TRACING_SHUTDOWN_TIMEOUT_MS", "0"),
    ] {
        let e = TraceConfig::from_vars([(var, too_much)]).unwrap_err();
        let bad = e.errors().iter().find(|e| e.variable == var);
        assert!(bad.is_some_and(|b| b.value == too_much), "{var}: {e}");
    }
    let e = TraceConfig::new()
        .with_shutdown_timeout(Duration::from_secs(121))
        .validate()
        .unwrap_err();
    assert_eq!(e.errors()[0].variable, "with_shutdown_timeout");
    let e = TraceConfig::new()
        .with_batch(crate::export::BatchSettings {
            export_timeout: Duration::from_secs(600),
            ..Default::default()
        })
        .validate()
        .unwrap_err();
    assert_eq!(e.errors()[0].variable, "with_batch");
}

/// Issue 27: `TRACING_EXPORTER` / `OTEL_TRACES_EXPORTER` are comma-separated lists; the viewer's
/// address and bounds.
#[test]
fn exporter_lists_and_the_viewer() {
    use crate::config::{DEFAULT_VIEWER_ADDR, ViewerSettings};
    let c = TraceConfig::from_vars([("TRACING_EXPORTER", " otlp , Viewer,console,otlp")]).unwrap();
    assert_eq!(
        c.exporters(),
        [
            ExporterKind::Otlp,
            ExporterKind::Viewer,
            ExporterKind::Console
        ]
    );
    assert_eq!(c.exporter(), ExporterKind::Otlp);
    let c = TraceConfig::from_vars([("OTEL_TRACES_EXPORTER", "console,viewer")]).unwrap();
    assert_eq!(c.exporters(), [ExporterKind::Console, ExporterKind::Viewer]);
    // TRACING_* wins over OTEL_*, with a warning.
    let c = TraceConfig::from_vars([
        ("TRACING_EXPORTER", "viewer"),
        ("OTEL_TRACES_EXPORTER", "otlp"),
    ])
    .unwrap();
    assert_eq!(c.exporters(), [ExporterKind::Viewer]);
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    // In code: duplicates once, `none` beside others ignored, nothing is `none`.
    let c = TraceConfig::new().with_exporters([
        ExporterKind::None,
        ExporterKind::Viewer,
        ExporterKind::Viewer,
    ]);
    assert_eq!(c.exporters(), [ExporterKind::Viewer]);
    assert_eq!(
        TraceConfig::new().with_exporters([]).exporters(),
        [ExporterKind::None]
    );
    // The viewer's settings.
    assert_eq!(TraceConfig::new().viewer(), &ViewerSettings::default());
    assert_eq!(DEFAULT_VIEWER_ADDR.to_string(), "127.0.0.1:16786");
    let c = TraceConfig::from_vars([
        ("TRACING_VIEWER_ADDR", "0.0.0.0:9999"),
        ("TRACING_VIEWER_MAX_TRACES", "50"),
        ("TRACING_VIEWER_MAX_BYTES", "1048576"),
    ])
    .unwrap();
    assert_eq!(
        c.viewer(),
        &ViewerSettings {
            addr: Some("0.0.0.0:9999".parse().unwrap()),
            max_traces: 50,
            max_bytes: 1 << 20,
        }
    );
}

/// Issue 20: endpoints that cannot work are configuration errors naming the variable and value;
/// valid forms still pass (IPv6, underscores of Compose service names, a trailing dot).
#[test]
fn endpoints_are_checked_at_init_by_variable() {
    for (var, bad) in [
        ("TRACING_ENDPOINT", "http://127.0.0.1:99999/v1/traces"),
        ("TRACING_ENDPOINT", "http://[zz]:1"),
        ("TRACING_ENDPOINT", "bad_host_name!:4317"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:65536"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://exa mple.com/v1/traces",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://[::1:4318/v1/metrics",
        ),
    ] {
        let e = TraceConfig::from_vars([(var, bad)]).unwrap_err();
        let found = e.errors().iter().find(|e| e.variable == var);
        assert!(found.is_some_and(|f| f.value == bad), "{var}={bad}: {e}");
    }
    for good in [
        "http://[::1]:4318/v1/traces",
        "otel_collector:4317",
        "collector.monitoring.svc.cluster.local.:4317",
        "https://api.honeycomb.io",
        "http://127.0.0.1:65535",
    ] {
        TraceConfig::from_vars([("TRACING_ENDPOINT", good)])
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

/// `OTEL_SEMCONV_STABILITY_OPT_IN` decides each category it names; a category it does not
/// name keeps the code's setting (issue 22).
#[test]
fn semconv_opt_in_per_category_over_code_defaults() {
    use crate::conventions::RpcSemconv;
    let defaults = TraceConfig::new()
        .with_http_semconv(HttpSemconv::Dup)
        .with_rpc_semconv(RpcSemconv::Dup);
    let with = |list: &'static str| {
        TraceConfig::from_vars_with_defaults(
            vars(&[if list.is_empty() {
                "TRACING_UNRELATED=x"
            } else {
                list
            }]),
            defaults.clone(),
        )
        .unwrap()
    };
    let c = with("");
    assert_eq!(
        (c.http_semconv(), c.rpc_semconv()),
        (HttpSemconv::Dup, RpcSemconv::Dup)
    );
    let c = with("OTEL_SEMCONV_STABILITY_OPT_IN=rpc");
    assert_eq!(
        (c.http_semconv(), c.rpc_semconv()),
        (HttpSemconv::Dup, RpcSemconv::Stable)
    );
    let c = with("OTEL_SEMCONV_STABILITY_OPT_IN=http");
    assert_eq!(
        (c.http_semconv(), c.rpc_semconv()),
        (HttpSemconv::Stable, RpcSemconv::Dup)
    );
}
