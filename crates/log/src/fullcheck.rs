//! The scheduled full self-check: the whole of every log, from seq 0, recomputed against its
//! newest signed checkpoint, on a schedule (`serve` runs it every `--full-self-check-interval`,
//! default daily), alongside the continuous check of the newest part ([`crate::selfcheck`]).
//!
//! One run of one log:
//!
//! 1. takes the newest stored checkpoint (size `n`, root `R`) and checks its signature, origin,
//!    size and root, as the incremental check does;
//! 2. feeds the events `0..n`, a page at a time, to the same [`Auditor`] `logbook verify` uses
//!    (every per-event rule, every completed tile compared with the stored one), yielding to
//!    other tasks between pages so that appends are never starved;
//! 3. requires the recomputed root at `n` to be `R`, and the stored tiles at the edge of `n` to
//!    be the recomputed ones.
//!
//! **Resuming.** After each page the run's state is saved in the store: the position, the
//! recomputed tree edge there (the hashes of the rightmost tiles, a few kilobytes), the time of
//! the last event read, the target checkpoint and the findings so far. A restarted process
//! continues from that edge, not from the stored tiles: the edge was computed from the events
//! this run read, so the final root equals `R` only if the events before the position (as they
//! were read) and every event after it are what was signed. The saved state is sealed with an
//! HMAC whose key is derived from the signing key ([`logbook_core::keys::label::SELF_CHECK_STATE`])
//! and bound to the log: whoever can write the database but does not hold the key cannot move
//! the position past an edited entry, nor forge a passed run. A state that does not open is
//! itself reported as a failure, and the next run starts again from seq 0.
//!
//! An entry edited after the run has passed it is found by the next run (and, while it is among
//! the newest, by the incremental check); that is the cost of a check spread over time.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use logbook_core::{OrgId, Timestamp};
use logbook_integrity::audit::{Auditor, CheckpointClaim};
use logbook_integrity::tree::{bytes_of, TreeEdge};
use logbook_integrity::{from_hex, to_hex, Hash};
use logbook_store::{EventRow, Org, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::LogService;

/// Events read per page (and between two saves of the progress).
pub const PAGE: u64 = 10_000;

/// Findings kept per run.
const MAX_PROBLEMS: usize = 20;

/// The version of the saved state's format.
const FORMAT: u32 = 1;

/// A finished full run of one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullRun {
    pub started: Timestamp,
    pub finished: Timestamp,
    /// The size of the signed checkpoint the log was checked against.
    pub size: u64,
    /// Events read and checked (all of `0..size` when the store is whole).
    pub checked: u64,
    /// Where the run continued after a restart, if it was interrupted.
    pub resumed_from: Option<u64>,
    pub first_bad_seq: Option<u64>,
    /// Empty if intact.
    pub problems: Vec<String>,
}

impl FullRun {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A run under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    started: Timestamp,
    /// The target: the newest signed checkpoint when the run started.
    size: u64,
    root: String,
    /// Events `0..next` have been read.
    next: u64,
    /// The recomputed tree of the events read: its size and its edge tiles' hashes (hex), in
    /// the order of [`TreeEdge::tiles_for`].
    edge_size: u64,
    edge: Vec<String>,
    last_time: Option<Timestamp>,
    checked: u64,
    resumed_from: Option<u64>,
    first_bad_seq: Option<u64>,
    problems: Vec<String>,
}

/// What is saved per log, sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    format: u32,
    /// When the schedule first saw this log: its first run is due one interval later.
    since: Timestamp,
    run: Option<Progress>,
    last: Option<FullRun>,
}

/// One log's full check, as the console and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullCheckOrg {
    pub org: String,
    pub last: Option<FullRun>,
    /// The run under way: events read so far, and the size it checks against.
    pub progress: Option<(u64, u64)>,
}

/// Every log's full check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullCheckStatus {
    pub orgs: Vec<FullCheckOrg>,
}

impl FullCheckStatus {
    /// Whether some log's last finished full run failed.
    pub fn failed(&self) -> bool {
        self.orgs.iter().any(|o| o.last.as_ref().is_some_and(|r| !r.is_ok()))
    }

