//! `BETTER_AUTH_SECRETS` is read as Better Auth reads it. Its own test binary, the only one
//! that changes the process environment.

use tower_auth_session::SessionConfig;

/// Tests here take turns with the process environment.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn better_auth_secrets_env_is_read_first_current_first() {
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
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

    // The previous secret from the list still verifies, and such a cookie is re-signed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tower::ServiceExt;
        let store = tower_auth_session::MemoryStore::new();
        let user =
            tower_auth_session::User::new("env@example.com", "E", time::OffsetDateTime::now_utc());
        store.insert_user(user.clone());
        let old = tower_auth_session::SessionLayer::new(
            SessionConfig::builder()
                .secret("previous-secret-0123456789-abcdefghij")
                .build()
                .unwrap(),
            store.clone(),
        );
        let signed = old
            .manager()
            .sign_in(&user, tower_auth_session::SignIn::new())
            .await
            .unwrap();
        let cookie = signed
            .cookies
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(tower_auth_session::SessionLayer::new(cfg.clone(), store));
        let req = http::Request::get("/")
            .header("cookie", &cookie)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let line = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let token = &signed.session.token;
        assert!(
            line.starts_with(&format!(
                "better-auth.session_token={}",
                cfg.signer().sign_cookie_value(token)
            )),
            "{line}"
        );
    });

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

    // Behind an https base URL, every env-driven path finds the `__Secure-` cookie (a builder
    // that read only the secret once looked for the wrong name: a silent 401 everywhere).
    std::env::set_var("BETTER_AUTH_URL", "https://app.example.com");
    for (path, cfg) in [
        ("from_env()", SessionConfig::from_env().unwrap()),
        (
            "builder().from_env()",
            SessionConfig::builder()
                .from_env()
                .unwrap()
                .build()
                .unwrap(),
        ),
        (
            "builder().secret_from_env()",
            SessionConfig::builder()
                .secret_from_env()
                .unwrap()
                .build()
                .unwrap(),
        ),
    ] {
        assert_eq!(
            cfg.session_cookie_name(),
            "__Secure-better-auth.session_token",
            "{path}"
        );
        assert_eq!(
            cfg.signer().sign_raw("t"),
            tower_auth_session::codec::Signer::new("legacy-secret-0123456789-abcdefghijklmn")
                .sign_raw("t"),
            "{path}"
        );
    }
    let explicit = SessionConfig::builder()
        .secure(false)
        .secret_from_env()
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(explicit.session_cookie_name(), "better-auth.session_token");
    std::env::remove_var("BETTER_AUTH_URL");
    std::env::remove_var("BETTER_AUTH_SECRET");
}

/// `BETTER_AUTH_SECRETS` values are trimmed as Better Auth trims them (`2: secret` signs with
/// `secret`, not ` secret`: every cookie would fail its check), an empty one is refused, and an
/// older entry too weak to be a secret (the reason to rotate) does not stop start-up, as it does
/// not stop Better Auth's: it is only left out of the cookie checks.
#[test]
fn better_auth_secrets_values_are_trimmed_and_weak_older_ones_left_out() {
    use tower::ServiceExt as _;
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::remove_var("BETTER_AUTH_URL");
    let current = "current-secret-0123456789-abcdefghijk";
    std::env::set_var(
        "BETTER_AUTH_SECRETS",
        format!("2: {current} ,1:\tshort-old-secret"),
    );
    let cfg = SessionConfig::from_env().unwrap();
    assert_eq!(
        cfg.signer().sign_raw("t"),
        tower_auth_session::codec::Signer::new(current).sign_raw("t")
    );
    // A cookie signed with the weak older secret is not accepted; one signed with the current is.
    let store = tower_auth_session::MemoryStore::new();
    let user =
        tower_auth_session::User::new("weak@example.com", "W", time::OffsetDateTime::now_utc());
    store.insert_user(user.clone());
    let token = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(
            tower_auth_session::SessionLayer::new(cfg.clone(), store.clone())
                .manager()
                .sign_in(&user, tower_auth_session::SignIn::new()),
        )
        .unwrap()
        .session
        .token;
    let status = |secret: &str| {
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|_: tower_auth_session::extract::CurrentUser| async { "ok" }),
            )
            .layer(tower_auth_session::SessionLayer::new(
                cfg.clone(),
                store.clone(),
            ));
        let cookie = format!(
            "better-auth.session_token={}",
            tower_auth_session::codec::Signer::new(secret).sign_cookie_value(&token)
        );
        let req = http::Request::get("/")
            .header("cookie", cookie)
            .body(axum::body::Body::empty())
            .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(app.oneshot(req))
            .unwrap()
            .status()
    };
    assert_eq!(status(current), http::StatusCode::OK);
    assert_eq!(status("short-old-secret"), http::StatusCode::UNAUTHORIZED);

    std::env::set_var(
        "BETTER_AUTH_SECRETS",
        format!("2:{current},1:better-auth-secret-12345678901234567890"),
    );
    assert!(
        SessionConfig::from_env().is_ok(),
        "Better Auth starts with this environment"
    );
    std::env::set_var("BETTER_AUTH_SECRETS", format!("2:  ,1:{current}"));
    let err = SessionConfig::from_env().unwrap_err().to_string();
    assert!(err.contains("version 2 has an empty secret value"), "{err}");
    std::env::remove_var("BETTER_AUTH_SECRETS");
}

