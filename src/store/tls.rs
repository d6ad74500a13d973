//! TLS failures in words, with the fix, for every network store.

use crate::error::StoreError;

/// How to pass a private CA to a store: the URL parameter and the builder method.
pub(crate) struct CaHint {
    pub(crate) url: &'static str,
    pub(crate) builder: &'static str,
    /// What to do when the certificate does not name the host.
    pub(crate) wrong_name: &'static str,
}

/// Explains the first TLS failure in `error`'s chain of sources, or `None` when it holds none.
pub(crate) fn explain(
    error: &(dyn std::error::Error + 'static),
    hint: &CaHint,
) -> Option<(String, String)> {
    use rustls::{CertificateError, Error as Tls};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<Tls>() {
            return Some(describe(tls, hint));
        }
        // An I/O error's `source` skips the error it wraps: look at that one too.
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<Tls>())
        {
            return Some(describe(tls, hint));
        }
        // Some drivers keep the TLS error only as text.
        let text = e.to_string();
        if text.contains("UnknownIssuer") {
            return Some(describe(
                &Tls::InvalidCertificate(CertificateError::UnknownIssuer),
                hint,
            ));
        }
        if text.contains("NotValidForName") {
            return Some(describe(
                &Tls::InvalidCertificate(CertificateError::NotValidForName),
                hint,
            ));
        }
        if text.contains("server does not support TLS") {
            return Some((
                "TLS: the server does not offer TLS, and the connection requires it".to_owned(),
                "turn TLS on in the server's configuration, or (on a trusted network only) use a \
                 plaintext URL"
                    .to_owned(),
            ));
        }
        cause = e.source();
    }
    None
}

fn describe(tls: &rustls::Error, hint: &CaHint) -> (String, String) {
    use rustls::{CertificateError, Error as Tls};
    match tls {
        Tls::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => (
            "TLS: the server's certificate is not signed by a certificate authority this client \
             trusts"
                .to_owned(),
            format!(
                "pass the server's CA with {} (or {})",
                hint.url, hint.builder
            ),
        ),
        Tls::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => (
            "TLS: the server's certificate is not valid for the host name in the URL".to_owned(),
            hint.wrong_name.to_owned(),
        ),
        Tls::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => (
            "TLS: the server's certificate has expired".to_owned(),
            "renew the server's certificate".to_owned(),
        ),
        other => (
            format!("TLS: {other}"),
            "check the server's certificate and the client's TLS settings".to_owned(),
        ),
    }
}

/// A [`StoreError::Connect`] for a TLS failure, keeping the driver's error as the source.
pub(crate) fn connect_error(
    (problem, fix): (String, String),
    source: impl Into<crate::error::BoxError>,
) -> StoreError {
    StoreError::Connect {
        problem,
        fix,
        source: Some(source.into()),
    }
}

/// Whether `host` is this machine (a loopback address, `localhost`, or a Unix socket).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