    /// Events checked by the last finished runs (or the runs under way), over all logs.
    pub fn checked(&self) -> u64 {
        self.orgs.iter().map(|o| o.progress.map_or_else(|| o.last.as_ref().map_or(0, |r| r.checked), |p| p.0)).sum()
    }

    /// The sizes those runs check against, over all logs.
    pub fn size(&self) -> u64 {
        self.orgs.iter().map(|o| o.progress.map_or_else(|| o.last.as_ref().map_or(0, |r| r.size), |p| p.1)).sum()
    }

    fn set(&mut self, org: &Org, f: impl FnOnce(&mut FullCheckOrg)) {
        let name = org.slug.to_string();
        let i = match self.orgs.iter().position(|o| o.org == name) {
            Some(i) => i,
            None => {
                self.orgs.push(FullCheckOrg { org: name, last: None, progress: None });
                self.orgs.len() - 1
            }
        };
        f(&mut self.orgs[i]);
    }
}

/// Seals and opens the saved state with a key derived from the signing key.
struct Seal([u8; 32]);

impl Seal {
    fn tag(&self, org: OrgId, body: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(&org.0.to_be_bytes());
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    fn seal(&self, org: OrgId, saved: &Saved) -> Vec<u8> {
        let body = serde_json::to_vec(saved).unwrap_or_else(|_| unreachable!("the state serializes"));
        let mut out = self.tag(org, &body).to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn open(&self, org: OrgId, bytes: &[u8]) -> Option<Saved> {
        let (tag, body) = (bytes.get(..32)?, bytes.get(32..)?);
        // Constant time is not needed against someone who can read the database anyway, but
        // costs nothing.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(&org.0.to_be_bytes());
        mac.update(body);
        mac.verify_slice(tag).ok()?;
        serde_json::from_slice::<Saved>(body).ok().filter(|s| s.format == FORMAT)
    }
}

/// The state read back: valid, absent, or not carrying this server's seal.
enum Loaded {
    Valid(Box<Saved>),
    Absent,
    Forged,
}

async fn load(store: &dyn Store, seal: &Seal, org: &Org) -> Result<Loaded, StoreError> {
    Ok(match store.self_check_state(org.id).await? {
        None => Loaded::Absent,
        Some(bytes) => match seal.open(org.id, &bytes) {
            Some(s) => Loaded::Valid(Box::new(s)),
            None => Loaded::Forged,
        },
    })
}

fn edge_of(p: &Progress) -> Option<TreeEdge> {
    let ids = TreeEdge::tiles_for(p.edge_size);
    if ids.len() != p.edge.len() {
        return None;
    }
    let tiles =
        ids.into_iter().zip(&p.edge).map(|(id, h)| Some((id, hex::decode(h).ok()?))).collect::<Option<Vec<_>>>()?;
    TreeEdge::restore(p.edge_size, &tiles).ok()
}

fn save_edge(p: &mut Progress, edge: &TreeEdge) {
    p.edge_size = edge.size();
    p.edge =
        TreeEdge::tiles_for(edge.size()).iter().map(|id| hex::encode(bytes_of(edge.edge_entries(id.level)))).collect();
}

fn merge_findings(p: &mut Progress, auditor: &Auditor) {
    let mut found: Vec<_> = auditor.findings().to_vec();
    found.sort_by_key(|f| (f.seq.is_none(), f.seq));
    for f in found {
        if p.problems.len() >= MAX_PROBLEMS {
            break;
        }
        let text = f.to_string();
        if !p.problems.contains(&text) {
            p.problems.push(text);
        }
    }
    let first = auditor.findings().iter().filter_map(|f| f.seq).min();
    p.first_bad_seq = match (p.first_bad_seq, first) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

/// How a run of one log ended.
enum Outcome {
    Finished(FullRun),
    /// `stop` asked to stop after the page ending at this position (saved).
    Stopped,
}

/// What one run needs from the service.
struct Ctx<'a> {
    store: &'a Arc<dyn Store>,
    seal: &'a Seal,
    log: &'a LogService,
}

impl Ctx<'_> {
    async fn save(&self, org: &Org, saved: &Saved) -> Result<(), StoreError> {
        self.store.save_self_check_state(org.id, &self.seal.seal(org.id, saved)).await
    }

    /// Starts a run: the newest checkpoint, checked. `Err` is a finished, failed run.
    async fn start(&self, org: &Org, now: Timestamp) -> Result<Result<Progress, FullRun>, StoreError> {
        let failed = |size: u64, problem: String| FullRun {
            started: now,
            finished: now,
            size,
            checked: 0,
            resumed_from: None,
            first_bad_seq: None,
            problems: vec![problem],
        };
        let Some(cp) = self.store.latest_checkpoint(org.id).await? else {
            return Ok(Err(FullRun { problems: vec![], ..failed(0, String::new()) }));
        };
        let n = cp.size;
        let origin = self.log.origin(&org.slug);
        // The verifier is not `Send`: made and dropped here, between two awaits.
        let note = self.log.signer().verifier().verify(&cp.note).map(|v| (v.origin, v.size, v.root));
        match note {
            Ok((o, size, r)) if o == origin && size == n && r.0 == cp.root => {}
            Ok(_) => {
                return Ok(Err(failed(
                    n,
                    format!("the newest stored checkpoint (size {n}) does not match its signed note"),
                )))
            }
            Err(e) => {
                return Ok(Err(failed(
                    n,
                    format!("the newest stored checkpoint (size {n}) is not validly signed ({e})"),
                )))
            }
        }
        Ok(Ok(Progress {
            started: now,
            size: n,
            root: to_hex(&Hash(cp.root)),
            next: 0,
            edge_size: 0,
            edge: Vec::new(),
            last_time: None,
            checked: 0,
            resumed_from: None,
            first_bad_seq: None,
            problems: Vec::new(),
        }))
    }

    /// Continues `saved.run` to its end or until `stop` says so, saving after every page.
    async fn run(
        &self,
        org: &Org,
        saved: &mut Saved,
        stop: &(dyn Fn(u64) -> bool + Send + Sync),
    ) -> Result<Outcome, StoreError> {
        let Some(mut p) = saved.run.clone() else { return Ok(Outcome::Stopped) };
        let (Some(edge), Some(root)) = (edge_of(&p), from_hex(&p.root)) else {
            // Sealed by this server yet unreadable: a bug, not an attack. Start again.
            saved.run = None;
            self.save(org, saved).await?;
            return Ok(Outcome::Stopped);
        };
        let claims = vec![CheckpointClaim { size: p.size, root, source: "the newest stored checkpoint".into() }];
        let mut auditor = Auditor::resume(org.slug.as_str(), edge, claims).with_last_time(p.last_time);
        let (id, end) = (org.id, p.size);
        let fetch = |from: u64| {
            let store = self.store.clone();
            tokio::spawn(async move { store.events(id, from..end.min(from.saturating_add(PAGE))).await })
        };
        let mut pending = (p.next < p.size).then(|| fetch(p.next));
        while let Some(page) = pending.take() {
            let rows: Vec<EventRow> = page.await.map_err(StoreError::backend)??;
            let next = p.size.min(p.next + PAGE);
            // The next page is read while this one is hashed.
            if next < p.size {
                pending = Some(fetch(next));
            }
            crate::audit::feed(&mut auditor, &rows);
            crate::audit::compare_completed(&**self.store, org, &mut auditor).await?;
            p.next = next;
            p.checked += rows.len() as u64;
            p.last_time = auditor.last_time();
            save_edge(&mut p, auditor.edge());
            merge_findings(&mut p, &auditor);
            saved.run = Some(p.clone());
            self.save(org, saved).await?;
            self.log.full_check.write().set(org, |o| o.progress = Some((p.next, p.size)));
            self.log.publish_full_check();
            if next < p.size && stop(next) {
                if let Some(t) = pending.take() {
                    t.abort();
                }
                return Ok(Outcome::Stopped);
            }
            tokio::task::yield_now().await;
        }
        let edge_rows = crate::selfcheck::edge_rows(&**self.store, org, auditor.edge()).await?;
        let report = auditor.finish(&edge_rows);
        // The findings of every page are merged already; the end adds its own (tiles at the
        // edge, a root that is not the signed one).
        let mut end = p.clone();
        for f in &report.findings {
            let text = f.to_string();
            if end.problems.len() < MAX_PROBLEMS && !end.problems.contains(&text) {
                end.problems.push(text);
            }
        }
        end.first_bad_seq = match (end.first_bad_seq, report.first_bad_seq()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Outcome::Finished(FullRun {
            started: p.started,
            finished: self.log.clock().now(),
            size: p.size,
            checked: p.checked,
            resumed_from: p.resumed_from,
            first_bad_seq: end.first_bad_seq,
            problems: end.problems,
        }))
    }
}

/// When the next run of a log is due: one interval after the last run started (or after the
/// schedule first saw the log); now if a run is under way.
fn due(saved: &Saved, interval: Duration) -> Timestamp {
    if saved.run.is_some() {
        return Timestamp::from_micros(i64::MIN);
    }
    let from = saved.last.as_ref().map_or(saved.since, |r| r.started);
    Timestamp::from_micros(from.as_micros().saturating_add(i64::try_from(interval.as_micros()).unwrap_or(i64::MAX)))
}

impl LogService {
    fn seal(&self) -> Seal {
        Seal(logbook_core::keys::derive(self.signer().secret().as_bytes(), logbook_core::keys::label::SELF_CHECK_STATE))
    }

