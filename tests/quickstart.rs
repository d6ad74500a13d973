//! The README's first command, run as a process: sign in, call a protected route, restart,
//! still signed in; and no start without a secret.

mod common;

use common::process::{http, quickstart};

#[test]
fn refuses_to_start_without_a_secret() {
    let out = std::process::Command::new(common::process::example_path("quickstart"))
        .env_remove("BETTER_AUTH_SECRET")
        .env_remove("AUTH_SECRET")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BETTER_AUTH_SECRET"), "{err}");

    let out = std::process::Command::new(common::process::example_path("quickstart"))
        .env("BETTER_AUTH_SECRET", "too-short")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}

#[tokio::test]
async fn signed_in_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("quickstart.db").display());
    let env = [
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("DATABASE_URL", url.as_str()),
    ];

    let app = quickstart(&env);
    let anonymous = http("GET", &app.url("/me"), &[], None).await;
    assert_eq!(anonymous.status, 401);
    let home = http("GET", &app.url("/"), &[], None).await;
    assert!(home.body.contains("not signed in"), "{}", home.body);

    let r = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(r#"{"email":"Alice@Example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie_pair("better-auth.session_token");
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200);
    let before = me.json();
    assert_eq!(before["email"], "alice@example.com");
    assert_eq!(before["name"], "alice");

    app.stop();
    let app = quickstart(&env);
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(
        me.status, 200,
        "still signed in after a restart: {}",
        me.body
    );
    assert_eq!(me.json(), before);
    let home = http("GET", &app.url("/"), &[("cookie", &cookie)], None).await;
    assert!(home.body.contains("Hello, alice!"), "{}", home.body);

    // Signing in again with the same address reuses the user.
    let again = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(r#"{"email":"alice@example.com"}"#),
    )
    .await;
    assert_eq!(again.json()["id"], before["id"]);

    let out = http("POST", &app.url("/sign-out"), &[("cookie", &cookie)], None).await;
    assert_eq!(out.status, 200);
    assert!(out
        .set_cookie("better-auth.session_token")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        http("GET", &app.url("/me"), &[("cookie", &cookie)], None)
            .await
            .status,
        401
    );

    let bad = http("POST", &app.url("/sign-in"), &[], Some(r#"{"email":""}"#)).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn plain_hyper_example_uses_the_same_layer() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hyper.db").display());
    let app = common::process::example(
        "hyper",
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("DATABASE_URL", url.as_str()),
        ],
    );
    assert_eq!(http("GET", &app.url("/me"), &[], None).await.status, 401);
    let huge = format!("{}@example.com", "a".repeat(4096));
    let r = http("POST", &app.url("/sign-in"), &[], Some(&huge)).await;
    assert_eq!(r.status, 413, "a body is read only up to a bound");
    let r = http("POST", &app.url("/sign-in"), &[], Some("hy@example.com")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let cookie = r.cookie_pair("better-auth.session_token");
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200);
    assert!(me.body.starts_with("hy@example.com"), "{}", me.body);
    let out = http("POST", &app.url("/sign-out"), &[("cookie", &cookie)], None).await;
    assert!(out
        .set_cookie("better-auth.session_token")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        http("GET", &app.url("/me"), &[("cookie", &cookie)], None)
            .await
            .status,
        401
    );
}
