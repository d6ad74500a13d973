//! `examples/html.rs`: protected pages redirect to the login page and come back after it; the
//! layer's own answers are HTML pages there (checked in `tests/layer.rs`).
#![cfg(all(feature = "sqlite", feature = "axum"))]

mod common;

use common::process::{example, http};

#[tokio::test]
async fn html_pages_redirect_to_the_login_page_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("html.db").display());
    let app = example(
        "html",
        &[
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("DATABASE_URL", db.as_str()),
        ],
    );
    let r = http("GET", &app.url("/dashboard"), &[], None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "/login?next=%2Fdashboard");

    let login = common::process::http_form(
        &app.url("/login"),
        "email=ada%40example.com&next=%2Fdashboard",
    )
    .await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.headers["location"], "/dashboard");
    let cookie = login.cookie_pair("better-auth.session_token");

    let r = http("GET", &app.url("/dashboard"), &[("cookie", &cookie)], None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Hello, ada@example.com"), "{}", r.body);
    // Never a redirect to another site (browsers read `\` as `/` and drop tabs).
    for next in ["%2F%2Fevil.test", "%2F%5Cevil.test", "%2F%09%2Fevil.test"] {
        let evil = common::process::http_form(
            &app.url("/login"),
            &format!("email=ada%40example.com&next={next}"),
        )
        .await;
        assert_eq!(evil.headers["location"], "/dashboard", "next={next}");
    }
}
