//! Keeping SQLite's write-ahead log short, off the write path.
//!
//! In WAL mode every commit appends pages to the log, and a checkpoint copies them back into the
//! database file with an `fsync` of each. By default the connection that commits past 1,000
//! pages runs the checkpoint itself, so one write in a few hundred waited for two `fsync`s: the
//! refresh-heavy p99. And under steady reads the log never starts over (a reader is always using
//! it), so it grows without bound: 700 MB in ten seconds of refresh-heavy traffic.
//!
//! The store's own connections therefore checkpoint only as a last resort
//! ([`FALLBACK_PAGES`]), and a background task:
//!
//! 1. every [`INTERVAL`], runs a `PASSIVE` checkpoint on a connection of its own: it copies what
//!    no reader still needs and waits for nobody, while the writer keeps committing;
//! 2. once the log is longer than [`RESTART_PAGES`], restarts it on the writer connection
//!    (`RESTART`: copies the little left since step 1 and waits at most [`RESTART_WAIT_MS`] for
//!    readers of old pages, giving up until the next round when one holds on longer; 2 to 6 ms
//!    measured). Writes queue for the writer during that moment as they queue for each other,
//!    never in SQLite's busy handler. The next commit writes the log from its start: the file
//!    keeps its largest size (about 64 to 80 MiB under sustained writes) and is reused.
//!    (`TRUNCATE`, which also shrinks the file, stalled the writer for about 28 ms each time.)
//!
//! The task stops when the store is dropped (its last clone), or at once when the database is
//! not in WAL mode.

use std::sync::Weak;
use std::time::Duration;

use sqlx::SqlitePool;

/// How often the log is checkpointed. Measured under refresh-heavy traffic (`wrk`, 64
/// connections, 10,000 sessions, two CPUs): 100 ms gave 15,900 requests/s, 250 ms 16,400 to
/// 17,700, with the same p99.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// The log length (in pages) past which it starts over: 64 MiB of 4 KiB pages.
pub(crate) const RESTART_PAGES: i64 = 16_384;

/// The store's connections' own `wal_autocheckpoint`: only if the task cannot keep up.
pub(crate) const FALLBACK_PAGES: i64 = 4 * RESTART_PAGES;

/// How long a restart waits for readers of old pages.
const RESTART_WAIT_MS: u32 = 10;

/// Starts the task on the current runtime (none outside one).
pub(crate) fn keep_short(checkpoint: SqlitePool, writer: SqlitePool, alive: Weak<()>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.strong_count() == 0 {
                return;
            }
            match round(&checkpoint, &writer, RESTART_PAGES).await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "SQLite checkpoint failed; trying again");
                }
            }
        }
    });
}

/// One checkpoint, and a restart of the log when it is longer than `restart_pages`.
/// `Ok(None)`: the database is not in WAL mode. Otherwise the log's length in pages before
/// this round.
pub(crate) async fn round(
    checkpoint: &SqlitePool,
    writer: &SqlitePool,
    restart_pages: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let (_busy, pages, _copied): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(PASSIVE)")
        .fetch_one(checkpoint)
        .await?;
    if pages < 0 {
        return Ok(None);
    }
    if pages > restart_pages {
        restart(writer).await?;
    }
    Ok(Some(pages))
}

/// Copies what is left of the log and has the next commit write it from its start, on the
/// writer connection. Its busy timeout is [`RESTART_WAIT_MS`] meanwhile: a reader that holds on
/// to old pages longer makes this round give up, and the next one tries again.
async fn restart(writer: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let (busy_ms,): (i64,) = sqlx::query_as("pragma busy_timeout")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(&format!("pragma busy_timeout = {RESTART_WAIT_MS}"))
        .execute(&mut *conn)
        .await?;
    let done: Result<(i64, i64, i64), _> = sqlx::query_as("pragma wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await;
    if let Err(e) = sqlx::query(&format!("pragma busy_timeout = {busy_ms}"))
        .execute(&mut *conn)
        .await
    {
        // Never hand the writer back with the short timeout: the pool opens a fresh one.
        conn.close_on_drop();
        return Err(e);
    }
    let (busy, pages, copied) = done?;
    tracing::trace!(busy, pages, copied, "SQLite write-ahead log restarted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    async fn pool(path: &std::path::Path) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap()
    }

    async fn write(writer: &SqlitePool, rows: std::ops::Range<i64>) {
        for n in rows {
            sqlx::query("insert into t (n, pad) values (?1, zeroblob(3000))")
                .bind(n)
                .execute(writer)
                .await
                .unwrap();
        }
    }

    /// The log's length in pages, after a passive checkpoint.
    async fn log_pages(checkpoint: &SqlitePool) -> i64 {
        let (_, pages, _): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(PASSIVE)")
            .fetch_one(checkpoint)
            .await
            .unwrap();
        pages
    }

    #[tokio::test]
    async fn the_log_starts_over_once_no_reader_holds_old_pages() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wal.db");
        let writer = pool(&file).await;
        let checkpoint = pool(&file).await;
        let reader = pool(&file).await;
        sqlx::query("create table t (n integer, pad blob)")
            .execute(&writer)
            .await
            .unwrap();
        write(&writer, 0..40).await;

        // A reader in the middle of a transaction over the first 40 rows.
        let mut held = reader.acquire().await.unwrap();
        sqlx::query("begin").execute(&mut *held).await.unwrap();
        let (count,): (i64,) = sqlx::query_as("select count(*) from t")
            .fetch_one(&mut *held)
            .await
            .unwrap();
        assert_eq!(count, 40);
        write(&writer, 40..80).await;

        // Long enough to start over, but the reader still needs old pages: the round gives up
        // after its short wait (it does not fail), and the log keeps growing.
        let before = round(&checkpoint, &writer, 10).await.unwrap().unwrap();
        assert!(before >= 80, "{before} pages");
        write(&writer, 80..81).await;
        assert!(log_pages(&checkpoint).await > before);

        // The reader lets go: the next round restarts the log and the next commit writes it
        // from the start.
        sqlx::query("commit").execute(&mut *held).await.unwrap();
        drop(held);
        assert!(round(&checkpoint, &writer, 10).await.unwrap().unwrap() > before);
        write(&writer, 81..82).await;
        let after = log_pages(&checkpoint).await;
        assert!(after < 5, "{after} pages after a restart");
        // The writer's busy timeout is back to what it was.
        let (busy_ms,): (i64,) = sqlx::query_as("pragma busy_timeout")
            .fetch_one(&writer)
            .await
            .unwrap();
        assert_eq!(busy_ms, 5_000);

        // Nothing was lost.
        let (count,): (i64,) = sqlx::query_as("select count(*) from t")
            .fetch_one(&reader)
            .await
            .unwrap();
        assert_eq!(count, 82);
    }

    #[tokio::test]
    async fn a_database_not_in_wal_mode_ends_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("rollback.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        assert_eq!(round(&pool, &pool, 10).await.unwrap(), None);
    }
}
