//! Refreshes of many sessions in one statement, for a dialect with one writer connection
//! (SQLite).
//!
//! Under refresh-heavy traffic every request extends its session. One `UPDATE` per request on
//! SQLite's single writer means one transaction, one hand-off to the driver's thread and back,
//! and one set of file locks per request, and the requests queue for that one connection. The
//! batcher takes the refreshes waiting at the moment the writer is free, up to [`MAX_BATCH`],
//! and runs them as one conditional `UPDATE … FROM (VALUES …) … RETURNING` in one transaction:
//! each row keeps its own conditions (only a live row, only forward), and each caller gets back
//! exactly the row its own statement would have returned.
//!
//! The batcher is a task on the runtime that opened the store. When that task is gone (its
//! runtime shut down), callers run their statement themselves.

use std::collections::VecDeque;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::dialect::{Backend, Param, Placeholder, Stmt};
use super::schema::SessionColumn;
use crate::error::StoreError;

/// The most refreshes in one statement (three parameters each).
pub(crate) const MAX_BATCH: usize = 64;

/// How many refreshes may wait for the writer before callers wait to queue.
const QUEUE: usize = 4 * MAX_BATCH;

type Reply<R> = oneshot::Sender<Result<Option<R>, StoreError>>;

/// One refresh waiting for the writer.
struct Job<R> {
    key: String,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    reply: Reply<R>,
}

/// A handle on the batching writer: cheap to clone.
pub(crate) struct Batcher<R> {
    jobs: mpsc::Sender<Job<R>>,
}

impl<R> std::fmt::Debug for Batcher<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field(
                "waiting",
                &(self.jobs.max_capacity() - self.jobs.capacity()),
            )
            .finish()
    }
}

impl<R> Clone for Batcher<R> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<R: Send + 'static> Batcher<R> {
    /// Starts the writer task on the current Tokio runtime, with `db` (a dialect whose
    /// statements, reads included, all go to the writer connection) and the SQL around the `VALUES` rows
    /// ([`Queries::extend_many`](super::schema::Queries)). `None` outside a runtime.
    pub(crate) fn start<D: Backend<Row = R>>(db: D, around: &(String, String)) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            db,
            head: around.0.clone(),
            tail: around.1.clone(),
            statements: Vec::new(),
        };
        runtime.spawn(writer.run(queue));
        Some(Self { jobs })
    }

    /// Extends the session stored under `key` as the dialect's one-row `extend` statement
    /// would, together with the refreshes waiting at the same time. `None` when the writer task
    /// is gone before taking the job: the caller runs the statement itself.
    pub(crate) async fn extend(
        &self,
        key: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Option<Result<Option<R>, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            key: key.to_owned(),
            expires_at,
            now,
            reply,
        };
        self.jobs.send(job).await.ok()?;
        Some(answer.await.unwrap_or_else(|_| {
            Err(StoreError::backend(
                "extend",
                std::io::Error::other("the session store's writer stopped (its runtime shut down)"),
            ))
        }))
    }
}

/// The task that owns the writes.
struct Writer<D> {
    db: D,
    head: String,
    tail: String,
    /// The statement for `n` rows at index `n - 1`, built on first use.
    statements: Vec<Stmt>,
}

