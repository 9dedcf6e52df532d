//! Human-readable span exporter that prints every finished trace as a tree.
//!
//! [`ConsoleExporter`] is meant for local development: plug it into a
//! [`SdkTracerProvider`](opentelemetry_sdk::trace::SdkTracerProvider) and each
//! request shows up on stderr as one indented block:
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736  (gorax-api)
//! HTTP POST /api/v1/workflows/{id}/execute  SERVER  12.31ms  http.request.method=POST http.response.status_code=200
//! └─ workflow.execute  INTERNAL  10.02ms  workflow_id=wf-1
//!    ├─ workflow.step.execute  INTERNAL  3.10ms  node_id=n1
//!    │  └─ POST  CLIENT  2.40ms  ERROR: connection refused  error.type=connect
//!    │     • exception  exception.message=connection refused
//!    └─ send gorax-executions  PRODUCER  200µs
//!       └─ process gorax-executions  CONSUMER  1.50ms
//! ```
//!
//! # Line format
//!
//! Every span line holds the span name, its kind (`SERVER`, `CLIENT`,
//! `PRODUCER`, `CONSUMER`, `INTERNAL`), its duration (`µs`, `ms` or `s`), its
//! status (nothing when unset, `OK`, or `ERROR: <description>`) and its
//! attributes as `key=value`. At most
//! [`with_max_attributes`](ConsoleExporter::with_max_attributes) attributes
//! are shown (12 by default), the rest is summarised as `…+N`; string values
//! longer than 80 characters are cut with `…`. Events follow on their own
//! lines as `• name key=value…`, links as `↪ link trace=<id> span=<id>`.
//!
//! Children are sorted by start time. A span is printed as a root when it has
//! no parent or when its parent is not among the buffered spans of the trace;
//! such roots are marked `(parent <span id> remote)` when the parent lives in
//! another process, or `(parent <span id> missing)` otherwise.
//!
//! # Buffering
//!
//! The spans of one trace reach an exporter in several batches: children end
//! before their parents, and a queue consumer may end after the HTTP request
//! that enqueued its message. The exporter therefore buffers spans by trace id
//! and prints a trace once it holds a root span (no parent, or a remote
//! parent) and no new span of that trace arrived for the
//! [`linger`](ConsoleExporter::with_linger) time (300 ms by default). A trace
//! without such a root is printed as it is after ten times the linger time.
//! Buffered traces are checked on every export and by a small background
//! thread that the exporter starts on its first export and stops on shutdown
//! (or when it is dropped).
//!
//! The buffer is bounded by
//! [`with_max_buffered_spans`](ConsoleExporter::with_max_buffered_spans)
//! (10 000 spans by default): when it overflows, the oldest traces are printed
//! right away, followed by `(incomplete: buffer full)`. `force_flush` and
//! `shutdown` print everything still buffered.
//!
//! Each trace is written with a single `write_all`, so concurrent traces never
//! interleave. ANSI colours (bold names, dim durations, red errors) are only
//! used when writing to a terminal and `NO_COLOR` is not set; see
//! [`with_color`](ConsoleExporter::with_color).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

const DEFAULT_LINGER: Duration = Duration::from_millis(300);
const DEFAULT_MAX_BUFFERED_SPANS: usize = 10_000;
const DEFAULT_MAX_ATTRIBUTES: usize = 12;
/// String attribute values longer than this (in chars) are truncated.
const MAX_VALUE_CHARS: usize = 80;
/// Traces without a root are printed after `linger * ORPHAN_FACTOR`.
const ORPHAN_FACTOR: u32 = 10;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// A [`SpanExporter`] that prints finished traces to the console as trees.
///
/// Each trace becomes a `trace <id>  (<service.name>)` header followed by one
/// line per span — `name  KIND  duration  [OK | ERROR: …]  key=value…`,
/// children indented under their parent with `├─`/`└─` and sorted by start
/// time — with events (`• name key=value…`) and links
/// (`↪ link trace=<id> span=<id>`) on their own lines. Roots whose parent is
/// not buffered are marked `(parent <id> remote)` or `(parent <id> missing)`.
///
/// Spans are buffered by trace id: a trace is printed once it has a root span
/// (no parent or a remote parent) and no span of it arrived for the
/// [linger](Self::with_linger) time, or after ten times that without a root.
/// A background thread started by the first export checks the buffer every
/// half linger; `force_flush`, `shutdown` and dropping the exporter print
/// everything still buffered. When more than
/// [`max_buffered_spans`](Self::with_max_buffered_spans) spans are buffered
/// the oldest traces are printed at once, marked
/// `(incomplete: buffer full)`. Every trace is written with one `write_all`.
///
/// ```
/// use gorax_trace::export::ConsoleExporter;
/// use opentelemetry::trace::{Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use std::time::Duration;
///
/// let provider = SdkTracerProvider::builder()
///     .with_simple_exporter(
///         ConsoleExporter::new()
///             .with_writer(std::io::stdout())
///             .with_linger(Duration::from_millis(100)),
///     )
///     .build();
/// let tracer = provider.tracer("example");
/// tracer.in_span("parent", |_| tracer.in_span("child", |_| {}));
/// // Prints whatever is still buffered.
/// provider.shutdown().unwrap();
/// ```
pub struct ConsoleExporter {
    state: Arc<Mutex<State>>,
    ticker: Mutex<Option<Ticker>>,
}

