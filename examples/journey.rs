//! The guide's journey in one process: an API service, a downstream service and a worker.
//!
//! ```text
//! HTTP POST /api/v1/workflows/{id}/execute      SERVER    (API, gorax-trace-server)
//! └─ workflow.execute                            INTERNAL  (span helpers)
//!    ├─ workflow.step.execute                    INTERNAL  node_type=http
//!    │  └─ POST                                  CLIENT    (gorax-trace-client)
//!    │     └─ POST /api/v1/steps/{node}          SERVER    (downstream service)
//!    └─ send gorax-executions                    PRODUCER  (gorax-trace-queue)
//!       └─ process gorax-executions              CONSUMER  (worker)
//!          └─ workflow.step.execute              INTERNAL  node_type=notify
//!             └─ gorax.notify.v1.Notifier/Notify CLIENT    (gRPC, gorax-trace-client)
//!                └─ gorax.notify.v1.Notifier/Notify SERVER (notifier, tonic)
//! ```
//!
//! No service here writes a trace header by hand: the server layer extracts, the client
//! middleware and the queue producer inject, the consumer layer extracts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gorax_trace::span;
use gorax_trace::{SdkTracer, TelemetryHandle};
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_queue::amqp::{AmqpConsumer, AmqpConsumerConfig, AmqpProducer, lapin};
use gorax_trace_queue::memory::{self, MemoryConsumer, MemoryProducer};
use gorax_trace_queue::nats::{NatsConsumer, NatsConsumerConfig, NatsProducer, async_nats};
use gorax_trace_queue::redis::{RedisConsumer, RedisProducer};
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use reqwest_middleware::ClientWithMiddleware;
use tokio::sync::mpsc;
use tower::ServiceBuilder;

/// The queue the API publishes executions to.
pub const QUEUE: &str = "gorax-executions";
/// The JetStream stream that takes [`QUEUE`] in the demo over NATS.
pub const NATS_STREAM: &str = "GORAX_EXECUTIONS";
/// The API route that executes a workflow.
pub const EXECUTE_ROUTE: &str = "/api/v1/workflows/{id}/execute";
/// The downstream route a step calls.
pub const STEP_ROUTE: &str = "/api/v1/steps/{node}";
/// The API route that streams a workflow's progress as server-sent events (3 events, 100 ms
/// apart; each made inside a `workflow.progress` span, a child of the request's server span,
/// which lasts as long as the stream).
pub const EVENTS_ROUTE: &str = "/api/v1/workflows/{id}/events";

/// A message to the worker: one workflow execution.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Execution {
    /// The workflow.
    pub workflow_id: String,
    /// This run of it.
    pub execution_id: String,
}