    /// How long until a full self-check of some log is due (zero if one is, or a run is to be
    /// resumed). Also records, for a log seen for the first time, that its schedule starts now,
    /// and loads the saved last runs for [`LogService::self_check_status`].
    pub async fn full_self_check_wait(&self, interval: Duration) -> Result<Duration, StoreError> {
        let seal = self.seal();
        let now = self.clock().now();
        let mut next: Option<Timestamp> = None;
        for org in self.store().orgs().await? {
            let saved = match load(&**self.store(), &seal, &org).await? {
                Loaded::Valid(s) => *s,
                // Reported by the run, which is due now.
                Loaded::Forged => return Ok(Duration::ZERO),
                Loaded::Absent => {
                    let s = Saved { format: FORMAT, since: now, run: None, last: None };
                    self.store().save_self_check_state(org.id, &seal.seal(org.id, &s)).await?;
                    s
                }
            };
            self.full_check.write().set(&org, |o| {
                o.last.clone_from(&saved.last);
                o.progress = saved.run.as_ref().map(|p| (p.next, p.size));
            });
            let d = due(&saved, interval);
            next = Some(next.map_or(d, |n| n.min(d)));
        }
        self.publish_full_check();
        let wait = next.map_or(interval, |d| {
            Duration::from_micros(u64::try_from(d.as_micros().saturating_sub(now.as_micros())).unwrap_or(0))
        });
        Ok(wait)
    }

