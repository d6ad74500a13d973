//! `BETTER_AUTH_SECRETS` is read as Better Auth reads it. Its own test binary, the only one
//! that changes the process environment.

use tower_auth_session::SessionConfig;

#[test]
fn better_auth_secrets_env_is_read_first_current_first() {
    std::env::set_var(
        "BETTER_AUTH_SECRETS",
        "2:current-secret-0123456789-abcdefghijk, 1:previous-secret-0123456789-abcdefghij",
    );
    std::env::set_var(
        "BETTER_AUTH_SECRET",
        "legacy-secret-0123456789-abcdefghijklmn",
    );
    let cfg = SessionConfig::from_env().unwrap();
    let current = tower_auth_session::codec::Signer::new("current-secret-0123456789-abcdefghijk");
    assert_eq!(cfg.signer().sign_raw("t"), current.sign_raw("t"));
    std::env::set_var("BETTER_AUTH_SECRETS", "2:a,2:b");
    assert!(SessionConfig::from_env()
        .unwrap_err()
        .to_string()
        .contains("appears twice"));
    std::env::set_var("BETTER_AUTH_SECRETS", "no-version");
    assert!(SessionConfig::from_env()
        .unwrap_err()
        .to_string()
        .contains("version:value"));
    std::env::remove_var("BETTER_AUTH_SECRETS");
    std::env::remove_var("BETTER_AUTH_SECRET");
}
