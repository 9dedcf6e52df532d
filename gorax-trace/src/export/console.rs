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

    let mut tree = Tree {
        out,
        spans,
        children: &children,
        visited: vec![false; spans.len()],
        style,
    };
    for root in roots {
        tree.render(root, "", None);
    }
    // Spans caught in a parent cycle are unreachable from any root.
    while let Some(i) = tree.visited.iter().position(|v| !v) {
        tree.render(i, "", None);
    }
    tree.out
}

/// One trace being rendered: the spans, their children (sorted), which are drawn, the text.
struct Tree<'a> {
    out: String,
    spans: &'a [SpanData],
    children: &'a [Vec<usize>],
    visited: Vec<bool>,
    style: Style,
}

/// Renders `spans[idx]` and its subtree. `last` is `None` for a root, else
/// whether the span is the last of its siblings.
impl Tree<'_> {
    fn render(&mut self, idx: usize, prefix: &str, last: Option<bool>) {
        self.visited[idx] = true;
        let (spans, children, style) = (self.spans, self.children, self.style);
        let out = &mut self.out;
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
        let kids: Vec<usize> = kids.iter().copied().filter(|&c| !self.visited[c]).collect();
        for (n, &child) in kids.iter().enumerate() {
            self.render(child, &child_prefix, Some(n + 1 == kids.len()));
        }
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
#[path = "console_tests.rs"]
mod tests;
