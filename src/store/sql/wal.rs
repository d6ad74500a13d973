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
//! A round that finds another connection checkpointing (Better Auth's own, after its commits)
//! tries again at the next one; a restart that cannot finish is tried again after 1, 2, 4, …
//! up to [`MAX_BACKOFF_ROUNDS`] rounds. The task stops when the store is dropped (its last
//! clone), or at once when the database is not in WAL mode.

use std::sync::Weak;
use std::time::Duration;

use sqlx::SqlitePool;

/// How often the log is checkpointed. Measured under refresh-heavy traffic (`wrk`, 64
/// connections, 10,000 sessions, two CPUs): 100 ms gave 15,900 requests/s, 250 ms 16,400 to
/// 17,700, with the same p99.
const INTERVAL: Duration = Duration::from_millis(250);

/// The log length (in pages) past which it starts over: 64 MiB of 4 KiB pages.
const RESTART_PAGES: i64 = 16_384;

/// The store's connections' own `wal_autocheckpoint`: only if the task cannot keep up.
pub(crate) const FALLBACK_PAGES: i64 = 4 * RESTART_PAGES;

/// How long a restart waits for readers of old pages.
const RESTART_WAIT_MS: u32 = 10;

/// The most rounds a restart waits after one that could not finish (a reader held on to old
/// pages): the wait doubles from one round up to this, so that a long reader (a backup, a long
/// transaction) does not cost the writer a short stall every round.
const MAX_BACKOFF_ROUNDS: u32 = 16;

/// Starts the task on the current runtime (none outside one). It ends at once when the database
/// is not in WAL mode.
pub(crate) fn keep_short(checkpoint: SqlitePool, writer: SqlitePool, alive: Weak<()>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        match in_wal_mode(&checkpoint).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::debug!(%error, "could not read SQLite's journal mode; not checkpointing");
                return;
            }
        }
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Backoff::default();
        loop {
            tick.tick().await;
            if alive.strong_count() == 0 {
                return;
            }
            if let Err(error) = round(&checkpoint, &writer, RESTART_PAGES, &mut backoff).await {
                tracing::debug!(%error, "SQLite checkpoint failed; trying again");
            }
        }
    });
}

/// Whether the database is in WAL mode.
async fn in_wal_mode(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let (mode,): (String,) = sqlx::query_as("pragma journal_mode")
        .fetch_one(pool)
        .await?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

/// When the next restart may be tried.
#[derive(Debug, Default)]
struct Backoff {
    /// Rounds to skip before the next restart.
    skip: u32,
    /// Rounds to skip after the next restart that cannot finish.
    next: u32,
}

impl Backoff {
    /// Whether this round may try a restart (counting a skipped one).
    fn ready(&mut self) -> bool {
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }

    fn finished(&mut self, done: bool) {
        if done {
            self.next = 0;
        } else {
            self.next = (self.next * 2).clamp(1, MAX_BACKOFF_ROUNDS);
            self.skip = self.next;
        }
    }
}

/// What a round saw.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Another connection (Better Auth's, a backup tool) was checkpointing: next round.
    Busy,
    /// The log's length in pages before this round, and whether it was restarted.
    Log { pages: i64, restarted: bool },
}

/// One checkpoint, and a restart of the log when it is longer than `restart_pages` (unless
/// `backoff` says to wait).
async fn round(
    checkpoint: &SqlitePool,
    writer: &SqlitePool,
    restart_pages: i64,
    backoff: &mut Backoff,
) -> Result<Round, sqlx::Error> {
    let (busy, pages, _copied): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(PASSIVE)")
        .fetch_one(checkpoint)
        .await?;
    // SQLite reports -1 pages when another connection holds the checkpoint lock.
    if busy != 0 && pages < 0 {
        return Ok(Round::Busy);
    }
    let mut restarted = false;
    if pages > restart_pages && backoff.ready() {
        restarted = restart(writer).await?;
        backoff.finished(restarted);
    }
    Ok(Round::Log { pages, restarted })
}

/// Copies what is left of the log and has the next commit write it from its start, on the
/// writer connection. Its busy timeout is [`RESTART_WAIT_MS`] meanwhile: a reader that holds on
/// to old pages longer makes this round give up, and the next one tries again.
async fn restart(writer: &SqlitePool) -> Result<bool, sqlx::Error> {
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
    tracing::trace!(busy, pages, copied, "SQLite write-ahead log restart");
    Ok(busy == 0)
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
        let mut backoff = Backoff::default();
        let Round::Log {
            pages: before,
            restarted,
        } = round(&checkpoint, &writer, 10, &mut backoff).await.unwrap()
        else {
            panic!("nobody else checkpoints here");
        };
        assert!(before >= 80, "{before} pages");
        assert!(!restarted);
        write(&writer, 80..81).await;
        assert!(log_pages(&checkpoint).await > before);

        // The reader lets go. The next round waits (backoff after a restart that could not
        // finish); the one after restarts the log, and the next commit writes it from the start.
        sqlx::query("commit").execute(&mut *held).await.unwrap();
        drop(held);
        assert!(matches!(
            round(&checkpoint, &writer, 10, &mut backoff).await.unwrap(),
            Round::Log {
                restarted: false,
                ..
            }
        ));
        assert!(matches!(
            round(&checkpoint, &writer, 10, &mut backoff).await.unwrap(),
            Round::Log { restarted: true, pages } if pages > before
        ));
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
    async fn only_a_database_in_wal_mode_is_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("rollback.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete);
        let rollback = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        assert!(!in_wal_mode(&rollback).await.unwrap());
        assert!(in_wal_mode(&pool(&dir.path().join("wal.db")).await)
            .await
            .unwrap());
    }

    #[test]
    fn restarts_that_cannot_finish_back_off_up_to_a_limit() {
        let mut backoff = Backoff::default();
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert!(backoff.ready());
            backoff.finished(false);
            let mut skipped = 0;
            while !backoff.ready() {
                skipped += 1;
            }
            waits.push(skipped);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 16, 16]);
        // A restart that finishes resets the wait.
        backoff.finished(true);
        backoff.finished(false);
        let mut skipped = 0;
        while !backoff.ready() {
            skipped += 1;
        }
        assert_eq!(skipped, 1);
    }
}
