//! The SQLite store's reads on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: a query is a message to that
//! thread and its rows come back as messages, three or four context switches per lookup, which
//! cost more than the lookup itself (a point read by the token index, from pages already in the
//! page cache, takes a few microseconds). Over HTTP with 10,000 sessions, the same prepared
//! `select … join "user"` served about 1.6 times as many requests run here as through a pool.
//!
//! So reads run here, on the thread that asks, through a few connections of this module's own
//! (rusqlite, on the same SQLite library sqlx links). They never wait: the connections have no
//! busy timeout, and a read that finds the database locked (a WAL recovery, a `TRUNCATE`
//! checkpoint restarting the log), or fails in any other way, is answered `None` and the
//! caller runs it through the pool instead, which waits and reports errors as before. A
//! connection is only borrowed for the length of one synchronous query, never across an
//! `.await`, so the idle list never holds more connections than threads that read at once.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

/// Connections for reads on the calling thread, opened as needed, kept up to a limit.
#[derive(Debug)]
pub(super) struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

impl InlineReader {
    /// Opens one connection to the database file at `path` (which must exist and be in WAL
    /// mode), to find out now whether it can; keeps up to `keep` idle connections later.
    pub(super) fn open(path: PathBuf, keep: usize) -> Result<Self, rusqlite::Error> {
        let first = connect(&path)?;
        Ok(Self {
            path,
            idle: Mutex::new(vec![first]),
            keep: keep.max(1),
        })
    }

    /// Runs `sql` with `params` (bound in order), returning up to `limit` rows; `None` when it
    /// could not run here without waiting, or failed: the caller then runs it through the pool.
    pub(super) fn query(
        &self,
        sql: &str,
        params: &[ToSqlOutput<'_>],
        limit: usize,
    ) -> Option<Vec<InlineRow>> {
        let conn = self.take()?;
        match read(&conn, sql, params, limit) {
            Ok(rows) => {
                self.give_back(conn);
                Some(rows)
            }
            // A connection whose query failed is dropped rather than reused.
            Err(error) => {
                tracing::debug!(%error, "SQLite read on the calling thread refused; using the pool");
                None
            }
        }
    }

    fn take(&self) -> Option<Connection> {
        let idle = self.idle.lock().ok()?.pop();
        match idle {
            Some(conn) => Some(conn),
            None => connect(&self.path)
                .map_err(|error| {
                    tracing::debug!(%error, "could not open a SQLite connection for reads on the calling thread; using the pool");
                })
                .ok(),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.keep {
                idle.push(conn);
            }
        }
    }
}

fn connect(path: &std::path::Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Never sleep in SQLite's busy handler on the caller's thread: the pool waits instead.
    conn.busy_timeout(Duration::ZERO)?;
    // The store's pools read through the same memory map (see `SqliteStore::pool_for`).
    conn.pragma_update(None, "mmap_size", 268_435_456_i64)?;
    // These connections only read.
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn read(
    conn: &Connection,
    sql: &str,
    params: &[ToSqlOutput<'_>],
    limit: usize,
) -> Result<Vec<InlineRow>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next()? else { break };
        out.push(InlineRow::copy(row, columns)?);
    }
    Ok(out)
}

/// One value of an [`InlineRow`]: text and blobs are ranges of the row's bytes.
#[derive(Debug)]
enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(Range<usize>),
    Blob(Range<usize>),
}

/// A row read on the calling thread, copied out of SQLite: every text and blob value in one
/// buffer, so that a row costs two allocations whatever its width.
#[derive(Debug)]
pub struct InlineRow {
    bytes: Vec<u8>,
    cells: Vec<Cell>,
}

/// One value of a row, borrowed, by SQLite's storage class (its datatype docs, §2): what a
/// column holds in this row, whatever the column was declared as. The SQLite dialect reads
/// rows of either path (this module's and the pool's) as these.
pub(super) enum Val<'r> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'r str),
    Blob(&'r [u8]),
}