    /// Runs the full self-check of every log that is due (see [`LogService::full_self_check_wait`]),
    /// resuming runs under way, until each is finished or `stop` (asked with the position after
    /// each page) says to stop. Records the results in the store, the status, the metrics and,
    /// on failure, the error log and the integrity alarm. Returns the runs finished.
    pub async fn full_self_check(
        &self,
        interval: Duration,
        stop: &(dyn Fn(u64) -> bool + Send + Sync),
    ) -> Result<Vec<(String, FullRun)>, StoreError> {
        let _one = self.full_check_running.lock().await;
        let seal = self.seal();
        let ctx = Ctx { store: self.store(), seal: &seal, log: self };
        let mut finished = Vec::new();
        for org in self.store().orgs().await? {
            let now = self.clock().now();
            let mut saved = match load(&**self.store(), &seal, &org).await? {
                Loaded::Valid(s) => *s,
                Loaded::Absent => Saved { format: FORMAT, since: now, run: None, last: None },
                Loaded::Forged => {
                    let run = FullRun {
                        started: now,
                        finished: now,
                        size: 0,
                        checked: 0,
                        resumed_from: None,
                        first_bad_seq: None,
                        problems: vec!["the full self-check's saved state does not carry this server's seal: it was changed in the database; the next run starts again from seq 0".into()],
                    };
                    let saved = Saved { format: FORMAT, since: now, run: None, last: Some(run.clone()) };
                    ctx.save(&org, &saved).await?;
                    self.full_check_finished(&org, &run);
                    finished.push((org.slug.to_string(), run));
                    continue;
                }
            };
            let is_due = due(&saved, interval) <= now;
            match &mut saved.run {
                Some(p) => p.resumed_from = Some(p.next),
                None if is_due => match ctx.start(&org, now).await? {
                    Ok(p) => {
                        saved.run = Some(p);
                        ctx.save(&org, &saved).await?;
                    }
                    Err(run) => {
                        saved.last = Some(run.clone());
                        ctx.save(&org, &saved).await?;
                        self.full_check_finished(&org, &run);
                        finished.push((org.slug.to_string(), run));
                        continue;
                    }
                },
                None => continue,
            }
            match ctx.run(&org, &mut saved, stop).await? {
                Outcome::Stopped => return Ok(finished),
                Outcome::Finished(run) => {
                    saved.run = None;
                    saved.last = Some(run.clone());
                    ctx.save(&org, &saved).await?;
                    self.full_check_finished(&org, &run);
                    finished.push((org.slug.to_string(), run));
                }
            }
        }
        Ok(finished)
    }

