//! One sequencer per log: numbering, hashing, tiling and group commit.
//!
//! Submissions queue on a channel. The sequencer takes the first and everything else already
//! waiting (up to `max_batch_events`), assigns consecutive `seq`s and one non-decreasing time,
//! encodes and hashes the leaves, extends the tree, and hands the store one batch to commit.
//! While that commit is on its way to disk, new submissions queue up and form the next batch:
//! the commit rate bounds the batch count, not the event count. Every submitter is answered
//! only after the commit that holds its events returned.

use std::sync::Arc;
use std::time::Instant;

use logbook_core::{leaf, EventId, NewEvent, Timestamp};
use logbook_integrity::tree::TreeEdge;
use logbook_integrity::{record_hash, Hash};
use logbook_store::{CommitBatch, CommitError, EventRow, Mutation, MutationEntry, Org, StoreError, StoredCheckpoint};
use parking_lot::Mutex as SyncMutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::trust::Anchor;
use crate::{witness, AppendError, Appended, Shared};

mod checks;

struct Submission {
    events: Vec<NewEvent>,
    mutation: Option<Mutation>,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// A cheap handle to a running sequencer.
#[derive(Debug, Clone)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Submission>,
    task: Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>,
    health: Arc<SyncMutex<Result<(), String>>>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission").field("events", &self.events.len()).finish()
    }
}

impl SequencerHandle {
    pub(crate) async fn append(
        &self,
        events: Vec<NewEvent>,
        mutation: Option<Mutation>,
    ) -> Result<Appended, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Submission { events, mutation, reply }).await.map_err(|_| AppendError::ShuttingDown)?;
        // A dropped reply means the sequencer stopped before answering: not stored.
        rx.await.unwrap_or(Err(AppendError::Unavailable))
    }

    pub(crate) fn health(&self) -> Result<(), String> {
        self.health.lock().clone()
    }

    /// Lets the sequencer drain its queue, sign a final checkpoint and stop.
    pub(crate) async fn close(self) {
        let SequencerHandle { tx, task, .. } = self;
        drop(tx);
        let t = task.lock().await.take();
        if let Some(t) = t {
            let _ = t.await;
        }
    }
}

pub(crate) struct Sequencer {
    shared: Arc<Shared>,
    org: Org,
    origin: String,
    edge: TreeEdge,
    last_time: Timestamp,
    checkpointed_size: u64,
    last_checkpoint_at: Option<Instant>,
    health: Arc<SyncMutex<Result<(), String>>>,
    /// Set by a storage I/O error: from then on every submission is refused and nothing is
    /// signed, until the process restarts and reloads the log from what is really on disk.
    stopped: Option<String>,
    /// The newest trusted checkpoint the tree is known to extend (see [`crate::trust`]).
    anchor: Option<Anchor>,
    /// Set when the stored tree does not extend a trusted checkpoint: every submission is
    /// refused and nothing is signed or written to the witness directory, until restart.
    damaged: Option<String>,
}

/// How many times a batch is rebuilt after another writer moved the head before giving up.
const MAX_HEAD_RETRIES: usize = 100;

impl Sequencer {
    /// Loads the log's edge, checks it against the latest checkpoint, signs one if the log is
    /// ahead of it, and starts the task.
    pub(crate) async fn start(shared: Arc<Shared>, org: Org) -> Result<SequencerHandle, AppendError> {
        let origin = crate::origin(&shared.config.origin_prefix, &org.slug);
        let mut s = Sequencer {
            shared: shared.clone(),
            org,
            origin,
            edge: TreeEdge::new(),
            last_time: Timestamp::from_micros(i64::MIN),
            checkpointed_size: 0,
            last_checkpoint_at: None,
            health: Arc::new(SyncMutex::new(Ok(()))),
            stopped: None,
            anchor: None,
            damaged: None,
        };
        // The checkpoint first, then the head: a checkpoint is stored only after its events, so
        // another writer appending and signing in between cannot make the head look short.
        let latest = shared.store.latest_checkpoint(s.org.id).await?;
        s.reload().await?;
        if let Some(cp) = &latest {
            s.checkpointed_size = cp.size;
        }
        s.check_at_start(latest).await?;
        if s.damaged.is_none() && s.edge.size() > s.checkpointed_size {
            s.sign_checkpoint().await;
        }
        let (tx, rx) = mpsc::channel(4096);
        let health = s.health.clone();
        let task = tokio::spawn(s.run(rx));
        Ok(SequencerHandle { tx, task: Arc::new(tokio::sync::Mutex::new(Some(task))), health })
    }