/// The background thread that prints lingering traces.
struct Ticker {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

/// Everything shared between the exporter and its ticker thread.
struct State {
    writer: Box<dyn Write + Send>,
    style: Style,
    linger: Duration,
    max_buffered_spans: usize,
    service_name: Option<String>,
    buffer: TraceBuffer,
    shut_down: bool,
    /// A write error hit by the ticker thread, reported by the next export.
    pending_error: Option<String>,
}

#[derive(Clone, Copy)]
struct Style {
    color: bool,
    max_attributes: usize,
}

/// Spans waiting for their trace to complete, grouped by trace id.
#[derive(Default)]
struct TraceBuffer {
    traces: HashMap<TraceId, PendingTrace>,
    span_count: usize,
    next_seq: u64,
}

struct PendingTrace {
    /// Arrival order of the trace's first span; older traces print first.
    seq: u64,
    last_arrival: Instant,
    has_root: bool,
    spans: Vec<SpanData>,
}

impl TraceBuffer {
    fn push(&mut self, span: SpanData, now: Instant) {
        let next_seq = &mut self.next_seq;
        let trace = self
            .traces
            .entry(span.span_context.trace_id())
            .or_insert_with(|| {
                *next_seq += 1;
                PendingTrace {
                    seq: *next_seq,
                    last_arrival: now,
                    has_root: false,
                    spans: Vec::new(),
                }
            });
        trace.last_arrival = now;
        trace.has_root |= span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        trace.spans.push(span);
        self.span_count += 1;
    }

    /// Removes the traces selected by `pick`, oldest first.
    fn take(
        &mut self,
        mut pick: impl FnMut(&PendingTrace) -> bool,
    ) -> Vec<(TraceId, Vec<SpanData>)> {
        let mut ids: Vec<(u64, TraceId)> = self
            .traces
            .iter()
            .filter(|(_, t)| pick(t))
            .map(|(id, t)| (t.seq, *id))
            .collect();
        ids.sort_unstable_by_key(|(seq, _)| *seq);
        ids.into_iter()
            .filter_map(|(_, id)| self.traces.remove(&id).map(|t| (id, t.spans)))
            .inspect(|(_, spans)| self.span_count -= spans.len())
            .collect()
    }

    /// Removes the oldest traces until at most `max` spans remain.
    fn take_overflow(&mut self, max: usize) -> Vec<(TraceId, Vec<SpanData>)> {
        let mut out = Vec::new();
        while self.span_count > max {
            let Some(oldest) = self
                .traces
                .iter()
                .min_by_key(|(_, t)| t.seq)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(trace) = self.traces.remove(&oldest) {
                self.span_count -= trace.spans.len();
                out.push((oldest, trace.spans));
            }
        }
        out
    }
}

impl State {
    /// Prints overflowing traces, then the complete ones (or all of them).
    fn drain(&mut self, now: Instant, all: bool) -> OTelSdkResult {
        let mut output = Vec::new();
        for (id, spans) in self.buffer.take_overflow(self.max_buffered_spans) {
            output.push(self.render(id, &spans, true));
        }
        let (linger, orphan) = (self.linger, self.linger.saturating_mul(ORPHAN_FACTOR));
        let ready = self.buffer.take(|t| {
            let idle = now.saturating_duration_since(t.last_arrival);
            all || idle >= if t.has_root { linger } else { orphan }
        });
        for (id, spans) in ready {
            output.push(self.render(id, &spans, false));
        }
        if output.is_empty() {
            return Ok(());
        }
        output
            .iter()
            .try_for_each(|text| self.writer.write_all(text.as_bytes()))
            .and_then(|()| self.writer.flush())
            .map_err(|err| OTelSdkError::InternalFailure(format!("console exporter: {err}")))
    }