    /// The schedule `serve` runs: a run of each log one interval after its last one started (or
    /// after the schedule first saw the log), and at once if a run was under way when the
    /// process stopped. Runs until the task is aborted; a run stopped that way resumes from its
    /// last saved page at the next start.
    pub async fn full_self_check_schedule(self: Arc<Self>, interval: Duration) {
        loop {
            let failed = match self.full_self_check_wait(interval).await {
                Ok(wait) => {
                    tokio::time::sleep(wait).await;
                    self.full_self_check(interval, &|_| false).await.err()
                }
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                tracing::warn!(error = %e, "the full self-check could not read the store; retrying in a minute");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }

    fn full_check_finished(&self, org: &Org, run: &FullRun) {
        self.full_check.write().set(org, |o| {
            o.last = Some(run.clone());
            o.progress = None;
        });
        let m = self.metrics();
        m.full_self_check_runs.inc();
        m.full_self_check_last_end.set(run.finished.as_micros().div_euclid(1_000_000));
        m.full_self_check_last_start.set(run.started.as_micros().div_euclid(1_000_000));
        if run.is_ok() {
            m.full_self_check_last_success.set(run.finished.as_micros().div_euclid(1_000_000));
            tracing::info!(org = %org.slug, size = run.size, checked = run.checked, "full self-check passed");
        } else {
            m.full_self_check_failures.inc();
            m.self_check_failures.inc();
            tracing::error!(
                org = %org.slug,
                checkpoint_size = run.size,
                first_bad_seq = ?run.first_bad_seq,
                problems = %run.problems.join("; "),
                "full integrity self-check failed: the log does not match its newest signed checkpoint; run `logbook verify`"
            );
        }
        self.publish_full_check();
    }

    /// The full check's gauges, and the integrity alarm it shares with the incremental check.
    fn publish_full_check(&self) {
        let status = self.full_check.read().clone();
        let m = self.metrics();
        let any_run = status.orgs.iter().any(|o| o.last.is_some());
        m.full_self_check_ok.set(i64::from(any_run && !status.failed()));
        m.full_self_check_checked.set(i64::try_from(status.checked()).unwrap_or(i64::MAX));
        m.full_self_check_size.set(i64::try_from(status.size()).unwrap_or(i64::MAX));
        let first_bad = status.orgs.iter().filter_map(|o| o.last.as_ref()?.first_bad_seq).min();
        m.full_self_check_first_bad_seq.set(first_bad.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)));
        self.publish_alarm();
    }
}
