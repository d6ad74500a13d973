//! rustls' process-wide crypto provider.

/// Makes sure rustls has a process-wide crypto provider (ring), as clients that build their own
/// TLS configuration with `ClientConfig::builder()` need one (redis-rs, reqwest without a
/// provider of its own); an application's own choice wins.
pub(crate) fn install() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
