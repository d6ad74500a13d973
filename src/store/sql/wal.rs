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
//! 3. once no connection has committed for [`IDLE_ROUNDS`] rounds (a second) and the log file
//!    is larger than [`TRUNCATE_BYTES`], truncates it on the writer connection (`TRUNCATE`, with
//!    the same short wait): after a burst of writes the file does not keep its largest size
//!    for as long as the process runs. Its stall falls after a second without commits; a write
//!    that arrives at that moment waits for it as it would for a restart.
//!
//! A round that finds another connection checkpointing (Better Auth's own, after its commits)
//! tries again at the next one; a restart or a truncation that cannot finish is tried again
//! after 1, 2, 4, … up to [`MAX_BACKOFF_ROUNDS`] rounds. The task stops when the store is dropped (its last
//! clone), or at once when the database is not in WAL mode.

use std::path::PathBuf;
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

/// How long a restart or a truncation waits for readers of old pages.
const RESTART_WAIT_MS: u32 = 10;

/// How many rounds in a row the log must see no write before its file is truncated: one second.
const IDLE_ROUNDS: u32 = 4;

/// The log file size past which an idle log is truncated: 4 MiB.
const TRUNCATE_BYTES: u64 = 4 << 20;

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
        let log_file = log_file(&checkpoint).await;
        if log_file.is_none() {
            tracing::debug!("no path for SQLite's log file; it is restarted but never truncated");
        }
        let mut state = State {
            log_file,
            ..State::default()
        };
        loop {
            tick.tick().await;
            if alive.strong_count() == 0 {
                return;
            }
            if let Err(error) = round(&checkpoint, &writer, &Limits::DEFAULT, &mut state).await {
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

/// The path of the main database's log file (`…-wal`); `None` for an in-memory database or
/// when SQLite does not say.
async fn log_file(pool: &SqlitePool) -> Option<PathBuf> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as("pragma database_list")
        .fetch_all(pool)
        .await
        .ok()?;
    let (_, _, file) = rows.into_iter().find(|(_, name, _)| name == "main")?;
    (!file.is_empty()).then(|| PathBuf::from(format!("{file}-wal")))
}

/// The log file's length in bytes (0 when there is no file to read).
fn log_len(file: Option<&std::path::Path>) -> u64 {
    file.and_then(|file| std::fs::metadata(file).ok())
        .map_or(0, |m| m.len())
}

/// The thresholds of a round (tests make them small).
#[derive(Debug)]
struct Limits {
    /// The log length (in pages) past which it starts over.
    restart_pages: i64,
    /// Rounds in a row without a write before the log file is truncated.
    idle_rounds: u32,
    /// The log file size past which an idle log is truncated.
    truncate_bytes: u64,
}

impl Limits {
    const DEFAULT: Self = Self {
        restart_pages: RESTART_PAGES,
        idle_rounds: IDLE_ROUNDS,
        truncate_bytes: TRUNCATE_BYTES,
    };
}

/// What the task remembers between rounds.
#[derive(Debug, Default)]
struct State {
    /// When the next restart may be tried.
    backoff: Backoff,
    /// When the next truncation may be tried.
    truncate_backoff: Backoff,
    idle: Idle,
    /// The log file, whose size decides a truncation (none: never truncated).
    log_file: Option<PathBuf>,
}

/// How long the database has gone without a commit.
#[derive(Debug, Default)]
struct Idle {
    /// The checkpoint connection's `data_version` at the last round.
    version: Option<i64>,
    /// Rounds in a row that found the same version and everything copied back.
    rounds: u32,
}

impl Idle {
    /// Counts a round that found `data_version` at `version` and everything copied back
    /// (`settled`) or not: the rounds in a row without a commit by another connection and with
    /// nothing left to copy. (The log's length cannot tell: a commit after a complete
    /// checkpoint starts the log over, often at the same length.)
    fn count(&mut self, version: i64, settled: bool) -> u32 {
        if settled && self.version == Some(version) {
            self.rounds = self.rounds.saturating_add(1);
        } else {
            self.version = Some(version);
            self.rounds = 0;
        }
        self.rounds
    }
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
    /// The log's length in pages before this round, whether it was restarted, and whether its
    /// file was truncated (`None`: not tried).
    Log {
        pages: i64,
        restarted: bool,
        truncated: Option<bool>,
    },
}

/// One checkpoint; a truncation of the log file when no connection committed for
/// `limits.idle_rounds` rounds and the file is larger than `limits.truncate_bytes`; else a
/// restart of the log when it is longer than `limits.restart_pages`. Each waits for its
/// backoff after an attempt that could not finish.
async fn round(
    checkpoint: &SqlitePool,
    writer: &SqlitePool,
    limits: &Limits,
    state: &mut State,
) -> Result<Round, sqlx::Error> {
    let (busy, pages, copied): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(PASSIVE)")
        .fetch_one(checkpoint)
        .await?;
    // SQLite reports -1 pages when another connection holds the checkpoint lock.
    if busy != 0 && pages < 0 {
        return Ok(Round::Busy);
    }
    // Changed by every commit of another connection since the last round (the pool is this
    // one connection, kept for the store's life). Read after the checkpoint, as close to a
    // truncation as it can be: a commit after it is only seen at the next round.
    let (version,): (i64,) = sqlx::query_as("pragma data_version")
        .fetch_one(checkpoint)
        .await?;
    let idle = state.idle.count(version, copied == pages) >= limits.idle_rounds;
    let (mut restarted, mut truncated) = (false, None);
    if idle && log_len(state.log_file.as_deref()) > limits.truncate_bytes {
        // `TRUNCATE` also starts the log over (a `RESTART` alone leaves the length SQLite
        // reports, and so the next rounds' restarts, until the next commit).
        if state.truncate_backoff.ready() {
            let done = on_writer(writer, "TRUNCATE").await?;
            state.truncate_backoff.finished(done);
            truncated = Some(done);
        }
    } else if pages > limits.restart_pages && state.backoff.ready() {
        restarted = on_writer(writer, "RESTART").await?;
        state.backoff.finished(restarted);
    }
    Ok(Round::Log {
        pages,
        restarted,
        truncated,
    })
}

/// Runs `wal_checkpoint(mode)` (`RESTART` or `TRUNCATE`) on the writer connection: copies what
/// is left of the log and has the next commit write it from its start (`TRUNCATE` also empties
/// the file). Its busy timeout is [`RESTART_WAIT_MS`] meanwhile: a reader that holds on to old
/// pages longer makes this round give up, and a later one tries again. Whether it finished.
async fn on_writer(writer: &SqlitePool, mode: &'static str) -> Result<bool, sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let (busy_ms,): (i64,) = sqlx::query_as("pragma busy_timeout")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(&format!("pragma busy_timeout = {RESTART_WAIT_MS}"))
        .execute(&mut *conn)
        .await?;
    let done: Result<(i64, i64, i64), _> =
        sqlx::query_as(&format!("pragma wal_checkpoint({mode})"))
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
    tracing::trace!(
        mode,
        busy,
        pages,
        copied,
        "SQLite write-ahead log checkpoint"
    );
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

    /// A database file in WAL mode (removed with `_dir`) holding table `t` with 40 rows, and
    /// three pools of one connection on it.
    struct Db {
        _dir: tempfile::TempDir,
        writer: SqlitePool,
        checkpoint: SqlitePool,
        reader: SqlitePool,
    }

    async fn db(name: &str) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        let writer = pool(&file).await;
        let checkpoint = pool(&file).await;
        let reader = pool(&file).await;
        sqlx::query("create table t (n integer, pad blob)")
            .execute(&writer)
            .await
            .unwrap();
        write(&writer, 0..40).await;
        Db {
            _dir: dir,
            writer,
            checkpoint,
            reader,
        }
    }

    /// The rows of `t` as `conn` sees them.
    async fn rows<'c>(conn: impl sqlx::Executor<'c, Database = sqlx::Sqlite>) -> i64 {
        let (count,): (i64,) = sqlx::query_as("select count(*) from t")
            .fetch_one(conn)
            .await
            .unwrap();
        count
    }

    /// A reader in the middle of a transaction, and the rows it sees.
    async fn held_read(reader: &SqlitePool) -> (sqlx::pool::PoolConnection<sqlx::Sqlite>, i64) {
        let mut held = reader.acquire().await.unwrap();
        sqlx::query("begin").execute(&mut *held).await.unwrap();
        let count = rows(&mut *held).await;
        (held, count)
    }

    async fn busy_timeout_ms(pool: &SqlitePool) -> i64 {
        let (ms,): (i64,) = sqlx::query_as("pragma busy_timeout")
            .fetch_one(pool)
            .await
            .unwrap();
        ms
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
        let Db {
            _dir,
            writer,
            checkpoint,
            reader,
        } = db("wal.db").await;

        // A reader in the middle of a transaction over the first 40 rows.
        let (mut held, count) = held_read(&reader).await;
        assert_eq!(count, 40);
        write(&writer, 40..80).await;

        // Long enough to start over, but the reader still needs old pages: the round gives up
        // after its short wait (it does not fail), and the log keeps growing.
        let mut state = State::default();
        let limits = Limits {
            restart_pages: 10,
            ..Limits::DEFAULT
        };
        let Round::Log {
            pages: before,
            restarted,
            ..
        } = round(&checkpoint, &writer, &limits, &mut state)
            .await
            .unwrap()
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
            round(&checkpoint, &writer, &limits, &mut state)
                .await
                .unwrap(),
            Round::Log {
                restarted: false,
                ..
            }
        ));
        assert!(matches!(
            round(&checkpoint, &writer, &limits, &mut state).await.unwrap(),
            Round::Log { restarted: true, pages, .. } if pages > before
        ));
        write(&writer, 81..82).await;
        let after = log_pages(&checkpoint).await;
        assert!(after < 5, "{after} pages after a restart");
        // The writer's busy timeout is back to what it was.
        assert_eq!(busy_timeout_ms(&writer).await, 5_000);

        // Nothing was lost.
        assert_eq!(rows(&reader).await, 82);
    }

    #[tokio::test]
    async fn an_idle_log_file_is_truncated_unless_a_reader_holds_on() {
        let Db {
            _dir: dir,
            writer,
            checkpoint,
            reader,
        } = db("idle.db").await;
        let mut state = State {
            log_file: log_file(&checkpoint).await,
            ..State::default()
        };
        let wal = state
            .log_file
            .clone()
            .expect("a file database has a log file");
        assert_eq!(wal, dir.path().join("idle.db-wal"));
        let limits = Limits {
            restart_pages: i64::MAX,
            idle_rounds: 2,
            truncate_bytes: 64 << 10,
        };
        let big = log_len(Some(&wal));
        assert!(big > 64 << 10, "{big} bytes");
        let mut truncations = Vec::new();
        let go = async |state: &mut State| match round(&checkpoint, &writer, &limits, state)
            .await
            .unwrap()
        {
            Round::Log { truncated, .. } => truncated,
            Round::Busy => panic!("nobody else checkpoints here"),
        };

        // A write between rounds keeps the log from counting as idle.
        truncations.push(go(&mut state).await);
        write(&writer, 40..41).await;
        truncations.push(go(&mut state).await);
        truncations.push(go(&mut state).await);
        assert_eq!(truncations, [None, None, None]);
        assert!(log_len(Some(&wal)) >= big);

        // A reader in a transaction that reads the log (it began before the last write was
        // copied back): the truncation gives up after its short wait, and the next idle round
        // waits (backoff). (A reader that begins once everything is copied back reads the
        // database file alone and does not block.)
        write(&writer, 41..42).await;
        let (mut held, count) = held_read(&reader).await;
        assert_eq!(count, 42);
        truncations.clear();
        for _ in 0..4 {
            truncations.push(go(&mut state).await);
        }
        assert_eq!(truncations, [None, None, Some(false), None]);
        assert!(log_len(Some(&wal)) >= big);
        sqlx::query("commit").execute(&mut *held).await.unwrap();
        drop(held);

        // Still idle (a read commits nothing): the next round truncates, and the file is
        // empty; the next commit writes it again.
        truncations.clear();
        for _ in 0..2 {
            truncations.push(go(&mut state).await);
        }
        assert_eq!(truncations, [Some(true), None]);
        assert_eq!(log_len(Some(&wal)), 0);
        write(&writer, 42..43).await;
        assert!(log_len(Some(&wal)) > 0);
        assert_eq!(rows(&reader).await, 43, "nothing was lost");
        assert_eq!(
            busy_timeout_ms(&writer).await,
            5_000,
            "the writer's busy timeout is back"
        );
    }

    #[tokio::test]
    async fn an_in_memory_database_has_no_log_file() {
        let memory = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        assert_eq!(log_file(&memory).await, None);
        assert_eq!(log_len(None), 0);
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
