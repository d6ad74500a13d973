//! The MySQL example: the quickstart's routes on MariaDB, on the serial layout Better Auth's
//! migration makes, signed in across an app restart, then signed out.
#![cfg(all(feature = "mysql", feature = "axum"))]

mod common;

use common::process::{example, http};

#[tokio::test]
async fn mysql_example_signs_in_across_a_restart() {
    let Some(url) = common::fresh_mysql_database("mysql_example_signs_in_across_a_restart").await
    else {
        return;
    };
    for (ids, create) in [("text", "1"), ("serial", "1")] {
        let db = if ids == "text" {
            url.clone()
        } else {
            // A second database for the serial layout, which the example creates.
            common::fresh_mysql_database("mysql_example_signs_in_across_a_restart")
                .await
                .unwrap()
        };
        let env = [
            ("BETTER_AUTH_SECRET", common::SECRET),
            ("DATABASE_URL", db.as_str()),
            ("ID_FORMAT", ids),
            ("CREATE_SCHEMA", create),
        ];
        let app = example("mysql", &env);
        let r = http(
            "POST",
            &app.url("/sign-in"),
            &[],
            Some(r#"{"email":"maria@example.com"}"#),
        )
        .await;
        assert_eq!(r.status, 200, "{ids}: {}", r.body);
        let cookie = r.cookie_pair("better-auth.session_token");
        let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
        assert_eq!(me.status, 200, "{ids}: {}", me.body);
        if ids == "serial" {
            assert_eq!(
                me.json()["id"],
                "1",
                "the database assigned the id: {}",
                me.body
            );
        }

        app.stop();
        let app = example("mysql", &[("CREATE_SCHEMA", "0"), env[0], env[1], env[2]]);
        let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
        assert_eq!(me.status, 200, "{ids}: still signed in: {}", me.body);
        assert_eq!(me.json()["email"], "maria@example.com");

        let out = http("POST", &app.url("/sign-out"), &[("cookie", &cookie)], None).await;
        assert_eq!(out.status, 200, "{}", out.body);
        let me = http("GET", &app.url("/me"), &[("cookie", &cookie)], None).await;
        assert_eq!(me.status, 401);
        app.stop();
    }
}
