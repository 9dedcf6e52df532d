//! The gorax-trace demo's building blocks, shared by the example binaries and the end-to-end
//! tests.

pub mod journey;
pub mod notifier;
pub mod participant;

/// Resolves on SIGTERM (how Kubernetes and systemd stop a service) or Ctrl-C: hand it to
/// `axum::serve(…).with_graceful_shutdown`, then shut telemetry down.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The README's "Use it" block, compiled as a doc test so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
