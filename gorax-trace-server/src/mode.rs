//! The protocol modes of [`ServerTraceLayer`](crate::ServerTraceLayer): what the response body
//! type is, and whether a call may end at its trailers.

/// HTTP mode of [`ServerTraceLayer`](crate::ServerTraceLayer): the response body keeps its type (a [`SpanBody`]: axum's
/// `Body`, or a boxed body); a streamed one is wrapped in a [`ResponseBody`](crate::ResponseBody)
/// that ends the span with the body (see [`SpanEnd`]).
///
/// [`SpanBody`]: crate::SpanBody
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

/// gRPC mode of [`ServerTraceLayer`](crate::ServerTraceLayer) ([`ServerTraceLayer::grpc`](crate::ServerTraceLayer::grpc)): the response body is a
/// [`ResponseBody`](crate::ResponseBody), which ends the span when the trailers arrive (or the
/// body ends, fails or is dropped).
#[derive(Debug, Clone, Copy, Default)]
pub struct Grpc;

/// The protocol modes of [`ServerTraceLayer`](crate::ServerTraceLayer): [`Http`] and [`Grpc`] (sealed).
pub trait Mode: sealed::Sealed + Send + Sync + 'static {
    /// The response body type the layer's service gives for an inner body `B`.
    type Body<B>;
}

pub(crate) mod sealed {
    use crate::body::BodyEnd;

    /// What the layer does differently per mode (not for implementing elsewhere).
    pub trait Sealed {
        /// Whether a call may end at its trailers.
        const TRAILERS: bool;
    }

    /// The response body of a mode for an inner body `B`.
    pub trait Wraps<B>: super::Mode {
        /// `body`, ending the span with `end` when there is one.
        fn wrap(body: B, end: Option<Box<BodyEnd>>) -> <Self as super::Mode>::Body<B>;
    }

    impl Sealed for super::Http {
        const TRAILERS: bool = false;
    }

    impl<B: crate::SpanBody> Wraps<B> for super::Http {
        #[inline]
        fn wrap(body: B, end: Option<Box<BodyEnd>>) -> B {
            match end {
                None => body,
                Some(end) => B::from_traced(crate::ResponseBody::new(body, Some(end))),
            }
        }
    }

    impl Sealed for super::Grpc {
        const TRAILERS: bool = true;
    }

    impl<B> Wraps<B> for super::Grpc {
        #[inline]
        fn wrap(body: B, end: Option<Box<BodyEnd>>) -> crate::ResponseBody<B> {
            crate::ResponseBody::new(body, end)
        }
    }
}

impl Mode for Http {
    type Body<B> = B;
}

impl Mode for Grpc {
    type Body<B> = crate::ResponseBody<B>;
}
