//! The responses the layer sends itself, without calling the inner service: `503` while the
//! store cannot be asked, `403` for a cookie-authenticated write from an untrusted origin.
//!
//! A JSON API wants its own error shape, an HTML app a page or a redirect: give the layer a
//! [`RespondWith`] (a closure works) with
//! [`SessionLayer::respond_with`](crate::SessionLayer::respond_with). The default,
//! [`JsonResponses`], answers as Better Auth does.
//!
//! ```
//! use http::{header, Response, StatusCode};
//! use tower_auth_session::respond::{LayerRejection, RequestHead};
//! use tower_auth_session::{MemoryStore, SessionConfig, SessionLayer};
//!
//! let config = SessionConfig::builder().secret("a-private-secret-of-at-least-32-bytes!!").build().unwrap();
//! let layer = SessionLayer::new(config, MemoryStore::new()).respond_with(
//!     |rejection: LayerRejection, _request: &RequestHead<'_>| {
//!         let status = match rejection {
//!             LayerRejection::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
//!             _ => StatusCode::FORBIDDEN,
//!         };
//!         Response::builder()
//!             .status(status)
//!             .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
//!             .header(header::CACHE_CONTROL, "no-store")
//!             .body(axum::body::Body::from("<p>Please try again in a moment.</p>"))
//!             .unwrap()
//!     },
//! );
//! # let _ = layer;
//! ```

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

/// Why the layer answers a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerRejection {
    /// The store failed or timed out for a request with a valid credential (with the default
    /// [`OutagePolicy::FailClosed`](crate::OutagePolicy::FailClosed)). Nobody is signed out.
    StoreUnavailable,
    /// A cookie-authenticated write whose `Origin` (or `Referer`) is not trusted.
    UntrustedOrigin,
}

/// What a [`RespondWith`] may look at: the request's method, URI and headers.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    pub(crate) fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            uri,
            headers,
        }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request headers (`Accept` tells an HTML client from an API client).
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }
}

/// Builds the responses the layer sends itself. Implemented for [`JsonResponses`] (the
/// default) and for every `Fn(LayerRejection, &RequestHead<'_>) -> Response<B>` closure.
pub trait RespondWith<B>: Clone + Send + Sync + 'static {
    /// The response for `rejection` to `request`.
    fn respond(&self, rejection: LayerRejection, request: &RequestHead<'_>) -> Response<B>;
}

impl<B, F> RespondWith<B> for F
where
    F: Fn(LayerRejection, &RequestHead<'_>) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, rejection: LayerRejection, request: &RequestHead<'_>) -> Response<B> {
        self(rejection, request)
    }
}

/// The default responses, with `Cache-Control: no-store` and a JSON body in Better Auth's
/// error shape:
///
/// | rejection | status | body |
/// |---|---|---|
/// | [`StoreUnavailable`](LayerRejection::StoreUnavailable) | `503`, `Retry-After: 5` | `{"code":"SESSION_STORE_UNAVAILABLE","message":…}` |
/// | [`UntrustedOrigin`](LayerRejection::UntrustedOrigin) | `403` | `{"code":"INVALID_ORIGIN","message":…}` |
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonResponses;

impl<B: From<&'static str>> RespondWith<B> for JsonResponses {
    fn respond(&self, rejection: LayerRejection, _: &RequestHead<'_>) -> Response<B> {
        let (status, body) = match rejection {
            LayerRejection::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"code":"SESSION_STORE_UNAVAILABLE","message":"sessions cannot be checked right now; retry shortly"}"#,
            ),
            LayerRejection::UntrustedOrigin => (
                StatusCode::FORBIDDEN,
                r#"{"code":"INVALID_ORIGIN","message":"this request's Origin is not trusted for cookie-authenticated writes"}"#,
            ),
        };
        let mut response = Response::new(B::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
