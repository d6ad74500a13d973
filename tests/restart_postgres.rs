//! The Postgres example survives an app restart and a database server restart, and rides out a
//! database outage: 503 (nobody signed out) while the server is down, served again once it is
//! back. Its own test binary, because it stops the shared test server.
#![cfg(feature = "postgres")]

mod common;

use common::process::{example, http};
use futures_util::future::join_all;

fn pg_ctl(action: &str) {
    let ctl = std::env::var("TAS_TEST_POSTGRES_CTL").expect("TAS_TEST_POSTGRES_CTL");
    let status = std::process::Command::new(ctl)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "pg ctl {action}: {status}");
}

#[tokio::test]
async fn postgres_example_survives_app_and_server_restarts() {
    let test = "postgres_example_survives_app_and_server_restarts";
    let Some(url) = common::fresh_pg_database(test).await else {
        return;
    };
    if common::server_url("TAS_TEST_POSTGRES_CTL", test).is_none() {
        return;
    }
    let env = [
        ("BETTER_AUTH_SECRET", common::SECRET),
        ("DATABASE_URL", url.as_str()),
    ];
    let app = example("postgres", &env);
    let r = http(
        "POST",
        &app.url("/sign-in"),
        &[],
        Some(r#"{"email":"pat@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie_pair("better-auth.session_token");
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200);

    // Outage: the database goes away under a running app.
    pg_ctl("stop");
    for _ in 0..2 {
        // Under load: 16 signed-in and 16 anonymous requests at once.
        let (me_url, home_url) = (app.url("/me"), app.url("/"));
        let jar = [("cookie", cookie.as_str())];
        let signed = (0..16).map(|_| http("GET", &me_url, &jar, None));
        let public = (0..16).map(|_| http("GET", &home_url, &[], None));
        let (signed, public) = tokio::join!(join_all(signed), join_all(public));
        for down in &signed {
            assert_eq!(down.status, 503, "fail closed: {}", down.body);
            assert!(
                down.set_cookies().is_empty(),
                "nobody is signed out during an outage"
            );
            assert_eq!(down.headers["retry-after"], "5");
        }
        assert!(
            public.iter().all(|r| r.status == 200),
            "requests without a cookie never touch the store"
        );
    }
    pg_ctl("start");
    // The pool reconnects by itself.
    let mut back = None;
    for _ in 0..50 {
        let r = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
        if r.status == 200 {
            back = Some(r);
            break;
        }
        assert_eq!(r.status, 503);
        // Polling an external server's recovery (bounded at 5 s), not waiting on a timer rule.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        back.expect("service recovered after the server came back")
            .json()["email"],
        "pat@example.com"
    );

    // Stop the app and the server, start both again: the same cookie still works.
    app.stop();
    pg_ctl("restart");
    let app = example("postgres", &env);
    let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["email"], "pat@example.com");
}
