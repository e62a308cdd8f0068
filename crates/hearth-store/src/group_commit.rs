//! Group commit: writes that arrive while a write transaction runs are stored together in
//! the next one.
//!
//! A send is a handful of statements plus a commit. Run one transaction per send and the
//! database's writer (SQLite has exactly one) spends most of its time on round trips and
//! commits, so sends queue behind each other and latency climbs with the rate. Here each
//! worker takes every job waiting when it becomes free (up to `max_batch`) and runs them as
//! one batch. An idle server still runs each job at once, alone: nothing waits for a batch
//! to fill.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Jobs waiting for a worker, at most (callers wait for room beyond that).
const QUEUE: usize = 4096;

/// A queue of jobs and the workers that run them in batches. Clones share the queue; the
/// workers end when the last clone is dropped.
#[derive(Debug)]
pub(crate) struct GroupCommit<Job, Out> {
    queue: mpsc::Sender<(Job, oneshot::Sender<Out>)>,
}

impl<Job, Out> Clone for GroupCommit<Job, Out> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<Job: Send + 'static, Out: Send + 'static> GroupCommit<Job, Out> {
    /// Starts `workers` tasks that each run batches of up to `max_batch` jobs with `run`,
    /// which returns one output per job, in order.
    pub(crate) fn start<Run, Fut>(workers: usize, max_batch: usize, run: Run) -> Self
    where
        Run: Fn(Vec<Job>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Out>> + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let run = Arc::new(run);
        for _ in 0..workers.max(1) {
            tokio::spawn(work(receiver.clone(), run.clone(), max_batch.max(1)));
        }
        Self { queue }
    }

    /// Runs `job` in the next batch and returns its output; `None` if the workers are gone.
    pub(crate) async fn submit(&self, job: Job) -> Option<Out> {
        let (reply, output) = oneshot::channel();
        self.queue.send((job, reply)).await.ok()?;
        output.await.ok()
    }
}

type Receiver<Job, Out> = Arc<Mutex<mpsc::Receiver<(Job, oneshot::Sender<Out>)>>>;

async fn work<Job, Out, Run, Fut>(receiver: Receiver<Job, Out>, run: Arc<Run>, max_batch: usize)
where
    Run: Fn(Vec<Job>) -> Fut,
    Fut: Future<Output = Vec<Out>>,
{
    loop {
        // One worker at a time collects a batch; the others wait their turn, so a job goes
        // to the first free worker.
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < max_batch
                && let Ok(next) = receiver.try_recv()
            {
                batch.push(next);
            }
            batch
        };
        let (jobs, replies): (Vec<Job>, Vec<oneshot::Sender<Out>>) = batch.into_iter().unzip();
        // A panic fails this batch's callers (their replies are dropped), not every later one.
        let Ok(outputs) = AssertUnwindSafe(run(jobs)).catch_unwind().await else {
            tracing::error!(jobs = replies.len(), "a batch panicked; its jobs failed");
            continue;
        };
        debug_assert_eq!(outputs.len(), replies.len(), "one output per job");
        for (reply, output) in replies.into_iter().zip(outputs) {
            // A caller that gave up no longer waits; its job is done all the same.
            let _ = reply.send(output);
        }
    }
}

/// Stores `jobs` with `store` (one transaction for all), and if that transaction fails, each
/// job alone in its own, so one job the database refuses cannot make the others fail.
pub(crate) async fn each_alone_if_the_batch_fails<Job, Out, Store, Fut>(
    jobs: Vec<Job>,
    store: Store,
) -> Vec<StoreResult<Out>>
where
    Job: Clone,
    Store: Fn(Arc<[Job]>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<StoreResult<Out>>>>,
{
    let jobs: Arc<[Job]> = jobs.into();
    let batch_error = match store(jobs.clone()).await {
        Ok(results) => return results,
        Err(error) if jobs.len() == 1 => return vec![Err(error)],
        Err(error) => error,
    };
    tracing::warn!(error = %batch_error, jobs = jobs.len(), "a batch of writes failed; storing them one by one");
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs.iter() {
        let alone = store(Arc::from([job.clone()])).await;
        results.push(alone.and_then(|mut one| one.pop().unwrap_or(Err(StoreError::NotFound))));
    }
    results
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_lone_job_runs_at_once_and_gets_its_own_output() {
        let commit = GroupCommit::start(1, 8, |jobs: Vec<u32>| async move { jobs.iter().map(|j| j * 10).collect() });
        assert_eq!(commit.submit(4).await, Some(40));
        assert_eq!(commit.submit(5).await, Some(50));
    }

    #[tokio::test]
    async fn jobs_waiting_while_a_batch_runs_go_together_into_the_next() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let commit = {
            let (batches, gate, started) = (batches.clone(), gate.clone(), started.clone());
            Arc::new(GroupCommit::start(1, 3, move |jobs: Vec<u32>| {
                let (batches, gate, started) = (batches.clone(), gate.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    // Each batch waits to be let through, so the next jobs pile up meanwhile.
                    gate.acquire().await.expect("open").forget();
                    batches.lock().expect("lock").push(jobs.clone());
                    jobs
                }
            }))
        };
        let first = tokio::spawn({
            let commit = commit.clone();
            async move { commit.submit(0).await }
        });
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..=4)
            .map(|job| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.submit(job).await })
            })
            .collect();
        // Let the four queue up behind the running batch.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(3);
        assert_eq!(first.await.expect("task"), Some(0));
        for (job, task) in (1..=4).zip(rest) {
            assert_eq!(task.await.expect("task"), Some(job));
        }
        let batches = batches.lock().expect("lock").clone();
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        // The first alone; then at most `max_batch` (3) of the four waiting, then the rest.
        assert_eq!(sizes, vec![1, 3, 1], "{batches:?}");
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_its_own_jobs_only() {
        let commit = GroupCommit::start(1, 8, |jobs: Vec<u32>| async move {
            assert!(!jobs.contains(&13), "unlucky");
            jobs
        });
        assert_eq!(commit.submit(13).await, None);
        assert_eq!(commit.submit(14).await, Some(14));
    }

    #[tokio::test]
    async fn workers_stop_when_the_queue_is_dropped() {
        let alive = Arc::new(());
        let commit = {
            let alive = alive.clone();
            GroupCommit::start(2, 4, move |jobs: Vec<u8>| {
                let _keep = alive.clone();
                async move { jobs }
            })
        };
        assert_eq!(commit.submit(1).await, Some(1));
        drop(commit);
        for _ in 0..100 {
            if Arc::strong_count(&alive) == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the workers still hold the run function");
    }
}
