//! The consumer response future.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use pin_project_lite::pin_project;

use crate::attributes;
use crate::metrics::{MessageMetrics, PANIC};

pin_project! {
    /// The future of [`ConsumerTraceService`](crate::ConsumerTraceService).
    ///
    /// The consumer span's context is current while the handler's future is polled. The span
    /// ends when the handler finishes: `Ok` leaves the status unset, `Err` is an error. If the
    /// handler panics (or the future is dropped unfinished while the thread panics) the span
    /// ends as an error of type `panic`.
    pub struct ConsumerFuture<F> {
        #[pin]
        inner: F,
        cx: Context,
        done: bool,
        metrics: Option<MessageMetrics>,
    }

    impl<F> PinnedDrop for ConsumerFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                let span = this.cx.span();
                let panicking = std::thread::panicking();
                if panicking {
                    attributes::record_panic(&span);
                }
                if let Some(m) = this.metrics.take() {
                    m.finish(panicking.then_some(PANIC), span.span_context());
                }
                span.end();
            }
        }
    }
}

impl<F> std::fmt::Debug for ConsumerFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerFuture").finish_non_exhaustive()
    }
}

impl<F> ConsumerFuture<F> {
    pub(crate) fn new(inner: F, cx: Context, metrics: Option<MessageMetrics>) -> Self {
        Self {
            inner,
            cx,
            done: false,
            metrics,
        }
    }
}

impl<F, R, E> Future for ConsumerFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _active = this.cx.clone().attach();
            // A panic is recorded here, not only in `drop`: a caller that catches it (the
            // processing loop does) drops this future later, when the thread is not panicking.
            std::panic::catch_unwind(AssertUnwindSafe(|| this.inner.poll(task)))
        };
        let result = match polled {
            Ok(poll) => ready!(poll),
            Err(panic) => {
                *this.done = true;
                let span = this.cx.span();
                attributes::record_panic(&span);
                if let Some(m) = this.metrics.take() {
                    m.finish(Some(PANIC), span.span_context());
                }
                span.end();
                std::panic::resume_unwind(panic);
            }
        };
        *this.done = true;
        let span = this.cx.span();
        if let Err(error) = &result {
            attributes::record_process_error(&span, error);
        }
        if let Some(m) = this.metrics.take() {
            m.finish(result.is_err().then_some("_OTHER"), span.span_context());
        }
        span.end();
        Poll::Ready(result)
    }
}