/// The running services. Dropping it stops them.
#[derive(Debug)]
pub struct Journey {
    /// Where the API listens (127.0.0.1).
    pub api: SocketAddr,
    /// Where the downstream service listens (127.0.0.1).
    pub downstream: SocketAddr,
    /// Where the gRPC notifier listens (127.0.0.1).
    pub notifier: SocketAddr,
    /// One entry per execution the worker has processed (sent after its consumer span ended).
    pub processed: mpsc::Receiver<Execution>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Journey {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The broker between the API and the worker.
#[derive(Debug, Clone, Default)]
pub enum Broker {
    /// The in-process queue (default: nothing to install).
    #[default]
    Memory,
    /// Redis Streams at this URL (`redis://127.0.0.1:6379/`).
    Redis(String),
    /// NATS JetStream at this address (`127.0.0.1:4222`; the server runs with `-js`).
    Nats(String),
    /// RabbitMQ at this URL (`amqp://guest:guest@127.0.0.1:5672/%2f`).
    Amqp(String),
}

#[derive(Clone)]
enum Producer {
    Memory(MemoryProducer<Execution>),
    Redis(RedisProducer),
    Nats(NatsProducer),
    Amqp(AmqpProducer),
}

impl Producer {
    async fn send(&self, execution: Execution) -> Result<String, String> {
        match self {
            Producer::Memory(p) => p.send_payload(execution).await.map_err(|e| e.to_string()),
            Producer::Redis(p) => p
                .send(TracedMessage::new(QUEUE, execution))
                .await
                .map_err(|e| e.to_string()),
            Producer::Nats(p) => p
                .send(TracedMessage::new(QUEUE, execution))
                .await
                .map_err(|e| e.to_string()),
            Producer::Amqp(p) => p
                .send(TracedMessage::new(QUEUE, execution))
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

enum Consumer {
    Memory(MemoryConsumer<Execution>),
    Redis(RedisConsumer),
    // Boxed: the JetStream consumer carries its server-side info (about 1.7 kB).
    Nats(Box<NatsConsumer>),
    // Boxed: the RabbitMQ consumer holds its connection, channel and consumer (about 800 B).
    Amqp(Box<AmqpConsumer>),
}

#[derive(Clone)]
struct Api {
    tracer: SdkTracer,
    http: ClientWithMiddleware,
    downstream: SocketAddr,
    producer: Producer,
}

async fn broker(
    broker: &Broker,
    telemetry: &TelemetryHandle,
) -> std::io::Result<(Producer, Consumer)> {
    let io = |e: ::redis::RedisError| std::io::Error::other(e.to_string());
    Ok(match broker {
        Broker::Memory => {
            let (producer, consumer) = memory::channel::<Execution>(QUEUE, 1024);
            (
                Producer::Memory(producer.with_telemetry(telemetry)),
                Consumer::Memory(consumer),
            )
        }
        Broker::Redis(url) => {
            let client = ::redis::Client::open(url.as_str()).map_err(io)?;
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(io)?;
            // A fresh stream: the demo's worker must not replay an earlier run's executions.
            let mut admin = conn.clone();
            ::redis::cmd("DEL")
                .arg(QUEUE)
                .query_async::<()>(&mut admin)
                .await
                .map_err(io)?;
            let consumer = RedisConsumer::connect(&client, QUEUE, "workers", "worker-1")
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .with_block(std::time::Duration::from_millis(200));
            let producer = RedisProducer::new(conn).with_telemetry(telemetry);
            (Producer::Redis(producer), Consumer::Redis(consumer))
        }
        Broker::Nats(url) => {
            let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
            let client = async_nats::connect(url.as_str())
                .await
                .map_err(|e| other(&e))?;
            // A fresh stream: the demo's worker must not replay an earlier run's executions.
            let js = async_nats::jetstream::new(client.clone());
            let _ = js.delete_stream(NATS_STREAM).await;
            let mut config = NatsConsumerConfig::new(NATS_STREAM, QUEUE, "workers");
            config.wait = std::time::Duration::from_millis(200);
            let consumer = NatsConsumer::connect(url, config)
                .await
                .map_err(|e| other(&e))?;
            let producer = NatsProducer::new(client).with_telemetry(telemetry);
            (Producer::Nats(producer), Consumer::Nats(Box::new(consumer)))
        }
        Broker::Amqp(url) => {
            let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
            // A fresh queue: the demo's worker must not replay an earlier run's executions.
            let connection =
                lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                    .await
                    .map_err(|e| other(&e))?;
            let channel = connection.create_channel().await.map_err(|e| other(&e))?;
            channel
                .queue_delete(QUEUE.into(), Default::default())
                .await
                .map_err(|e| other(&e))?;
            let _ = connection.close(200, "queue deleted".into()).await;
            let mut config = AmqpConsumerConfig::new(QUEUE);
            config.wait = std::time::Duration::from_millis(200);
            let consumer = AmqpConsumer::connect(url, config)
                .await
                .map_err(|e| other(&e))?;
            let producer = AmqpProducer::new(url).with_telemetry(telemetry);
            (Producer::Amqp(producer), Consumer::Amqp(Box::new(consumer)))
        }
    })
}

/// Starts the downstream service, the API and the worker on 127.0.0.1 with the in-process
/// queue, all recording with `telemetry` (`&telemetry` after `init`, so metrics are recorded
/// too, or a test provider's tracer).
pub async fn start(telemetry: impl Into<TelemetryHandle>) -> std::io::Result<Journey> {
    start_with(telemetry, &Broker::Memory).await
}

/// [`start`] with a chosen broker.
pub async fn start_with(
    telemetry: impl Into<TelemetryHandle>,
    broker_kind: &Broker,
) -> std::io::Result<Journey> {
    let telemetry: TelemetryHandle = telemetry.into();
    let tracer = telemetry.tracer().clone();
    let downstream = Router::new()
        .route(STEP_ROUTE, post(step))
        .layer(ServerTraceLayer::new().with_telemetry(&telemetry));
    let (downstream_addr, downstream_task) = serve(downstream).await?;

    let (notifier_addr, notifier_task) = crate::notifier::serve(telemetry.clone()).await?;
    let notifier = crate::notifier::NotifierClient::new(notifier_addr, telemetry.clone());

    let (producer, mut consumer) = broker(broker_kind, &telemetry).await?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientTraceMiddleware::new().with_telemetry(&telemetry))
        .build();
    let api = Api {
        tracer: tracer.clone(),
        http,
        downstream: downstream_addr,
        producer,
    };
    let app = Router::new()
        .route(EXECUTE_ROUTE, post(execute))
        .route(EVENTS_ROUTE, get(events))
        .with_state(Arc::new(api))
        .layer(ServerTraceLayer::new().with_telemetry(&telemetry));
    let (api_addr, api_task) = serve(app).await?;

    // The handler hands the execution over; the loop reports it once `process` has returned,
    // that is after the consumer span has ended.
    let (done_tx, processed) = mpsc::channel(1024);
    let (handled_tx, mut handled) = mpsc::unbounded_channel();
    let worker_tracer = tracer.clone();
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_telemetry(&telemetry))
        .service_fn(move |msg: TracedMessage<Execution>| {
            let (tracer, handled) = (worker_tracer.clone(), handled_tx.clone());
            let mut notifier = notifier.clone();
            async move {
                let step = span::start_in(
                    &tracer,
                    &Context::current(),
                    span::WORKFLOW_STEP_EXECUTE,
                    SpanKind::Internal,
                    span::node_attributes("notify", "notify"),
                );
                let execution_id = msg.payload().execution_id.clone();
                let sent = opentelemetry::trace::FutureExt::with_context(
                    notifier.notify(&execution_id),
                    step.clone(),
                )
                .await;
                if let Err(error) = &sent {
                    span::record_error(&step, error);
                }
                step.span().end();
                handled
                    .send(msg.into_payload())
                    .map_err(|_| "the worker loop is gone")
            }
        });
    let worker_task = tokio::spawn(async move {
        loop {
            let more = match &mut consumer {
                Consumer::Memory(c) => c.process(&mut worker).await.is_some(),
                Consumer::Redis(c) => c.process(&mut worker).await.is_ok(),
                Consumer::Nats(c) => c.process(&mut worker).await.is_ok(),
                Consumer::Amqp(c) => c.process(&mut worker).await.is_ok(),
            };
            while let Ok(execution) = handled.try_recv() {
                let _ = done_tx.send(execution).await;
            }
            if !more {
                break;
            }
        }
    });

    Ok(Journey {
        api: api_addr,
        downstream: downstream_addr,
        notifier: notifier_addr,
        processed,
        tasks: vec![downstream_task, notifier_task, api_task, worker_task],
    })
}

/// Calls the API like a user would (no trace context of its own): returns the response body.
pub async fn execute_workflow(api: SocketAddr, workflow_id: &str) -> reqwest::Result<String> {
    reqwest::Client::new()
        .post(format!(
            "http://{api}/api/v1/workflows/{workflow_id}/execute"
        ))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

async fn serve(app: Router) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    Ok((addr, task))
}

/// `POST /api/v1/workflows/{id}/execute`: runs the workflow's HTTP step, then queues the rest.
/// Server-sent events of a workflow's progress: the stream runs in the request's context.
async fn events(
    State(api): State<Arc<Api>>,
    Path(workflow_id): Path<String>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use opentelemetry::trace::{Span as _, Tracer as _};
    let tracer = api.tracer.clone();
    let stream = futures_util::stream::unfold(0u32, move |step| {
        let (tracer, workflow_id) = (tracer.clone(), workflow_id.clone());
        async move {
            if step == 3 {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let mut span = tracer.start("workflow.progress");
            span.set_attribute(KeyValue::new("step", i64::from(step)));
            span.end();
            let event = axum::response::sse::Event::default()
                .event("progress")
                .data(format!("{workflow_id} step {step}"));
            Some((Ok(event), step + 1))
        }
    });
    axum::response::sse::Sse::new(stream)
}

async fn execute(
    State(api): State<Arc<Api>>,
    Path(workflow_id): Path<String>,
) -> Result<Json<Execution>, (axum::http::StatusCode, String)> {
    let execution = Execution {
        workflow_id,
        execution_id: format!("exec-{}", std::process::id()),
    };
    // Inside the server span: the log line carries its trace_id and span_id.
    tracing::info!(workflow_id = %execution.workflow_id, "executing workflow");
    let workflow = span::start_in(
        &api.tracer,
        &Context::current(),
        span::WORKFLOW_EXECUTE,
        SpanKind::Internal,
        span::workflow_attributes("tenant-1", &execution.workflow_id, &execution.execution_id),
    );
    let result = async {
        span::record_event("workflow.started", [KeyValue::new("steps", 2_i64)]);
        let step = span::start_in(
            &api.tracer,
            &Context::current(),
            span::WORKFLOW_STEP_EXECUTE,
            SpanKind::Internal,
            span::node_attributes("fetch", "http"),
        );
        let call = api
            .http
            .post(format!("http://{}/api/v1/steps/fetch", api.downstream))
            .json(&execution)
            .send();
        let response = opentelemetry::trace::FutureExt::with_context(call, step.clone()).await;
        if let Err(error) = &response {
            span::record_error(&step, error);
        }
        step.span().end();
        api.producer
            .send(execution.clone())
            .await
            .map_err(|e| (axum::http::StatusCode::SERVICE_UNAVAILABLE, e))?;
        Ok(Json(execution))
    };
    let result = opentelemetry::trace::FutureExt::with_context(result, workflow.clone()).await;
    if let Err((_, error)) = &result {
        span::record_error(&workflow, &std::io::Error::other(error.clone()));
    }
    workflow.span().end();
    result
}

/// The downstream service's step endpoint: echoes the execution.
async fn step(
    Path(node): Path<String>,
    Json(execution): Json<Execution>,
) -> Json<(String, Execution)> {
    Json((node, execution))
}