impl<D: Backend> Writer<D> {
    async fn run(mut self, mut queue: mpsc::Receiver<Job<D::Row>>) {
        let mut waiting: VecDeque<Job<D::Row>> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match queue.recv().await {
                    Some(job) => waiting.push_back(job),
                    // Every handle is gone: the store was dropped.
                    None => return,
                }
            }
            while waiting.len() < QUEUE {
                match queue.try_recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => break,
                }
            }
            let batch = take_batch(&mut waiting);
            if !batch.is_empty() {
                self.write(batch).await;
            }
        }
    }

    /// Runs `batch` (distinct keys) as one statement and answers each caller. When the
    /// statement fails, each refresh is tried alone, so that one caller's error is its own.
    async fn write(&mut self, batch: Vec<Job<D::Row>>) {
        match self.run_statement(&batch).await {
            Ok(mut rows) => {
                for job in batch {
                    let position = rows.iter().position(|row| {
                        D::text(row, SessionColumn::Token as usize)
                            .ok()
                            .flatten()
                            .as_deref()
                            == Some(job.key.as_str())
                    });
                    let _ = job.reply.send(Ok(position.map(|i| rows.swap_remove(i))));
                }
            }
            Err(error) if batch.len() == 1 => {
                let _ = batch
                    .into_iter()
                    .next()
                    .map(|job| job.reply.send(Err(error)));
            }
            Err(_) => {
                for job in batch {
                    let alone = self.run_statement(std::slice::from_ref(&job)).await;
                    let _ = job.reply.send(alone.map(|mut rows| rows.pop()));
                }
            }
        }
    }

    async fn run_statement(&mut self, jobs: &[Job<D::Row>]) -> Result<Vec<D::Row>, StoreError> {
        while self.statements.len() < jobs.len() {
            let rows = self.statements.len() + 1;
            self.statements
                .push(statement::<D>(&self.head, &self.tail, rows));
        }
        let stmt = &self.statements[jobs.len() - 1];
        let params: Vec<Param<'_>> = jobs
            .iter()
            .flat_map(|job| {
                [
                    Param::Text(&job.key),
                    Param::Date(job.expires_at),
                    Param::Date(job.now),
                ]
            })
            .collect();
        self.db.fetch_all("extend", stmt, &params).await
    }
}

/// The next batch: waiting refreshes in arrival order, skipping those whose caller gave up, at
/// most [`MAX_BATCH`], and no key twice (a later refresh of the same session waits for the next
/// batch, so that it sees the first one's result as it would have one at a time).
fn take_batch<R>(waiting: &mut VecDeque<Job<R>>) -> Vec<Job<R>> {
    let mut batch: Vec<Job<R>> = Vec::new();
    let mut later = VecDeque::new();
    while let Some(job) = waiting.pop_front() {
        if job.reply.is_closed() {
            continue;
        }
        if batch.len() == MAX_BATCH || batch.iter().any(|b| b.key == job.key) {
            later.push_back(job);
        } else {
            batch.push(job);
        }
    }
    *waiting = later;
    batch
}

/// The statement for `rows` refreshes, in the dialect's placeholders.
fn statement<D: Backend>(head: &str, tail: &str, rows: usize) -> Stmt {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * 20);
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..3 {
            if column > 0 {
                sql.push_str(", ");
            }
            let n = row * 3 + column + 1;
            match D::SYNTAX.placeholder {
                Placeholder::QuestionNumbered => sql.push_str(&format!("?{n}")),
                Placeholder::DollarNumbered => sql.push_str(&format!("${n}")),
                Placeholder::Question => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    Stmt {
        sql,
        binds: (0..rows * 3).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: &str) -> (Job<()>, oneshot::Receiver<Result<Option<()>, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let now = OffsetDateTime::UNIX_EPOCH;
        (
            Job {
                key: key.to_owned(),
                expires_at: now,
                now,
                reply,
            },
            answer,
        )
    }

    #[test]
    fn a_batch_has_distinct_keys_in_order_and_skips_callers_that_left() {
        let mut waiting = VecDeque::new();
        let mut answers = Vec::new();
        for key in ["a", "b", "a", "c", "gone", "b"] {
            let (job, answer) = job(key);
            waiting.push_back(job);
            answers.push(answer);
        }
        drop(answers.remove(4));
        let batch = take_batch(&mut waiting);
        let keys: Vec<_> = batch.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        let later: Vec<_> = waiting.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(later, ["a", "b"]);
    }

    #[test]
    fn a_batch_is_at_most_max_batch() {
        let mut waiting = VecDeque::new();
        let mut answers = Vec::new();
        for i in 0..MAX_BATCH + 5 {
            let (job, answer) = job(&i.to_string());
            waiting.push_back(job);
            answers.push(answer);
        }
        assert_eq!(take_batch(&mut waiting).len(), MAX_BATCH);
        assert_eq!(waiting.len(), 5);
        assert_eq!(waiting.front().map(|j| j.key.as_str()), Some("64"));
    }
}
