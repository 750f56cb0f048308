//! The log service: everything between "append this event" and durable, signed, provable
//! storage, for every backend alike.
//!
//! - [`sequencer`]: one task per organization's log assigns `seq`, time and id, computes leaf
//!   hashes and tiles, and batches whatever is waiting into one durable commit (group commit);
//! - checkpoints are signed at most once a second while entries arrive, at start when the log
//!   is ahead of its last checkpoint, and at shutdown; each one is also written to the witness
//!   directory ([`witness`]);
//! - [`proofs`] answers inclusion and consistency proofs from stored tiles;
//! - [`audit`] drives [`logbook_integrity::audit::Auditor`] over a whole store;
//! - [`selfcheck`]: the periodic check of each log's newest part against its newest checkpoint;
//! - [`fullcheck`]: the scheduled, resumable recomputation of every whole log;
//! - [`verified`]: the verified mark of entries as shown, re-hashed from their bytes;
//! - [`tokens`]: API tokens for the platform's other services;
//! - [`cosigning`]: each new checkpoint sent to the configured C2SP witnesses, their
//!   cosignatures checked and stored with it, and the integrity alarm a refusal raises.

pub mod audit;
pub mod copy;
pub mod cosigning;
mod error;
pub mod export;
pub mod fullcheck;
pub mod metrics;
pub mod proofs;
pub mod search;
pub mod selfcheck;
pub mod sequencer;
pub mod signing_key;
pub mod tokens;
mod trust;
pub mod verified;
pub mod witness;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use logbook_core::{Clock, NewEvent, OrgId, OrgSlug, Random};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_store::{Mutation, MutationOutput, Org, Store, StoreError, StoredCheckpoint};
use tokio::sync::Mutex;

pub use error::{AppendError, ProofRequestError};
pub use metrics::LogMetrics;
use sequencer::{Sequencer, SequencerHandle};

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Checkpoint origins are `<origin_prefix>/<org slug>`.
    pub origin_prefix: String,
    /// The least time between two checkpoints of a log while entries arrive.
    pub checkpoint_interval: Duration,
    /// Most events one commit takes (a single larger submission is committed alone).
    pub max_batch_events: usize,
    /// Where each new checkpoint is also written, outside the database, and read back as trusted.
    pub witness_dir: Option<PathBuf>,
    /// Refuse to start at all when a log does not extend its trusted checkpoints (otherwise the
    /// log is served read-only: appends refused, nothing signed).
    pub refuse_damaged: bool,
    /// The C2SP witnesses each new checkpoint is sent to for cosigning ([`cosigning`]).
    pub witnesses: Vec<cosigning::WitnessEndpoint>,
    /// How many of them must cosign a checkpoint for it to count as witnessed; all when `None`.
    pub witness_quorum: Option<usize>,
    /// Test-only and wrong on purpose: answer submitters before their commit, as a
    /// non-durable log would (the negative control of the crash harness).
    #[cfg(feature = "fault-injection")]
    pub ack_before_commit: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            origin_prefix: "logbook.local".into(),
            checkpoint_interval: Duration::from_secs(1),
            max_batch_events: 10_000,
            witness_dir: None,
            refuse_damaged: false,
            witnesses: Vec::new(),
            witness_quorum: None,
            #[cfg(feature = "fault-injection")]
            ack_before_commit: {
                let on = std::env::var_os("LOGBOOK_FAULT_ACK_BEFORE_COMMIT").is_some();
                if on {
                    tracing::warn!("FAULT INJECTION: appends are acknowledged before their commit (test builds only)");
                }
                on
            },
        }
    }
}

/// Where an appended submission landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub first_seq: u64,
    pub count: u64,
    pub output: Option<MutationOutput>,
}

impl Appended {
    pub fn seqs(&self) -> std::ops::Range<u64> {
        self.first_seq..self.first_seq + self.count
    }
}