    /// (Re)reads the head and the tree edge from the store.
    async fn reload(&mut self) -> Result<(), AppendError> {
        let store = &self.shared.store;
        let head = store.log_head(self.org.id).await?;
        let need = TreeEdge::tiles_for(head.size);
        let data = store.read_tiles(self.org.id, &need).await?;
        let tiles: Vec<_> = need.into_iter().zip(data).collect();
        self.edge = TreeEdge::restore(head.size, &tiles).map_err(|e| AppendError::Damaged(e.to_string()))?;
        if let Some(t) = head.last_time {
            self.last_time = t;
        }
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Submission>) {
        let mut carry: Option<Submission> = None;
        loop {
            let first = match carry.take() {
                Some(s) => s,
                None => {
                    let due = self.checkpoint_due();
                    tokio::select! {
                        msg = rx.recv() => match msg {
                            Some(s) => s,
                            None => break,
                        },
                        _ = sleep_until(due), if due.is_some() => {
                            self.sign_checkpoint().await;
                            continue;
                        }
                    }
                }
            };
            let mut batch = vec![first];
            let mut n = batch[0].events.len();
            while n < self.shared.config.max_batch_events {
                match rx.try_recv() {
                    Ok(s) if n + s.events.len() <= self.shared.config.max_batch_events => {
                        n += s.events.len();
                        batch.push(s);
                    }
                    Ok(s) => {
                        carry = Some(s);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
            if self.checkpoint_due().is_some_and(|d| d <= Instant::now()) {
                self.sign_checkpoint().await;
            }
        }
        if self.stopped.is_none() && self.damaged.is_none() && self.edge.size() > self.checkpointed_size {
            self.sign_checkpoint().await;
        }
    }

    /// When the next checkpoint should be signed, if the log is ahead of its last one.
    fn checkpoint_due(&self) -> Option<Instant> {
        if self.stopped.is_some() || self.damaged.is_some() || self.edge.size() <= self.checkpointed_size {
            return None;
        }
        Some(match self.last_checkpoint_at {
            Some(t) => t + self.shared.config.checkpoint_interval,
            None => Instant::now(),
        })
    }

    fn set_health(&self, h: Result<(), String>) {
        *self.health.lock() = h;
    }

    /// Commits a group of submissions; answers every submitter.
    async fn commit(&mut self, batch: Vec<Submission>) {
        if let Some(why) = &self.stopped {
            let why = why.clone();
            self.fail_all(batch, why, AppendError::Stopped);
            return;
        }
        if let Some(why) = &self.damaged {
            // Already logged once, in full, when the damage was found.
            for s in batch {
                let _ = s.reply.send(Err(AppendError::Damaged(why.clone())));
            }
            return;
        }
        let mut refused = Vec::new();
        // Across processes (PostgreSQL), one sequencer at a time builds on the head and commits.
        match self.shared.store.lock_log(self.org.id).await {
            Ok(lock) => {
                self.commit_inner(batch, &mut refused).await;
                lock.unlock().await;
            }
            Err(e) => {
                self.shared.metrics.commit_failures.inc();
                self.fail_all(batch, format!("cannot take the log's append lock: {e}"), AppendError::Unavailable);
            }
        }
        // Answered only now, after the rest of the batch committed: a submission refused because
        // another one in the batch took its idempotency key must be able to read what that one
        // stored.
        for (s, reason) in refused {
            let _ = s.reply.send(Err(AppendError::Rejected(reason)));
        }
    }

    async fn commit_inner(
        &mut self,
        mut batch: Vec<Submission>,
        refused: &mut Vec<(Submission, logbook_store::MutationError)>,
    ) {
        let mut head_retries = 0;
        loop {
            if batch.is_empty() {
                return;
            }
            let (commit, next_edge, spans) = self.build(&batch);
            #[cfg(feature = "fault-injection")]
            if self.shared.config.ack_before_commit {
                for (s, (first_seq, count)) in batch.iter_mut().zip(spans.iter().copied()) {
                    // The real answer goes now; the one sent after the commit reaches nobody.
                    let (unheard, _) = oneshot::channel();
                    let early = std::mem::replace(&mut s.reply, unheard);
                    let _ = early.send(Ok(Appended { first_seq, count, output: None }));
                }
            }
            let started = Instant::now();
            let (events, now) = (commit.events.len() as u64, commit.now);
            match self.shared.store.commit(self.org.id, commit).await {
                Ok(mut outputs) => {
                    let m = &self.shared.metrics;
                    m.commits.inc();
                    m.events_appended.inc_by(events);
                    m.batch_events.observe(events as f64);
                    m.commit_seconds.observe(started.elapsed().as_secs_f64());
                    self.edge = next_edge;
                    m.log_size.set(self.edge.size() as i64);
                    self.last_time = now;
                    self.set_health(Ok(()));
                    // The search indexer picks the new events up now rather than at its next tick.
                    self.shared.search_wakeup.notify_one();
                    outputs.reverse();
                    for (s, (first_seq, count)) in batch.into_iter().zip(spans) {
                        let output = if s.mutation.is_some() { outputs.pop() } else { None };
                        let _ = s.reply.send(Ok(Appended { first_seq, count, output }));
                    }
                    return;
                }
                Err(CommitError::Rejected { index, reason }) => {
                    // Only the submission that owns the refused mutation fails; the rest are
                    // renumbered and committed without it.
                    let owner =
                        batch.iter().enumerate().filter(|(_, s)| s.mutation.is_some()).nth(index).map(|(i, _)| i);
                    match owner {
                        Some(i) => refused.push((batch.remove(i), reason)),
                        None => {
                            self.fail_all(
                                batch,
                                "a mutation the batch does not hold was refused".into(),
                                AppendError::Unavailable,
                            );
                            return;
                        }
                    }
                }
                Err(CommitError::HeadMoved { size }) => {
                    // Another process appended to this log (PostgreSQL): rebuild on its head.
                    head_retries += 1;
                    tracing::debug!(org = %self.org.slug, size, "log head moved; reloading");
                    if head_retries > MAX_HEAD_RETRIES {
                        self.fail_all(
                            batch,
                            format!("log head kept moving ({head_retries} retries)"),
                            AppendError::Unavailable,
                        );
                        return;
                    }
                    if let Err(e) = self.reload_checked().await {
                        let answer =
                            if matches!(e, AppendError::Damaged(_)) { e.same() } else { AppendError::Unavailable };
                        self.fail_all(batch, format!("reloading after the head moved: {e}"), answer);
                        return;
                    }
                }
                Err(CommitError::Store(e @ StoreError::Io(_))) => {
                    // After a failed write or sync the data may read back from the page cache
                    // without being on disk, and a later sync may succeed without writing it
                    // (the kernel dropped the dirty pages). So nothing is acknowledged, this
                    // log takes no more appends, and a restart reloads what the disk holds.
                    self.shared.metrics.commit_failures.inc();
                    // `e` names the whole chain of causes (the driver's top-level message may be just
                    // "db error").
                    let why = format!("{e} while committing; appends stopped until restart");
                    tracing::error!(org = %self.org.slug, error = %e, "storage I/O error: this log takes no more appends until Logbook restarts");
                    self.stopped = Some(why.clone());
                    self.fail_all(batch, why, AppendError::OutcomeUnknown);
                    return;
                }
                Err(CommitError::Store(e)) => {
                    self.shared.metrics.commit_failures.inc();
                    // A commit can fail after it reached the disk (a connection lost at COMMIT):
                    // what counts is what the store holds now.
                    let landed = match self.reload_checked().await {
                        Ok(()) => Some(self.edge.size() == next_edge.size() && self.edge.root() == next_edge.root()),
                        Err(re) => {
                            tracing::error!(org = %self.org.slug, error = %re, "cannot reload the log after a failed commit");
                            None
                        }
                    };
                    match landed {
                        Some(true) => {
                            tracing::warn!(org = %self.org.slug, error = %e, "the commit reported an error but its events are stored");
                            self.last_time = now;
                            for (s, (first_seq, count)) in batch.into_iter().zip(spans) {
                                let _ = s.reply.send(Ok(Appended { first_seq, count, output: None }));
                            }
                        }
                        Some(false) => {
                            let answer = match e {
                                StoreError::DiskFull => AppendError::DiskFull,
                                _ => AppendError::Unavailable,
                            };
                            self.fail_all(batch, format!("commit failed: {e}"), answer)
                        }
                        None => self.fail_all(
                            batch,
                            format!("commit failed: {e}; outcome unknown"),
                            AppendError::OutcomeUnknown,
                        ),
                    }
                    return;
                }
            }
        }
    }

    fn fail_all(&self, batch: Vec<Submission>, why: String, answer: AppendError) {
        tracing::error!(org = %self.org.slug, events = batch.iter().map(|s| s.events.len()).sum::<usize>(), error = %why, "append failed; nothing acknowledged");
        self.set_health(Err(why));
        for s in batch {
            let _ = s.reply.send(Err(answer.same()));
        }
    }

    /// Numbers, encodes and hashes a batch on top of the current edge.
    fn build(&self, batch: &[Submission]) -> (CommitBatch, TreeEdge, Vec<(u64, u64)>) {
        let base = self.edge.size();
        // One time for the whole batch: they commit together. Never earlier than the last.
        let now = self.shared.clock.now().max(self.last_time);
        let mut events = Vec::with_capacity(batch.iter().map(|s| s.events.len()).sum());
        let mut mutations = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        let mut seq = base;
        // One call to the random source for the whole batch's ids.
        let mut ids = vec![0u8; 16 * events.capacity()];
        self.shared.random.fill(&mut ids);
        let mut ids = ids.chunks_exact(16);
        for s in batch {
            let first = seq;
            for body in &s.events {
                let mut id = [0u8; 16];
                id.copy_from_slice(ids.next().unwrap_or(&[0; 16]));
                let mut leaf = Vec::with_capacity(256 + body.details.len());
                leaf::encode_parts(&self.org.slug, seq, EventId::from_random_bytes(id), now, body, &mut leaf);
                events.push(EventRow {
                    seq,
                    time: now,
                    action: body.action.code().to_owned(),
                    user: body.actor.display().to_owned(),
                    leaf_hash: record_hash(&leaf).0,
                    leaf,
                });
                seq += 1;
            }
            if let Some(m) = &s.mutation {
                mutations.push(MutationEntry { first_seq: first, count: seq - first, mutation: m.clone() });
            }
            spans.push((first, seq - first));
        }
        let mut edge = self.edge.clone();
        let tiles = edge.append_all(events.iter().map(|e| Hash(e.leaf_hash)));
        (CommitBatch { base_size: base, events, tiles, mutations, now }, edge, spans)
    }

    async fn sign_checkpoint(&mut self) {
        if self.damaged.is_some() || self.stopped.is_some() {
            return;
        }
        // Counted as an attempt even if it fails, so a failing signer cannot spin the loop.
        self.last_checkpoint_at = Some(Instant::now());
        let size = self.edge.size();
        let root = self.edge.root();
        // What else is trusted now: a newer checkpoint another process signed (in the store, or
        // in a witness directory it shares with this one). The tree must extend those too.
        let dir_state = match self.newer_trusted(size).await {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(org = %self.org.slug, error = %e, "cannot read the trusted checkpoints; will retry");
                return;
            }
        };
        if self.damaged.is_some() {
            return;
        }
        let note = match self.shared.signer.sign(&self.origin, size, &root) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a checkpoint");
                return;
            }
        };
        let cp = StoredCheckpoint { size, root: root.0, note: note.clone(), signed_at: self.shared.clock.now() };
        match self.shared.store.add_checkpoint(self.org.id, &cp).await {
            Ok(stored) => {
                self.checkpointed_size = size;
                self.anchor = Some(Anchor { size, root, source: "this process".into() });
                if stored {
                    self.shared.metrics.checkpoints_signed.inc();
                    self.publish(&note, size, dir_state.0).await;
                }
                self.shared.checkpointed.send_modify(|m| {
                    let newest = m.entry(self.org.id).or_default();
                    *newest = (*newest).max(size);
                });
            }
            Err(e) => tracing::error!(org = %self.org.slug, error = %e, "cannot store a checkpoint; will retry"),
        }
    }

