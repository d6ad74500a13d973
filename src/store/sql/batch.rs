//! Refreshes of many sessions in one statement, for a dialect with one writer connection
//! (SQLite).
//!
//! Under refresh-heavy traffic every request extends its session. One `UPDATE` per request on
//! SQLite's single writer means one transaction, one hand-off to the driver's thread and back,
//! and one set of file locks per request, and the requests queue for that one connection. Here
//! the refreshes queue instead, and whoever gets the writer next runs all those waiting, up to
//! [`MAX_BATCH`], as one conditional `UPDATE … FROM (VALUES …) … RETURNING` in one
//! transaction: each row keeps its own conditions (only a live row, only forward), and each
//! caller gets back exactly the row its own statement would have returned.
//!
//! There is no background task: the callers take turns at the writer (a fair async mutex), and a
//! caller whose refresh was answered by someone else's batch returns without waiting for its
//! turn. So the store works from any runtime, and a caller that gives up mid-batch costs the
//! others nothing but a retry of their own statement.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::future::{select, Either};
use time::OffsetDateTime;
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::dialect::{Backend, ExtendMany, Param, Placeholder, Stmt};
use super::schema::SessionColumn;
use crate::error::StoreError;

/// The most refreshes in one statement (three parameters each).
const MAX_BATCH: usize = 64;

type Answer<R> = Result<Option<R>, StoreError>;

/// One refresh waiting for the writer.
struct Job<R> {
    key: String,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    reply: oneshot::Sender<Answer<R>>,
}

/// The refreshes waiting for the writer, and the writer: cheap to clone.
pub(crate) struct Batcher<D: Backend> {
    shared: Arc<Shared<D>>,
}

struct Shared<D: Backend> {
    waiting: Mutex<VecDeque<Job<D::Row>>>,
    writer: tokio::sync::Mutex<Writer<D>>,
}

impl<D: Backend> Clone for Batcher<D> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<D: Backend> std::fmt::Debug for Batcher<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.shared.waiting.lock().map_or(0, |w| w.len());
        f.debug_struct("Batcher")
            .field("waiting", &waiting)
            .finish()
    }
}

impl<D: Backend> Batcher<D> {
    /// A batcher writing through `db` (a dialect whose statements, reads included, all go to
    /// the writer connection), with the SQL around the `VALUES` rows
    /// ([`Queries::extend_many`](super::schema::Queries)).
    pub(crate) fn new(db: D, around: &ExtendMany) -> Self {
        Self {
            shared: Arc::new(Shared {
                waiting: Mutex::new(VecDeque::new()),
                writer: tokio::sync::Mutex::new(Writer {
                    db,
                    head: around.head.clone(),
                    tail: around.tail.clone(),
                    statements: Vec::new(),
                }),
            }),
        }
    }

    /// Extends the session stored under `key` as the dialect's one-row `extend` statement
    /// would, together with the refreshes waiting at the same time.
    pub(crate) async fn extend(
        &self,
        key: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Answer<D::Row> {
        let (reply, mut answer) = oneshot::channel();
        self.queue().push_back(Job {
            key: key.to_owned(),
            expires_at,
            now,
            reply,
        });
        loop {
            let turn = self.shared.writer.lock();
            futures_util::pin_mut!(turn);
            match select(&mut answer, turn).await {
                // Someone else's batch carried this refresh.
                Either::Left((Ok(done), _)) => return done,
                // The caller running that batch gave up mid-statement: run it alone (it is
                // conditional, so running it again after it landed changes nothing).
                Either::Left((Err(_), _)) => {
                    let mut writer = self.shared.writer.lock().await;
                    return writer.alone(key, expires_at, now).await;
                }
                Either::Right((mut writer, _)) => match answer.try_recv() {
                    Ok(done) => return done,
                    Err(TryRecvError::Closed) => {
                        return writer.alone(key, expires_at, now).await;
                    }
                    Err(TryRecvError::Empty) => {
                        let batch = take_batch(&mut self.queue());
                        writer.write(batch).await;
                    }
                },
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Job<D::Row>>> {
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The writer's side: the statements by batch size.
struct Writer<D> {
    db: D,
    head: String,
    tail: String,
    /// The statement for `2^i` rows at index `i`, built on first use.
    statements: Vec<Stmt>,
}

impl<D: Backend> Writer<D> {
    /// Runs `batch` (distinct keys) as one statement and answers each caller. When the
    /// statement fails, every caller gets its error (busy, I/O and the like are the batch's,
    /// not one row's).
    async fn write(&mut self, batch: Vec<Job<D::Row>>) {
        if batch.is_empty() {
            return;
        }
        let rows: Vec<_> = batch
            .iter()
            .map(|job| (job.key.as_str(), job.expires_at, job.now))
            .collect();
        match self.run(&rows).await {
            Ok(mut found) => {
                for job in batch {
                    let position = found.iter().position(|row| {
                        D::text(row, SessionColumn::Token as usize)
                            .ok()
                            .flatten()
                            .as_deref()
                            == Some(job.key.as_str())
                    });
                    let _ = job.reply.send(Ok(position.map(|i| found.swap_remove(i))));
                }
            }
            Err(error) => {
                let message = error.to_string();
                let mut first = Some(error);
                for job in batch {
                    let error = first.take().unwrap_or_else(|| {
                        StoreError::backend("extend", std::io::Error::other(message.clone()))
                    });
                    let _ = job.reply.send(Err(error));
                }
            }
        }
    }

    /// One refresh on its own.
    async fn alone(
        &mut self,
        key: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Answer<D::Row> {
        Ok(self.run(&[(key, expires_at, now)]).await?.pop())
    }

    async fn run(
        &mut self,
        rows: &[(&str, OffsetDateTime, OffsetDateTime)],
    ) -> Result<Vec<D::Row>, StoreError> {
        // Sizes rounded up to a power of two, padded with rows that match nothing (`token =
        // NULL` is never true): seven statements in the driver's cache, not sixty-four.
        let size = rows.len().next_power_of_two();
        let index = size.trailing_zeros() as usize;
        while self.statements.len() <= index {
            let n = 1 << self.statements.len();
            self.statements
                .push(statement::<D>(&self.head, &self.tail, n));
        }
        let mut params = Vec::with_capacity(size * 3);
        for &(key, expires_at, now) in rows {
            params.extend([Param::Text(key), Param::Date(expires_at), Param::Date(now)]);
        }
        params.resize(size * 3, Param::OptText(None));
        self.db
            .fetch_all("extend", &self.statements[index], &params)
            .await
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

    fn job(key: &str) -> (Job<()>, oneshot::Receiver<Answer<()>>) {
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