/// Everything a sequencer shares with the service.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub signer: Arc<CheckpointSigner>,
    pub config: LogConfig,
    pub metrics: LogMetrics,
    /// Woken by every commit: the search indexer has new events to add.
    pub search_wakeup: tokio::sync::Notify,
    /// Per log, the size of the newest checkpoint this process has finished with: signed,
    /// stored and, when a witness directory is configured, written there. Lets a caller wait
    /// for that event instead of polling the store or the witness file (see
    /// [`LogService::checkpointed`]).
    pub checkpointed: tokio::sync::watch::Sender<BTreeMap<OrgId, u64>>,
    /// Logs found damaged (see [`trust`]), with the reason.
    pub damaged: parking_lot::Mutex<BTreeMap<OrgId, String>>,
}

#[derive(Debug)]
pub struct LogService {
    shared: Arc<Shared>,
    sequencers: Mutex<HashMap<i64, SequencerHandle>>,
    orgs: parking_lot::RwLock<HashMap<i64, Org>>,
    closing: std::sync::atomic::AtomicBool,
    search_indexer: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The checkpoint each log's last successful self-check verified (size, root); held for the
    /// whole run, so that two runs never overlap.
    self_check_verified: Mutex<HashMap<i64, (u64, logbook_integrity::Hash)>>,
    self_check_status: parking_lot::RwLock<selfcheck::SelfCheckStatus>,
    cosigning: cosigning::Cosigning,
    /// The scheduled full check: every log's last run and progress; held while one runs.
    full_check: parking_lot::RwLock<fullcheck::FullCheckStatus>,
    full_check_running: Mutex<()>,
}