    fn render(&self, id: TraceId, spans: &[SpanData], incomplete: bool) -> String {
        render_trace(
            id,
            spans,
            self.service_name.as_deref(),
            incomplete,
            self.style,
        )
    }

    fn take_pending_error(&mut self) -> OTelSdkResult {
        match self.pending_error.take() {
            Some(err) => Err(OTelSdkError::InternalFailure(err)),
            None => Ok(()),
        }
    }
}

impl ConsoleExporter {
    /// Creates an exporter that writes to stderr, with colours when stderr is
    /// a terminal and the `NO_COLOR` environment variable is unset or empty.
    pub fn new() -> Self {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self {
            state: Arc::new(Mutex::new(State {
                writer: Box::new(std::io::stderr()),
                style: Style {
                    color,
                    max_attributes: DEFAULT_MAX_ATTRIBUTES,
                },
                linger: DEFAULT_LINGER,
                max_buffered_spans: DEFAULT_MAX_BUFFERED_SPANS,
                service_name: None,
                buffer: TraceBuffer::default(),
                shut_down: false,
                pending_error: None,
            })),
            ticker: Mutex::new(None),
        }
    }

    /// Writes to `writer` instead of stderr. Colours are turned off; call
    /// [`with_color`](Self::with_color) afterwards to turn them back on.
    pub fn with_writer<W: Write + Send + 'static>(self, writer: W) -> Self {
        {
            let mut state = self.lock();
            state.writer = Box::new(writer);
            state.style.color = false;
        }
        self
    }

    /// Forces ANSI colours on or off.
    pub fn with_color(self, color: bool) -> Self {
        self.lock().style.color = color;
        self
    }

    /// Sets how long a trace must stay quiet before it is printed
    /// (300 ms by default).
    pub fn with_linger(self, linger: Duration) -> Self {
        self.lock().linger = linger;
        self
    }

    /// Sets how many spans may be buffered before the oldest traces are
    /// printed incomplete (10 000 by default).
    pub fn with_max_buffered_spans(self, max: usize) -> Self {
        self.lock().max_buffered_spans = max;
        self
    }

    /// Sets how many attributes are printed per span, event or link before the
    /// rest is summarised as `…+N` (12 by default).
    pub fn with_max_attributes(self, max: usize) -> Self {
        self.lock().style.max_attributes = max;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn export_sync(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let linger = {
            let mut state = self.lock();
            if state.shut_down {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            let now = Instant::now();
            for span in batch {
                state.buffer.push(span, now);
            }
            state.take_pending_error()?;
            state.drain(now, false)?;
            state.linger
        };
        self.start_ticker(linger);
        Ok(())
    }

    /// Starts the background thread unless it is already running.
    fn start_ticker(&self, linger: Duration) {
        let mut ticker = lock(&self.ticker);
        if ticker.is_some() || self.lock().shut_down {
            return;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let weak: Weak<Mutex<State>> = Arc::downgrade(&self.state);
        let period = (linger / 2).max(Duration::from_millis(1));
        let spawned = std::thread::Builder::new()
            .name("console-span-exporter".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let Some(state) = weak.upgrade() else { break };
                    let mut state = lock(&state);
                    if let Err(err) = state.drain(Instant::now(), false) {
                        state.pending_error = Some(err.to_string());
                    }
                }
            });
        // Without a thread, traces are still printed by later exports.
        if let Ok(handle) = spawned {
            *ticker = Some(Ticker { stop, handle });
        }
    }

    fn stop_ticker(&self) {
        if let Some(Ticker { stop, handle }) = lock(&self.ticker).take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for ConsoleExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ConsoleExporter")
            .field("color", &state.style.color)
            .field("linger", &state.linger)
            .field("max_buffered_spans", &state.max_buffered_spans)
            .field("max_attributes", &state.style.max_attributes)
            .field("service_name", &state.service_name)
            .field("buffered_spans", &state.buffer.span_count)
            .field("shut_down", &state.shut_down)
            .finish_non_exhaustive()
    }
}

impl SpanExporter for ConsoleExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.export_sync(batch))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.stop_ticker();
        let mut state = self.lock();
        if state.shut_down {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.shut_down = true;
        state.take_pending_error()?;
        state.drain(Instant::now(), true)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut state = self.lock();
        state.take_pending_error()?;
        state.drain(Instant::now(), true)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.lock().service_name = resource
            .get(&Key::from_static_str("service.name"))
            .map(|name| name.to_string());
    }
}

