//! Loud misconfiguration (issue 15, item 6), the parts that are not logs (those are in
//! `tests/misconfig_logs.rs`): start-up errors print their message through `Box<dyn Error>`,
//! and a cache cookie of another strategy is left alone instead of overwritten.
#![cfg(feature = "sqlite")]

mod common;

use common::{get_req, send};
use time::OffsetDateTime;
use tower_auth_session::{
    CookieCache, MemoryStore, SessionConfig, SessionLayer, SignIn, SqliteStore, User,
};

/// What `fn main() -> Result<(), Box<dyn Error>>` prints is `Error: {:?}` of the box.
#[tokio::test]
async fn start_up_errors_print_their_message_through_a_boxed_error() {
    fn config() -> Result<SessionConfig, Box<dyn std::error::Error>> {
        Ok(SessionConfig::builder().build()?)
    }
    let shown = format!("{:?}", config().unwrap_err());
    assert!(
        shown.starts_with("no session secret is configured: set BETTER_AUTH_SECRET"),
        "{shown}"
    );

    async fn store() -> Result<SqliteStore, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc")).await?;
        sqlx::query(r#"create table "user" ("id" text primary key)"#)
            .execute(&pool)
            .await?;
        sqlx::query(r#"create table "session" ("id" text primary key, "userId" text)"#)
            .execute(&pool)
            .await?;
        Ok(SqliteStore::builder(url)
            .create_schema(false)
            .build()
            .await?)
    }
    let shown = format!("{:?}", store().await.unwrap_err());
    assert!(
        shown.starts_with("column \"")
            && shown.contains("is missing from table")
            && !shown.contains("Schema("),
        "{shown}"
    );
}

/// A compact-cache layer next to a Better Auth server that writes `jwt` cache cookies: the
/// layer reads the store and leaves that cookie alone (no overwrite on every request); an
/// unusable cookie of its own strategy is still replaced.
#[tokio::test]
async fn a_cache_cookie_of_another_strategy_is_left_alone() {
    let store = MemoryStore::new();
    let user = User::new("c@example.com", "C", OffsetDateTime::now_utc());
    store.insert_user(user.clone());
    let config = |cache: CookieCache| {
        SessionConfig::builder()
            .secret(common::SECRET)
            .cookie_cache(cache)
            .build()
            .unwrap()
    };
    let theirs = SessionLayer::new(config(CookieCache::jwt()), store.clone());
    let ours = SessionLayer::new(config(CookieCache::compact()), store.clone());
    let signed = theirs
        .manager()
        .sign_in(&user, SignIn::new())
        .await
        .unwrap();
    let session_cookie = common::session_cookie(&signed);
    // A jwt cache cookie, as the other side issues it on a store read.
    let r = send(
        common::email_router(theirs),
        get_req("/", Some(&session_cookie)),
    )
    .await;
    let jwt_cache = r.cookie_pair("better-auth.session_data");
    let value = jwt_cache.split_once('=').unwrap().1;
    assert_eq!(value.matches('.').count(), 2, "a JWT: {value}");

    let app = common::email_router(ours);
    let jar = format!("{session_cookie}; {jwt_cache}");
    for _ in 0..3 {
        let r = send(app.clone(), get_req("/", Some(&jar))).await;
        assert_eq!(r.body, "c@example.com");
        assert!(
            r.set_cookie("better-auth.session_data").is_none(),
            "left alone: {:?}",
            r.set_cookies()
        );
    }
    // An unusable compact value is replaced, as before.
    let jar = format!("{session_cookie}; better-auth.session_data=eyJub3QiOiJzaWduZWQifQ");
    let r = send(app, get_req("/", Some(&jar))).await;
    assert!(r.set_cookie("better-auth.session_data").is_some());
}
