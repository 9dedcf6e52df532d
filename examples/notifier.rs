//! The journey's gRPC hop: a `gorax.notify.v1.Notifier` service with one unary method,
//! `Notify`, written by hand (prost messages, `tonic::server::Grpc`) so the demo needs no protoc.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use gorax_trace::TelemetryHandle;
use gorax_trace_client::grpc::{GrpcClientLayer, GrpcClientService};
use gorax_trace_server::ServerTraceLayer;
use tonic::server::NamedService;
use tonic_prost::ProstCodec;

/// The gRPC service name.
pub const SERVICE: &str = "gorax.notify.v1.Notifier";
/// The path of `Notify`.
pub const NOTIFY_PATH: &str = "/gorax.notify.v1.Notifier/Notify";

/// `Notify`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NotifyRequest {
    /// The execution to notify about.
    #[prost(string, tag = "1")]
    pub execution_id: String,
}

/// `Notify`'s reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NotifyReply {
    /// Whether the notification went out.
    #[prost(bool, tag = "1")]
    pub sent: bool,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Clone)]
struct Notifier;

impl NamedService for Notifier {
    const NAME: &'static str = SERVICE;
}

struct Notify;

impl tonic::server::UnaryService<NotifyRequest> for Notify {
    type Response = NotifyReply;
    type Future = BoxFuture<Result<tonic::Response<NotifyReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<NotifyRequest>) -> Self::Future {
        Box::pin(async move {
            if request.get_ref().execution_id.is_empty() {
                return Err(tonic::Status::invalid_argument("execution_id is empty"));
            }
            Ok(tonic::Response::new(NotifyReply { sent: true }))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Notifier {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != NOTIFY_PATH {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<NotifyReply, NotifyRequest>::default());
            Ok(grpc.unary(Notify, request).await)
        })
    }
}

/// Serves the notifier on 127.0.0.1 behind the gRPC server layer; returns its address.
pub(crate) async fn serve(
    telemetry: TelemetryHandle,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tonic::transport::Server::builder()
        .layer(ServerTraceLayer::grpc().with_telemetry(telemetry))
        .add_service(Notifier)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    Ok((addr, task))
}

/// A client of the notifier at `addr` (connected on first use) behind the gRPC client layer.
#[derive(Debug, Clone)]
pub(crate) struct NotifierClient(tonic::client::Grpc<GrpcClientService<tonic::transport::Channel>>);

impl NotifierClient {
    pub(crate) fn new(addr: SocketAddr, telemetry: TelemetryHandle) -> Self {
        let origin: http::Uri = format!("http://{addr}").parse().expect("a valid URI");
        let channel = tonic::transport::Endpoint::from(origin.clone())
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        // The channel's target is where the client span's `server.address` and `server.port`
        // come from (the channel adds the authority only below the layer).
        let channel = tower::ServiceBuilder::new()
            .layer(
                GrpcClientLayer::new()
                    .with_telemetry(telemetry)
                    .with_target(&origin.to_string()),
            )
            .service(channel);
        Self(tonic::client::Grpc::with_origin(channel, origin))
    }

    /// Calls `Notify`.
    pub(crate) async fn notify(
        &mut self,
        execution_id: &str,
    ) -> Result<NotifyReply, tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let request = tonic::Request::new(NotifyRequest {
            execution_id: execution_id.to_owned(),
        });
        let path = http::uri::PathAndQuery::from_static(NOTIFY_PATH);
        let reply = self
            .0
            .unary(
                request,
                path,
                ProstCodec::<NotifyRequest, NotifyReply>::default(),
            )
            .await?;
        Ok(reply.into_inner())
    }
}