/// `BETTER_AUTH_TRUSTED_ORIGINS` turns on the origin check with its origins and the
/// environment's base URL, as Better Auth trusts them; unset, the check stays off. Entries
/// only Better Auth's redirect checks use (an app scheme) are skipped, not refused: the
/// variable is shared with the Node server.
#[test]
fn better_auth_trusted_origins_env_turns_on_the_origin_check() {
    use tower::ServiceExt as _;
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    for name in [
        "BETTER_AUTH_TRUSTED_ORIGINS",
        "BETTER_AUTH_SECRETS",
        "BETTER_AUTH_URL",
        "NEXT_PUBLIC_BETTER_AUTH_URL",
        "PUBLIC_BETTER_AUTH_URL",
        "NUXT_PUBLIC_BETTER_AUTH_URL",
        "NUXT_PUBLIC_AUTH_URL",
        "BASE_URL",
    ] {
        std::env::remove_var(name);
    }
    std::env::set_var(
        "BETTER_AUTH_SECRET",
        "origins-secret-0123456789-abcdefghijklm",
    );
    // Answers POST /write with the status the layer let through (200) or its own (403).
    let status = |origin: &str| {
        let config = SessionConfig::from_env().unwrap();
        let layer =
            tower_auth_session::SessionLayer::new(config, tower_auth_session::MemoryStore::new());
        let app = axum::Router::new()
            .route("/write", axum::routing::post(|| async { "ok" }))
            .layer(layer);
        let request = axum::http::Request::post("/write")
            .header("cookie", "better-auth.session_token=t.s")
            .header("origin", origin)
            .body(axum::body::Body::empty())
            .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(app.oneshot(request))
            .unwrap()
            .status()
            .as_u16()
    };
    std::env::set_var("BETTER_AUTH_URL", "http://base.example.com/api/auth");
    assert_eq!(status("https://evil.test"), 200, "unset: no check");
    std::env::set_var(
        "BETTER_AUTH_TRUSTED_ORIGINS",
        "https://app.example.com,https://*.example.org,myapp://,exp://192.168.*.*:*/**",
    );
    assert_eq!(status("https://evil.test"), 403);
    assert_eq!(status("https://app.example.com"), 200);
    assert_eq!(status("https://shop.example.org"), 200);
    assert_eq!(
        status("http://base.example.com"),
        200,
        "the base URL's origin"
    );
    // App schemes only (an Expo app): the check stays on, with the base URL's origin.
    std::env::set_var(
        "BETTER_AUTH_TRUSTED_ORIGINS",
        "myapp://,exp://192.168.*.*:*/**",
    );
    assert_eq!(
        status("https://evil.test"),
        403,
        "app schemes only: still checked"
    );
    assert_eq!(status("http://base.example.com"), 200);
    std::env::set_var(
        "BETTER_AUTH_TRUSTED_ORIGINS",
        "https://app.example.com,https://*.example.org",
    );
    // `BASE_URL=/` (a bundler's public path) is no base URL, as Better Auth reads it.
    std::env::remove_var("BETTER_AUTH_URL");
    std::env::set_var("BASE_URL", "/");
    assert_eq!(status("https://app.example.com"), 200);
    assert_eq!(status("https://evil.test"), 403);
    std::env::remove_var("BASE_URL");
    std::env::remove_var("BETTER_AUTH_TRUSTED_ORIGINS");
    std::env::remove_var("BETTER_AUTH_SECRET");
}