impl InlineRow {
    fn copy(row: &rusqlite::Row<'_>, columns: usize) -> Result<Self, rusqlite::Error> {
        let mut bytes = Vec::new();
        let mut cells = Vec::with_capacity(columns);
        for idx in 0..columns {
            let mut append = |b: &[u8]| {
                let start = bytes.len();
                bytes.extend_from_slice(b);
                start..bytes.len()
            };
            cells.push(match row.get_ref(idx)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Integer(n),
                ValueRef::Real(f) => Cell::Real(f),
                ValueRef::Text(t) => Cell::Text(append(t)),
                ValueRef::Blob(b) => Cell::Blob(append(b)),
            });
        }
        Ok(Self { bytes, cells })
    }

    /// Column `idx`; an error past the last column, or for text that is not UTF-8.
    pub(super) fn get(&self, idx: usize) -> Result<Val<'_>, String> {
        Ok(
            match self
                .cells
                .get(idx)
                .ok_or_else(|| format!("no column {idx}"))?
            {
                Cell::Null => Val::Null,
                Cell::Integer(n) => Val::Integer(*n),
                Cell::Real(f) => Val::Real(*f),
                Cell::Text(r) => Val::Text(
                    std::str::from_utf8(&self.bytes[r.clone()]).map_err(|e| e.to_string())?,
                ),
                Cell::Blob(r) => Val::Blob(&self.bytes[r.clone()]),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("inline.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.execute_batch(
            "create table t (a, b, c, d, e); \
             insert into t values (null, 7, 1.5, 'text', x'00ff');",
        )
        .unwrap();
        path
    }

    #[test]
    fn rows_keep_every_storage_class() {
        let dir = tempfile::tempdir().unwrap();
        let reader = InlineReader::open(file(&dir), 2).unwrap();
        let rows = reader.query("select a, b, c, d, e from t", &[], 1).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert!(matches!(row.get(0), Ok(Val::Null)));
        assert!(matches!(row.get(1), Ok(Val::Integer(7))));
        assert!(matches!(row.get(2), Ok(Val::Real(f)) if f == 1.5));
        assert!(matches!(row.get(3), Ok(Val::Text("text"))));
        assert!(matches!(row.get(4), Ok(Val::Blob(&[0, 255]))));
        assert!(row.get(5).is_err());
    }

    #[test]
    fn parameters_bind_in_order_and_the_limit_holds() {
        let dir = tempfile::tempdir().unwrap();
        let reader = InlineReader::open(file(&dir), 2).unwrap();
        let params = [ToSqlOutput::from(7_i64), ToSqlOutput::from("text")];
        let rows = reader
            .query(
                "select d from t where b = ?1 and d = ?2 union all select 'x'",
                &params,
                1,
            )
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(matches!(rows[0].get(0), Ok(Val::Text("text"))));
    }

    #[test]
    fn a_locked_database_is_left_to_the_pool_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir);
        let reader = InlineReader::open(path.clone(), 2).unwrap();
        // An exclusive-locking connection that has written holds the WAL index: readers get
        // SQLITE_BUSY, which a connection with a busy timeout would sleep on.
        let holder = Connection::open(&path).unwrap();
        holder
            .pragma_update(None, "locking_mode", "exclusive")
            .unwrap();
        holder.execute("insert into t (a) values (1)", []).unwrap();
        assert!(reader.query("select a from t", &[], 1).is_none());
        drop(holder);
        assert!(reader.query("select a from t", &[], 1).is_some());
    }

    #[test]
    fn a_failing_query_is_left_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let reader = InlineReader::open(file(&dir), 2).unwrap();
        assert!(reader
            .query("select nothing from nowhere", &[], 1)
            .is_none());
        assert!(reader
            .query("insert into t (a) values (1)", &[], 1)
            .is_none());
        assert!(reader.query("select a from t", &[], 1).is_some());
    }
}
