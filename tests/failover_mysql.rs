//! MySQL and MariaDB: a write refused because the server is read-only (error 1290 or 1836: the
//! connection reached a replica, as the old writer is after an Aurora or RDS failover while the
//! DNS name still points at it) closes the connection it ran on, rather than returning it to
//! the pool to fail again for as long as it lives, and the write is tried once more on another
//! connection.
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
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(set_read_only(&admin, false));
        })
        .join();
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
    let store = MySqlStore::builder(&url)
        .create_schema(true)
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
    // Connections in the pool, as a busy app has them.
    let (a, b) = tokio::join!(store.find(&key), store.find(&key));
    assert!(a.unwrap().is_some() && b.unwrap().is_some());
    let open = store.pool().size();
    assert!(open >= 1);

    let read_only = ReadOnly::on(&admin).await;
    let later = common::now() + time::Duration::days(8);
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
        Duration::from_secs(2),
        || async { store.pool().size() < open },
    )
    .await;
    // Reads still work on a read-only server.
    assert!(store.find(&key).await.unwrap().is_some());
    drop(read_only);
    let extended = store.extend(&key, later, common::now()).await.unwrap();
    assert!(extended.is_some());
}