    /// Writes a checkpoint just stored to the witness directory, if one is configured.
    async fn publish(&self, note: &str, size: u64, checked: Option<u64>) {
        let Some(dir) = self.shared.config.witness_dir.clone() else { return };
        let (org, origin, key, note) =
            (self.org.slug.clone(), self.origin.clone(), self.shared.signer.verifier_key().to_owned(), note.to_owned());
        let written = tokio::task::spawn_blocking(move || {
            let verifier = logbook_integrity::checkpoint::CheckpointVerifier::new(&key)
                .map_err(|e| witness::PublishError::Io(std::io::Error::other(e)))?;
            witness::publish(&dir, &org, &verifier, &origin, &note, size, checked)
        })
        .await
        .map_err(|e| witness::PublishError::Io(std::io::Error::other(e)));
        let dir = self.shared.config.witness_dir.as_deref().unwrap_or(std::path::Path::new(""));
        match written.and_then(|r| r) {
            Ok(_) => {}
            Err(e @ witness::PublishError::NotChecked { .. }) => {
                // Another process wrote a newer one meanwhile; the next checkpoint checks it first.
                tracing::warn!(org = %self.org.slug, dir = %dir.display(), error = %e, "checkpoint not written to the witness directory");
            }
            Err(e) => {
                self.shared.metrics.witness_failures.inc();
                tracing::error!(dir = %dir.display(), error = %e, "cannot write the checkpoint to the witness directory");
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
