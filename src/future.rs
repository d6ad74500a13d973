//! [`ResponseFuture`], the future returned by [`SessionService`](crate::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The response future of [`SessionService`](crate::SessionService).
    ///
    /// Requests without a valid signed cookie poll the inner future in place (no allocation);
    /// requests that need the store run in one boxed future; requests the layer answers itself
    /// (an untrusted origin) are ready at once.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Passthrough { #[pin] future: F },
        Store { future: BoxFuture<F::Output> },
        Ready { output: Option<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn passthrough(future: F) -> Self {
        Self {
            kind: Kind::Passthrough { future },
        }
    }

    pub(crate) fn ready(output: F::Output) -> Self {
        Self {
            kind: Kind::Ready {
                output: Some(output),
            },
        }
    }

    pub(crate) fn boxed(future: BoxFuture<F::Output>) -> Self {
        Self {
            kind: Kind::Store { future },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => future.poll(cx),
            KindProj::Store { future } => future.as_mut().poll(cx),
            // Polled again after completion: stay pending rather than panic.
            KindProj::Ready { output } => output.take().map_or(Poll::Pending, Poll::Ready),
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
