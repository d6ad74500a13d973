//! [`ResponseFuture`], the future returned by [`SessionService`](crate::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::service::append_cookies;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The response future of [`SessionService`](crate::SessionService).
    ///
    /// Requests decided without waiting (no credential, a forged one, a session found in memory
    /// or in the cookie cache) poll the inner future in place, then add the layer's cookies;
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
        Passthrough { #[pin] future: F, cookies: Vec<HeaderValue> },
        Store { future: BoxFuture<F::Output> },
        Ready { output: Option<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn passthrough(future: F, cookies: Vec<HeaderValue>) -> Self {
        Self {
            kind: Kind::Passthrough { future, cookies },
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
            KindProj::Passthrough { future, cookies } => {
                let mut output = ready!(future.poll(cx));
                if let Ok(response) = &mut output {
                    append_cookies(response.headers_mut(), std::mem::take(cookies));
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
