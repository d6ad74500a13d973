//! MySQL and MariaDB: a write refused because the server is read-only (error 1290 or 1836, or
//! 1792 in a read-only transaction: the connection reached a replica, as the old writer is after
//! an Aurora or RDS failover while the DNS name still points at it) closes the connection it ran
//! on, rather than returning it to the pool to fail again for as long as it lives, and the write
//! is tried once more on another connection.
//!
//! Runs against the test command's MariaDB as a user without the privilege to write to a
//! read-only server. `read_only` is a global setting: this binary holds this one test (test
//! binaries run one after another), and the setting is put back when it ends, even on failure.
#![cfg(feature = "mysql")]

mod common;
mod conformance;

use std::time::Duration;

use tower_auth_session::store::MySqlStore;
use tower_auth_session::{SessionStore, StorageKey, User};

/// `set global read_only = 1` through `admin`, undone on drop.
struct ReadOnly {
    admin: String,
}

async fn set_read_only(admin: &str, on: bool) {
    let pool = sqlx::MySqlPool::connect(admin).await.unwrap();
    sqlx::query(&format!("set global read_only = {}", u8::from(on)))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

impl ReadOnly {
    async fn on(admin: &str) -> Self {
        set_read_only(admin, true).await;
        Self {
            admin: admin.to_owned(),
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        // Drop cannot await: a runtime of its own, on a thread of its own.
        let admin = self.admin.clone();
        let reset = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(set_read_only(&admin, false));
        })
        .join();
        if reset.is_err() {
            eprintln!("could not set MariaDB's read_only back to 0: later MySQL tests may fail");
        }
    }
}

#[tokio::test]
async fn a_write_refused_as_read_only_closes_its_connection_and_is_tried_again() {
    let test = "a_write_refused_as_read_only_closes_its_connection_and_is_tried_again";
    let Some(admin) = common::fresh_mysql_database(test).await else {
        return;
    };
    // A user of its own, with every privilege on this database and none to bypass read_only.
    let database = admin.rsplit('/').next().unwrap().to_owned();
    let user = format!("u_{database}");
    let root = sqlx::MySqlPool::connect(&admin).await.unwrap();
    for statement in [
        format!("create user '{user}'@'%' identified by 'secret-{user}'"),
        format!("grant all on `{database}`.* to '{user}'@'%'"),
    ] {
        sqlx::query(&statement).execute(&root).await.unwrap();
    }
    root.close().await;
    let server = admin
        .trim_start_matches("mysql://root@")
        .split('/')
        .next()
        .unwrap();
    let url = format!("mysql://{user}:secret-{user}@{server}/{database}");
    // One connection: which one a statement gets is then known.
    let store = MySqlStore::builder(&url)
        .create_schema(true)
        .max_connections(1)
        .build()
        .await
        .unwrap();
    let owner = store
        .insert_user(&User::new("ro@example.com", "RO", common::now()))
        .await
        .unwrap();
    let session = conformance::session(&owner, common::now() + time::Duration::days(7));
    let session = store.create(&session, &owner).await.unwrap();
    let key = StorageKey::new(session.token.as_str());
    let later = common::now() + time::Duration::days(8);

    // The pool's one connection turns read-only (as one to a replica is): the write it gets is
    // refused (1792, SQLSTATE 25006), the connection closed, and the write tried again on a new
    // one, with no error for the caller.
    {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query("set session transaction read only")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    assert_eq!(store.pool().size(), 1);
    let extended = store.extend(&key, later, common::now()).await.unwrap();
    assert!(extended.is_some(), "extended on a fresh connection");
    // So is a sign-in's insert: the refused statement did not run.
    {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query("set session transaction read only")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let another = conformance::session(&owner, common::now() + time::Duration::days(7));
    store.create(&another, &owner).await.unwrap();

    // The whole server turns read-only: both attempts are refused, and both connections are
    // closed rather than handed out again.
    assert!(store.find(&key).await.unwrap().is_some());
    let open = store.pool().size();
    assert_eq!(open, 1);
    let read_only = ReadOnly::on(&admin).await;
    let err = store
        .extend(&key, later, common::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("read-only") || err.contains("read only"),
        "{err}"
    );
    // The refused connections are closed, not handed out again.
    common::until(
        "the connections that met the refusal are closed",
        Duration::from_secs(10),
        || async { store.pool().size() < open },
    )
    .await;
    // Reads still work on a read-only server.
    assert!(store.find(&key).await.unwrap().is_some());
    drop(read_only);
    let later = common::now() + time::Duration::days(9);
    let extended = store.extend(&key, later, common::now()).await.unwrap();
    assert!(extended.is_some());
}
