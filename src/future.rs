//! [`ResponseFuture`], the future returned by [`SessionService`](crate::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::config::SessionConfig;
use crate::plan::{Parts, Render};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A cookie plan to render on the way out, with the configuration it reads.
type Pending = Option<(Render, Arc<SessionConfig>)>;

pin_project! {
    /// The response future of [`SessionService`](crate::SessionService).
    ///
    /// Requests decided without waiting (no credential, a forged one, a session found in memory
    /// or in the cookie cache) poll the inner future in place, then render their cookie plan;
    /// requests that need a store round trip run in one boxed future; requests the layer
    /// answers itself (an untrusted origin, an unavailable store) are ready at once.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Passthrough { #[pin] future: F, render: Pending },
        Store { future: BoxFuture<F::Output> },
        Ready { output: Option<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn passthrough(future: F, render: Pending) -> Self {
        Self {
            kind: Kind::Passthrough { future, render },
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

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future, render } => {
                let mut output = ready!(future.poll(cx));
                if let (Ok(response), Some((render, config))) = (&mut output, render.take()) {
                    render.apply(Parts::of(&config), response.headers_mut());
                }
                Poll::Ready(output)
            }
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