impl Drop for ConsoleExporter {
    fn drop(&mut self) {
        self.stop_ticker();
        let mut state = self.lock();
        if !state.shut_down {
            state.shut_down = true;
            let _ = state.drain(Instant::now(), true);
        }
    }
}

/// Renders one trace: a header line, then every root subtree.
fn render_trace(
    trace_id: TraceId,
    spans: &[SpanData],
    service: Option<&str>,
    incomplete: bool,
    style: Style,
) -> String {
    let mut out = String::new();
    paint(&mut out, style.color, BOLD, &format!("trace {trace_id}"));
    if let Some(service) = service {
        let _ = write!(out, "  ({service})");
    }
    out.push('\n');
    if incomplete {
        out.push_str("(incomplete: buffer full)\n");
    }

    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_context.span_id(), i))
        .collect();
    let mut children = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match index.get(&span.parent_span_id) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    let by_start = |a: &usize, b: &usize| spans[*a].start_time.cmp(&spans[*b].start_time);
    roots.sort_by(by_start);
    children.iter_mut().for_each(|c| c.sort_by(by_start));

    let mut visited = vec![false; spans.len()];
    for root in roots {
        render_span(
            &mut out,
            spans,
            &children,
            &mut visited,
            root,
            "",
            None,
            style,
        );
    }
    // Spans caught in a parent cycle are unreachable from any root.
    while let Some(i) = visited.iter().position(|v| !v) {
        render_span(&mut out, spans, &children, &mut visited, i, "", None, style);
    }
    out
}

/// Renders `spans[idx]` and its subtree. `last` is `None` for a root, else
/// whether the span is the last of its siblings.
#[allow(clippy::too_many_arguments)]
fn render_span(
    out: &mut String,
    spans: &[SpanData],
    children: &[Vec<usize>],
    visited: &mut [bool],
    idx: usize,
    prefix: &str,
    last: Option<bool>,
    style: Style,
) {
    visited[idx] = true;
    let span = &spans[idx];
    let (branch, indent) = match last {
        None => ("", ""),
        Some(true) => ("└─ ", "   "),
        Some(false) => ("├─ ", "│  "),
    };
    out.push_str(prefix);
    out.push_str(branch);
    paint(out, style.color, BOLD, &span.name);
    out.push_str("  ");
    out.push_str(kind_name(&span.span_kind));
    out.push_str("  ");
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    paint(out, style.color, DIM, &format_duration(duration));
    match &span.status {
        Status::Unset => {}
        Status::Ok => out.push_str("  OK"),
        Status::Error { description } => {
            out.push_str("  ");
            let text = if description.is_empty() {
                "ERROR".to_owned()
            } else {
                format!("ERROR: {description}")
            };
            paint(out, style.color, RED, &text);
        }
    }
    push_attributes(out, &span.attributes, span.dropped_attributes_count, style);
    if last.is_none() && span.parent_span_id != SpanId::INVALID {
        let origin = if span.parent_span_is_remote {
            "remote"
        } else {
            "missing"
        };
        let _ = write!(out, "  (parent {} {origin})", span.parent_span_id);
    }
    out.push('\n');

    let child_prefix = format!("{prefix}{indent}");
    let kids = &children[idx];
    let detail_prefix = if kids.is_empty() {
        child_prefix.clone()
    } else {
        format!("{child_prefix}│  ")
    };
    for event in span.events.iter() {
        let _ = write!(out, "{detail_prefix}• {}", event.name);
        push_attributes(
            out,
            &event.attributes,
            event.dropped_attributes_count,
            style,
        );
        out.push('\n');
    }
    for link in span.links.iter() {
        let ctx = &link.span_context;
        let _ = write!(
            out,
            "{detail_prefix}↪ link trace={} span={}",
            ctx.trace_id(),
            ctx.span_id()
        );
        push_attributes(out, &link.attributes, link.dropped_attributes_count, style);
        out.push('\n');
    }
    let kids: Vec<usize> = kids.iter().copied().filter(|&c| !visited[c]).collect();
    for (n, &child) in kids.iter().enumerate() {
        let last = Some(n + 1 == kids.len());
        render_span(
            out,
            spans,
            children,
            visited,
            child,
            &child_prefix,
            last,
            style,
        );
    }
}