impl LogService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        signer: Arc<CheckpointSigner>,
        config: LogConfig,
    ) -> Arc<Self> {
        let cosigning = cosigning::Cosigning::new(&config);
        Arc::new(Self {
            cosigning,
            shared: Arc::new(Shared {
                store,
                clock,
                random,
                signer,
                config,
                metrics: LogMetrics::default(),
                search_wakeup: tokio::sync::Notify::new(),
                checkpointed: tokio::sync::watch::Sender::new(BTreeMap::new()),
                damaged: parking_lot::Mutex::new(BTreeMap::new()),
            }),
            sequencers: Mutex::new(HashMap::new()),
            orgs: parking_lot::RwLock::new(HashMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
            search_indexer: parking_lot::Mutex::new(None),
            self_check_verified: Mutex::new(HashMap::new()),
            self_check_status: parking_lot::RwLock::new(selfcheck::SelfCheckStatus::default()),
            full_check: parking_lot::RwLock::new(fullcheck::FullCheckStatus::default()),
            full_check_running: Mutex::new(()),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    pub fn metrics(&self) -> &LogMetrics {
        &self.shared.metrics
    }

    pub fn signer(&self) -> &CheckpointSigner {
        &self.shared.signer
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    pub fn random(&self) -> &Arc<dyn Random> {
        &self.shared.random
    }

    /// The checkpoint origin of an organization's log.
    pub fn origin(&self, org: &OrgSlug) -> String {
        origin(&self.shared.config.origin_prefix, org)
    }

    /// The organization, created with an empty log if new.
    pub async fn org(&self, slug: &OrgSlug) -> Result<Org, StoreError> {
        let org = self.shared.store.ensure_org(slug, self.shared.clock.now()).await?;
        self.orgs.write().insert(org.id.0, org.clone());
        Ok(org)
    }

    /// An existing organization by its key (cached: organizations never change).
    pub async fn org_by_id(&self, id: logbook_core::OrgId) -> Result<Option<Org>, StoreError> {
        if let Some(o) = self.orgs.read().get(&id.0) {
            return Ok(Some(o.clone()));
        }
        let all = self.shared.store.orgs().await?;
        let mut cache = self.orgs.write();
        for o in &all {
            cache.insert(o.id.0, o.clone());
        }
        Ok(all.into_iter().find(|o| o.id == id))
    }

    /// An existing organization by its name; `None` if there is no such organization.
    pub async fn existing_org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError> {
        if let Some(o) = self.orgs.read().values().find(|o| &o.slug == slug) {
            return Ok(Some(o.clone()));
        }
        let org = self.shared.store.org(slug).await?;
        if let Some(o) = &org {
            self.orgs.write().insert(o.id.0, o.clone());
        }
        Ok(org)
    }

    /// Starts the sequencer of every existing log, so that a log whose tail is not yet covered
    /// by a checkpoint (after a crash) gets one now, and a damaged tree stops the start.
    pub async fn start_all(&self) -> Result<(), AppendError> {
        for org in self.shared.store.orgs().await? {
            self.sequencer(&org).await?;
        }
        if self.shared.config.refuse_damaged {
            if let Some((_, why)) = self.shared.damaged.lock().iter().next() {
                return Err(AppendError::Damaged(why.clone()));
            }
        }
        self.start_search_indexer();
        Ok(())
    }

    /// The logs that do not extend their trusted checkpoints (organization, the reason logged).
    /// They take no appends and sign nothing until the damage is dealt with and Logbook restarts.
    pub fn damaged_logs(&self) -> Vec<(OrgId, String)> {
        self.shared.damaged.lock().iter().map(|(o, w)| (*o, w.clone())).collect()
    }

    /// Starts the background task that keeps every log's free-text index caught up (see
    /// [`search`]). One-shot commands do not start it; `serve` does.
    pub fn start_search_indexer(&self) {
        let mut slot = self.search_indexer.lock();
        if slot.is_none() {
            *slot = Some(tokio::spawn(search::run_indexer(self.shared.clone())));
        }
    }

    async fn sequencer(&self, org: &Org) -> Result<SequencerHandle, AppendError> {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(AppendError::ShuttingDown);
        }
        let mut map = self.sequencers.lock().await;
        // Again under the lock: shutdown() may have emptied the map while we waited for it.
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(AppendError::ShuttingDown);
        }
        if let Some(h) = map.get(&org.id.0) {
            return Ok(h.clone());
        }
        let h = Sequencer::start(self.shared.clone(), org.clone()).await?;
        map.insert(org.id.0, h.clone());
        Ok(h)
    }

    /// Appends events (and the domain change they record) durably; returns once committed.
    pub async fn append(
        &self,
        org: &Org,
        events: Vec<NewEvent>,
        mutation: Option<Mutation>,
    ) -> Result<Appended, AppendError> {
        for e in &events {
            e.validate()?;
        }
        if events.is_empty() {
            return Err(AppendError::Empty);
        }
        self.sequencer(org).await?.append(events, mutation).await
    }

    /// Appends the record of a read (a view, an export) — or, when the log is damaged and takes
    /// no appends, lets the read go on unrecorded (returns `None`, logged as a warning): a damaged
    /// log is still served for reading and export, so that what is there can be examined.
    pub async fn append_read_record(
        &self,
        org: &Org,
        events: Vec<NewEvent>,
        mutation: Option<Mutation>,
    ) -> Result<Option<Appended>, AppendError> {
        match self.append(org, events, mutation).await {
            Ok(a) => Ok(Some(a)),
            Err(AppendError::Damaged(_)) => {
                tracing::warn!(org = %org.slug, "a read of a damaged log could not be recorded (it takes no appends)");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Per log, the size of the newest checkpoint this process has signed, stored and written to
    /// the witness directory (when one is configured), updated after each; for waiting on that
    /// event, e.g. `log.checkpointed().wait_for(|m| m.get(&org.id) >= Some(&size))`.
    pub fn checkpointed(&self) -> tokio::sync::watch::Receiver<BTreeMap<OrgId, u64>> {
        self.shared.checkpointed.subscribe()
    }

    /// The newest signed checkpoint of a log.
    pub async fn latest_checkpoint(&self, org: &Org) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.shared.store.latest_checkpoint(org.id).await
    }

    /// Runs the self-check of every log once (see [`selfcheck`]), records the result for
    /// [`LogService::self_check_status`] and the metrics, and logs a failure as an error.
    pub async fn self_check(&self) -> selfcheck::SelfCheckRun {
        let mut verified = self.self_check_verified.lock().await;
        let shared = &self.shared;
        let mut run = selfcheck::SelfCheckRun { at: shared.clock.now(), orgs: Vec::new(), error: None };
        match shared.store.orgs().await {
            Err(e) => run.error = Some(format!("the list of logs could not be read: {e}")),
            Ok(orgs) => {
                for org in orgs {
                    let origin = self.origin(&org.slug);
                    let prev = verified.get(&org.id.0).copied();
                    match selfcheck::check_org(&shared.store, &org, &origin, &shared.signer, prev).await {
                        Ok((mut check, now)) => {
                            if check.is_ok() {
                                // The verified checkpoint (none: size 0) must also extend the
                                // witness directory's newest.
                                let v = now.unwrap_or((0, logbook_integrity::Hash([0; 32])));
                                let dir = trust::witness_dir_problem(
                                    &shared.config,
                                    &*shared.store,
                                    &org,
                                    &origin,
                                    &shared.signer,
                                    v,
                                );
                                match dir.await {
                                    Some(problem) => check.problems.push(problem),
                                    None => {
                                        if let Some(v) = now {
                                            verified.insert(org.id.0, v);
                                        }
                                    }
                                }
                            }
                            run.orgs.push(check);
                        }
                        Err(e) => run.orgs.push(selfcheck::OrgCheck {
                            org: org.slug.to_string(),
                            from: 0,
                            size: 0,
                            first_bad_seq: None,
                            problems: vec![format!("the store could not be read: {e}")],
                        }),
                    }
                }
            }
        }
        let m = &shared.metrics;
        m.self_check_runs.inc();
        let secs = run.at.as_micros().div_euclid(1_000_000);
        m.self_check_last_run.set(secs);
        if run.is_ok() {
            m.self_check_last_success.set(secs);
            m.self_check_verified_size.set(i64::try_from(run.verified_size()).unwrap_or(i64::MAX));
            tracing::debug!(size = run.verified_size(), "self-check passed");
        } else {
            m.self_check_failures.inc();
            if let Some(e) = &run.error {
                tracing::error!(error = %e, "integrity self-check failed");
            }
            for o in run.orgs.iter().filter(|o| !o.is_ok()) {
                tracing::error!(
                    org = %o.org,
                    checkpoint_size = o.size,
                    first_bad_seq = ?o.first_bad_seq,
                    problems = %o.problems.join("; "),
                    "integrity self-check failed: the log does not match its newest signed checkpoint; run `logbook verify`"
                );
            }
        }
        {
            let mut status = self.self_check_status.write();
            if run.is_ok() {
                status.last_success = Some(run.at);
            }
            status.last = Some(run.clone());
        }
        self.publish_alarm();
        run
    }

    /// The last self-check's result (none before the first run), and the full check's.
    pub fn self_check_status(&self) -> selfcheck::SelfCheckStatus {
        let mut status = self.self_check_status.read().clone();
        status.full = self.full_check.read().clone();
        status
    }

    /// `logbook_self_check_ok`: 1 while the last incremental run passed and no log's last full
    /// run failed.
    fn publish_alarm(&self) {
        let status = self.self_check_status();
        let ok = status.last.as_ref().is_some_and(selfcheck::SelfCheckRun::is_ok) && !status.alarm();
        self.shared.metrics.self_check_ok.set(i64::from(ok));
    }

    /// Whether every sequencer can take appends (false after a failed commit until a
    /// successful one).
    pub async fn healthy(&self) -> Result<(), String> {
        for h in self.sequencers.lock().await.values() {
            h.health()?;
        }
        Ok(())
    }

    /// Stops taking appends, commits what is queued, signs the final checkpoints.
    pub async fn shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        // The index is derived data: stopping mid-batch loses nothing (its transaction rolls back).
        if let Some(h) = self.search_indexer.lock().take() {
            h.abort();
        }
        let handles: Vec<_> = self.sequencers.lock().await.drain().map(|(_, h)| h).collect();
        for h in handles {
            h.close().await;
        }
        // Cosigning is retried by the next start from what the store holds.
        for t in self.cosigning.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

pub fn origin(prefix: &str, org: &OrgSlug) -> String {
    format!("{prefix}/{org}")
}