/// Appends `  k=v k=v …+N` (nothing when there are no attributes).
fn push_attributes(out: &mut String, attributes: &[KeyValue], dropped: u32, style: Style) {
    let hidden = attributes.len().saturating_sub(style.max_attributes) + dropped as usize;
    if attributes.is_empty() && hidden == 0 {
        return;
    }
    out.push(' ');
    for kv in attributes.iter().take(style.max_attributes) {
        let _ = write!(out, " {}=", kv.key);
        match &kv.value {
            Value::String(s) if s.as_str().chars().count() > MAX_VALUE_CHARS => {
                out.extend(s.as_str().chars().take(MAX_VALUE_CHARS));
                out.push('…');
            }
            value => {
                let _ = write!(out, "{value}");
            }
        }
    }
    if hidden > 0 {
        let _ = write!(out, " …+{hidden}");
    }
}

fn paint(out: &mut String, color: bool, code: &str, text: &str) {
    if color {
        let _ = write!(out, "{code}{text}{RESET}");
    } else {
        out.push_str(text);
    }
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

/// `850µs`, `12.31ms`, `3.20s` (truncated, not rounded).
fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos < 1_000_000 {
        format!("{}µs", nanos / 1_000)
    } else if nanos < 1_000_000_000 {
        format!("{}.{:02}ms", nanos / 1_000_000, nanos / 10_000 % 100)
    } else {
        format!("{}.{:02}s", nanos / 1_000_000_000, nanos / 10_000_000 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        Event, Link, SpanContext, TraceFlags, TraceState, Tracer, TracerProvider,
    };
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanEvents, SpanLinks};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::time::SystemTime;

    /// A cloneable in-memory writer.
    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct FailingWriter;

    impl Write for FailingWriter {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn buffered(linger: Duration) -> (ConsoleExporter, SharedBuf) {
        let buf = SharedBuf::default();
        let exporter = ConsoleExporter::new()
            .with_writer(buf.clone())
            .with_linger(linger);
        (exporter, buf)
    }

    fn export(exporter: &ConsoleExporter, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut future = pin!(exporter.export(batch));
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("export future is not ready"),
        }
    }

    fn trace_id(n: u128) -> TraceId {
        TraceId::from_bytes(n.to_be_bytes())
    }

    fn context(trace: u128, id: u64) -> SpanContext {
        SpanContext::new(
            trace_id(trace),
            SpanId::from_bytes(id.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    /// A span of `trace` starting `start_us` after the epoch and lasting `dur_us`.
    fn span(
        trace: u128,
        id: u64,
        parent: u64,
        name: &'static str,
        kind: SpanKind,
        start_us: u64,
        dur_us: u64,
    ) -> SpanData {
        let start_time = SystemTime::UNIX_EPOCH + Duration::from_micros(start_us);
        SpanData {
            span_context: context(trace, id),
            parent_span_id: SpanId::from_bytes(parent.to_be_bytes()),
            parent_span_is_remote: false,
            span_kind: kind,
            name: name.into(),
            start_time,
            end_time: start_time + Duration::from_micros(dur_us),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::default(),
        }
    }

    fn with_attrs(mut span: SpanData, attrs: Vec<KeyValue>) -> SpanData {
        span.attributes = attrs;
        span
    }

    /// The workflow trace of the module docs, children listed before parents
    /// and siblings out of start order.
    fn workflow_trace(trace: u128) -> Vec<SpanData> {
        use SpanKind::*;
        vec![
            span(
                trace,
                6,
                5,
                "process gorax-executions",
                Consumer,
                9_000,
                1_500,
            ),
            span(trace, 5, 2, "send gorax-executions", Producer, 8_000, 200),
            span(trace, 4, 3, "POST", Client, 2_000, 2_400),
            span(trace, 3, 2, "workflow.step.execute", Internal, 1_500, 3_100),
            with_attrs(
                span(trace, 2, 1, "workflow.execute", Internal, 1_000, 10_020),
                vec![KeyValue::new("workflow_id", "wf-1")],
            ),
            with_attrs(
                span(trace, 1, 0, "HTTP POST /execute", Server, 0, 12_310),
                vec![
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("http.response.status_code", 200),
                ],
            ),
        ]
    }

    const WORKFLOW_TREE: &str = "\
HTTP POST /execute  SERVER  12.31ms  http.request.method=POST http.response.status_code=200
└─ workflow.execute  INTERNAL  10.02ms  workflow_id=wf-1
   ├─ workflow.step.execute  INTERNAL  3.10ms
   │  └─ POST  CLIENT  2.40ms
   └─ send gorax-executions  PRODUCER  200µs
      └─ process gorax-executions  CONSUMER  1.50ms
";

    #[test]
    fn prints_three_level_tree_sorted_by_start_time() {
        let (exporter, buf) = buffered(Duration::ZERO);
        export(&exporter, workflow_trace(1)).unwrap();
        assert_eq!(
            buf.take(),
            format!("trace 00000000000000000000000000000001\n{WORKFLOW_TREE}")
        );
    }

    #[test]
    fn siblings_are_ordered_by_start_time() {
        use SpanKind::Internal;
        let (exporter, buf) = buffered(Duration::ZERO);
        let batch = vec![
            span(7, 4, 1, "third", Internal, 30, 1),
            span(7, 2, 1, "first", Internal, 10, 1),
            span(7, 3, 1, "second", Internal, 20, 1),
            span(7, 5, 3, "nested", Internal, 21, 1),
            span(7, 1, 0, "root", Internal, 0, 100),
        ];
        export(&exporter, batch).unwrap();
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000007\n\
             root  INTERNAL  100µs\n\
             ├─ first  INTERNAL  1µs\n\
             ├─ second  INTERNAL  1µs\n\
             │  └─ nested  INTERNAL  1µs\n\
             └─ third  INTERNAL  1µs\n"
        );
    }

    #[test]
    fn trace_split_over_exports_prints_once_on_force_flush() {
        let (exporter, buf) = buffered(HOUR);
        let mut spans = workflow_trace(1);
        let root = spans.pop().unwrap();
        export(&exporter, spans).unwrap();
        export(&exporter, vec![root]).unwrap();
        assert_eq!(buf.take(), "", "trace must linger");
        exporter.force_flush().unwrap();
        assert_eq!(
            buf.take(),
            format!("trace 00000000000000000000000000000001\n{WORKFLOW_TREE}")
        );
        exporter.force_flush().unwrap();
        assert_eq!(buf.take(), "");
    }

    #[test]
    fn ticker_prints_trace_after_linger() {
        let (exporter, buf) = buffered(Duration::from_millis(40));
        let mut spans = workflow_trace(1);
        let root = spans.pop().unwrap();
        export(&exporter, spans).unwrap();
        export(&exporter, vec![root]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = String::new();
        while out.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            out = buf.take();
        }
        assert_eq!(
            out,
            format!("trace 00000000000000000000000000000001\n{WORKFLOW_TREE}")
        );
        exporter.shutdown().unwrap();
        assert!(lock(&exporter.ticker).is_none());
        assert_eq!(buf.take(), "");
    }

    #[test]
    fn interleaved_traces_print_as_separate_trees() {
        use SpanKind::*;
        let (exporter, buf) = buffered(HOUR);
        export(
            &exporter,
            vec![
                span(0xa, 2, 1, "a.child", Internal, 5, 10),
                span(0xb, 2, 1, "b.child", Client, 5, 20),
            ],
        )
        .unwrap();
        export(
            &exporter,
            vec![
                span(0xb, 1, 0, "b.root", Server, 0, 30),
                span(0xa, 1, 0, "a.root", Server, 0, 40),
            ],
        )
        .unwrap();
        exporter.force_flush().unwrap();
        assert_eq!(
            buf.take(),
            "trace 0000000000000000000000000000000a\n\
             a.root  SERVER  40µs\n\
             └─ a.child  INTERNAL  10µs\n\
             trace 0000000000000000000000000000000b\n\
             b.root  SERVER  30µs\n\
             └─ b.child  CLIENT  20µs\n"
        );
    }

    #[test]
    fn renders_status_events_links_and_truncated_attributes() {
        let (exporter, buf) = buffered(Duration::ZERO);
        let exporter = exporter.with_max_attributes(2);
        let mut root = span(3, 1, 0, "root", SpanKind::Server, 0, 1_500_000);
        root.status = Status::Ok;
        root.links
            .links
            .push(Link::new(context(9, 0x42), vec![], 0));
        let mut client = span(3, 2, 1, "POST", SpanKind::Client, 10, 2_400);
        client.status = Status::error("connection refused");
        client.attributes = vec![
            KeyValue::new("error.type", "connect"),
            KeyValue::new("url.full", "x".repeat(100)),
            KeyValue::new("server.port", 443),
        ];
        client.dropped_attributes_count = 1;
        client.events.events.push(Event::new(
            "exception",
            SystemTime::UNIX_EPOCH,
            vec![KeyValue::new("exception.message", "refused")],
            0,
        ));
        let mut failed = span(3, 3, 1, "cache", SpanKind::Internal, 20, 2_000_000);
        failed.status = Status::error("");
        export(&exporter, vec![client, failed, root]).unwrap();
        assert_eq!(
            buf.take(),
            format!(
                "trace 00000000000000000000000000000003\n\
                 root  SERVER  1.50s  OK\n\
                 │  ↪ link trace=00000000000000000000000000000009 span=0000000000000042\n\
                 ├─ POST  CLIENT  2.40ms  ERROR: connection refused  error.type=connect url.full={}… …+2\n\
                 │  • exception  exception.message=refused\n\
                 └─ cache  INTERNAL  2.00s  ERROR\n",
                "x".repeat(80)
            )
        );
    }

    #[test]
    fn full_buffer_prints_oldest_trace_incomplete() {
        use SpanKind::Internal;
        let (exporter, buf) = buffered(HOUR);
        let exporter = exporter.with_max_buffered_spans(3);
        export(
            &exporter,
            vec![
                span(1, 2, 1, "one.child", Internal, 5, 1),
                span(1, 3, 1, "one.other", Internal, 6, 1),
            ],
        )
        .unwrap();
        assert_eq!(buf.take(), "");
        export(
            &exporter,
            vec![
                span(2, 2, 1, "two.child", Internal, 5, 1),
                span(2, 1, 0, "two.root", Internal, 0, 9),
            ],
        )
        .unwrap();
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000001\n\
             (incomplete: buffer full)\n\
             one.child  INTERNAL  1µs  (parent 0000000000000001 missing)\n\
             one.other  INTERNAL  1µs  (parent 0000000000000001 missing)\n"
        );
        exporter.shutdown().unwrap();
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000002\n\
             two.root  INTERNAL  9µs\n\
             └─ two.child  INTERNAL  1µs\n"
        );
    }

    #[test]
    fn colour_only_when_enabled() {
        let root = || vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)];
        let (plain, buf) = buffered(Duration::ZERO);
        export(&plain, root()).unwrap();
        assert!(!buf.take().contains('\x1b'));

        let (colored, buf) = buffered(Duration::ZERO);
        let colored = colored.with_color(true);
        let mut failing = span(1, 2, 1, "child", SpanKind::Client, 1, 2);
        failing.status = Status::error("boom");
        let mut batch = root();
        batch.push(failing);
        export(&colored, batch).unwrap();
        assert_eq!(
            buf.take(),
            "\x1b[1mtrace 00000000000000000000000000000001\x1b[0m\n\
             \x1b[1mroot\x1b[0m  SERVER  \x1b[2m5µs\x1b[0m\n\
             └─ \x1b[1mchild\x1b[0m  CLIENT  \x1b[2m2µs\x1b[0m  \x1b[31mERROR: boom\x1b[0m\n"
        );
    }

    #[test]
    fn remote_parent_root_is_marked_and_ready() {
        let (exporter, buf) = buffered(Duration::ZERO);
        let mut root = span(5, 1, 0xfeed, "GET /items", SpanKind::Server, 0, 1_000);
        root.parent_span_is_remote = true;
        let child = span(5, 2, 1, "db.query", SpanKind::Client, 10, 500);
        export(&exporter, vec![child, root]).unwrap();
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000005\n\
             GET /items  SERVER  1.00ms  (parent 000000000000feed remote)\n\
             └─ db.query  CLIENT  500µs\n"
        );
    }

    #[test]
    fn orphans_wait_for_their_parent_until_flushed() {
        let (exporter, buf) = buffered(Duration::ZERO);
        export(
            &exporter,
            vec![span(6, 2, 1, "child", SpanKind::Internal, 5, 1)],
        )
        .unwrap();
        // Without a root a trace waits ten times the linger time (zero here).
        assert!(
            buf.take()
                .starts_with("trace 00000000000000000000000000000006\n")
        );

        let (exporter, buf) = buffered(HOUR);
        export(
            &exporter,
            vec![span(6, 2, 1, "child", SpanKind::Internal, 5, 1)],
        )
        .unwrap();
        assert_eq!(buf.take(), "");
        exporter.force_flush().unwrap();
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000006\n\
             child  INTERNAL  1µs  (parent 0000000000000001 missing)\n"
        );
    }

    #[test]
    fn export_after_shutdown_fails() {
        let (exporter, buf) = buffered(HOUR);
        export(
            &exporter,
            vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)],
        )
        .unwrap();
        exporter.shutdown().unwrap();
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000001\nroot  SERVER  5µs\n"
        );
        let result = export(
            &exporter,
            vec![span(1, 2, 1, "late", SpanKind::Server, 0, 5)],
        );
        assert!(matches!(result, Err(OTelSdkError::AlreadyShutdown)));
        assert!(matches!(
            exporter.shutdown(),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert_eq!(buf.take(), "");
    }

    #[test]
    fn write_errors_are_reported_not_panicked() {
        let exporter = ConsoleExporter::new()
            .with_writer(FailingWriter)
            .with_linger(Duration::ZERO);
        let result = export(
            &exporter,
            vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)],
        );
        match result {
            Err(OTelSdkError::InternalFailure(message)) => {
                assert!(message.contains("disk on fire"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn works_with_sdk_provider_and_resource() {
        let buf = SharedBuf::default();
        let provider = SdkTracerProvider::builder()
            .with_resource(
                Resource::builder_empty()
                    .with_service_name("gorax-api")
                    .build(),
            )
            .with_simple_exporter(
                ConsoleExporter::new()
                    .with_writer(buf.clone())
                    .with_linger(HOUR),
            )
            .build();
        let tracer = provider.tracer("test");
        let trace_id = tracer.in_span("parent", |cx| {
            use opentelemetry::trace::TraceContextExt;
            tracer.in_span("child", |_| {});
            cx.span().span_context().trace_id()
        });
        assert_eq!(buf.take(), "");
        provider.shutdown().unwrap();
        let out = buf.take();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], format!("trace {trace_id}  (gorax-api)"));
        assert!(lines[1].starts_with("parent  INTERNAL  "), "{out}");
        assert!(lines[2].starts_with("└─ child  INTERNAL  "), "{out}");
    }

    #[test]
    fn drop_flushes_buffered_traces() {
        let (exporter, buf) = buffered(HOUR);
        export(
            &exporter,
            vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)],
        )
        .unwrap();
        drop(exporter);
        assert_eq!(
            buf.take(),
            "trace 00000000000000000000000000000001\nroot  SERVER  5µs\n"
        );
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(Duration::from_nanos(999)), "0µs");
        assert_eq!(format_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(format_duration(Duration::from_micros(12_319)), "12.31ms");
        assert_eq!(format_duration(Duration::from_millis(999)), "999.00ms");
        assert_eq!(format_duration(Duration::from_millis(3_205)), "3.20s");
    }

    #[test]
    fn debug_shows_configuration() {
        let (exporter, _) = buffered(HOUR);
        let debug = format!("{exporter:?}");
        assert!(
            debug.starts_with("ConsoleExporter { color: false, linger: 3600s"),
            "{debug}"
        );
    }
}
