//! The tlog-witness client: one task per (witness, log), sending the log's newest checkpoint
//! with a consistency proof from the size the witness holds.
//!
//! The task never blocks anything else: it wakes when the sequencer reports a stored checkpoint
//! (or every [`POLL`], for checkpoints another process signed), reads the newest checkpoint from
//! the store, and sends `POST <url>/add-checkpoint`. On `200` it checks the cosignature with the
//! configured key and stores it; on `409` it resends from the size the witness reports; a
//! refusal that shows the log's history changed raises the integrity alarm; every other failure
//! is recorded and retried after a capped exponential backoff.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use logbook_core::OrgId;
use logbook_integrity::witness_protocol::{parse_size_body, AddCheckpointRequest, SIZE_CONTENT_TYPE};
use logbook_store::{Org, StoredCosignature};

use super::{note_body, Witness};
use crate::metrics::WitnessLabels;
use crate::LogService;

/// How often a caught-up task looks for a checkpoint no notification told it about.
pub(crate) const POLL: Duration = Duration::from_secs(5);
/// The first retry delay after a failure, doubled after each further one up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Resends in a row after `409` before backing off (each one moves to the witness's size).
const MAX_CONFLICTS: u32 = 3;
/// The most of a witness's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The witness cosigned the newest checkpoint (or there is nothing to send): wait for the next.
    CaughtUp,
    /// A cosignature was stored; a newer checkpoint may already wait.
    Progress,
    /// The witness holds another size than assumed: resend from it at once.
    Resend,
    /// A failure, recorded: retry after the backoff.
    Failed,
}

/// Starts a task per witness for every log, now and as logs appear; ends with the service.
pub(crate) async fn supervise(log: Weak<LogService>) {
    let mut started: BTreeSet<OrgId> = BTreeSet::new();
    let mut notified = match log.upgrade() {
        Some(l) => l.checkpointed(),
        None => return,
    };
    loop {
        {
            let Some(l) = log.upgrade() else { return };
            let new_log = notified.borrow_and_update().keys().any(|id| !started.contains(id));
            if new_log || started.is_empty() {
                match l.store().orgs().await {
                    Ok(orgs) => {
                        for org in orgs {
                            if !started.insert(org.id) {
                                continue;
                            }
                            let mut tasks = l.cosigning.tasks.lock();
                            for w in 0..l.cosigning.witnesses.len() {
                                let wake = l.checkpointed();
                                tasks.push(tokio::spawn(run(Arc::downgrade(&l), w, org.clone(), wake)));
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "witnesses: cannot list the logs; will retry"),
                }
            }
        }
        tokio::select! {
            changed = notified.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn run(
    log: Weak<LogService>,
    w: usize,
    org: Org,
    mut wake: tokio::sync::watch::Receiver<std::collections::BTreeMap<OrgId, u64>>,
) {
    // What the witness holds, as far as this task knows (`None`: read from the store first).
    let mut witness_size: Option<u64> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut conflicts = 0u32;
    loop {
        let outcome = {
            let Some(l) = log.upgrade() else { return };
            l.cosign_once(w, &org, &mut witness_size).await
        };
        match outcome {
            Outcome::Progress => {
                backoff = FIRST_BACKOFF;
                conflicts = 0;
            }
            Outcome::Resend if conflicts < MAX_CONFLICTS => conflicts += 1,
            Outcome::CaughtUp => {
                backoff = FIRST_BACKOFF;
                conflicts = 0;
                tokio::select! {
                    changed = wake.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            Outcome::Resend | Outcome::Failed => {
                conflicts = 0;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                // Notifications that came during the wait are covered by the next attempt.
                wake.borrow_and_update();
            }
        }
    }
}

/// The witness's answer, read up to [`MAX_ANSWER`].
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn send(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<Answer, String> {
    let mut resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status().as_u16();
    let content_type =
        resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER {
            return Err(format!("the answer ({status}) is longer than {MAX_ANSWER} bytes"));
        }
    }
    Ok(Answer { status, content_type, body: String::from_utf8_lossy(&bytes).into_owned() })
}

/// reqwest's error and its causes in one line (its own message is often just "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The size in a `409` answer: `text/x.tlog.size`, a decimal and a newline.
fn conflict_size(answer: &Answer) -> Option<u64> {
    let media = answer.content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(SIZE_CONTENT_TYPE) {
        return None;
    }
    parse_size_body(answer.body.as_bytes()).ok()
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

impl LogService {
    /// One attempt of witness `w` for `org`: send the newest checkpoint unless it has it.
    async fn cosign_once(&self, w: usize, org: &Org, witness_size: &mut Option<u64>) -> Outcome {
        let Some(witness) = self.cosigning.witnesses.get(w).cloned() else { return Outcome::CaughtUp };
        let store = self.store();
        if witness_size.is_none() {
            match store.newest_cosignatures(org.id).await {
                Ok(newest) => {
                    let mine = newest.into_iter().find(|c| witness.signed(c));
                    *witness_size = Some(mine.as_ref().map_or(0, |c| c.size));
                    self.update_pair(w, org, |s| {
                        s.cosigned_size = mine.as_ref().map(|c| c.size);
                        s.cosigned_at = mine.as_ref().map(|c| c.received_at);
                    });
                }
                Err(e) => return self.failed(w, org, &witness, format!("cannot read the stored cosignatures: {e}")),
            }
        }
        let cp = match store.latest_checkpoint(org.id).await {
            Ok(Some(cp)) => cp,
            Ok(None) => return Outcome::CaughtUp,
            Err(e) => return self.failed(w, org, &witness, format!("cannot read the newest checkpoint: {e}")),
        };
        let cosigned = self.update_pair(w, org, |s| {
            s.checkpoint_size = s.checkpoint_size.max(cp.size);
            if s.behind_since.is_none() && s.cosigned_size.is_none_or(|c| c < cp.size) {
                s.behind_since = Some(cp.signed_at);
            }
            s.cosigned_size
        });
        if cp.size == 0 || cosigned.is_some_and(|c| c >= cp.size) {
            return Outcome::CaughtUp;
        }
        let old = witness_size.unwrap_or(0);
        if old > cp.size {
            self.alarm(w, org, &witness, format!(
                "the witness holds a cosigned checkpoint of size {old}, larger than this log's newest checkpoint ({}): the log was rolled back",
                cp.size
            ));
            return Outcome::Failed;
        }
        let Some(body) = note_body(&cp.note) else {
            return self.failed(w, org, &witness, format!("the stored checkpoint of size {} is not a note", cp.size));
        };
        let proof = if old == 0 || old == cp.size {
            Vec::new()
        } else {
            match self.consistency_proof(org, old, Some(cp.size)).await {
                Ok(p) => p.hashes,
                Err(e) => {
                    return self.failed(w, org, &witness, format!("cannot prove size {} from {old}: {e}", cp.size))
                }
            }
        };
        let Some(http) = &self.cosigning.http else {
            return self.failed(w, org, &witness, "no HTTP client could be built (TLS setup failed)".into());
        };
        let request = AddCheckpointRequest { old_size: old, proof, checkpoint: cp.note.clone() };
        let url = witness.endpoint.add_checkpoint_url();
        let answer = match send(http, &url, request.to_body().into()).await {
            Ok(a) => a,
            Err(e) => return self.failed(w, org, &witness, format!("cannot reach the witness: {e}")),
        };
        match answer.status {
            200 => {
                // The witness holds this checkpoint now, whatever it answered.
                *witness_size = Some(cp.size);
                let verified = answer
                    .body
                    .split_inclusive('\n')
                    .find_map(|line| witness.verifier.verify_line(body, line).ok().map(|t| (line, t)));
                let Some((line, cosigned_at)) = verified else {
                    return self.failed(
                        w,
                        org,
                        &witness,
                        format!(
                            "the witness answered no cosignature of size {} that verifies with its configured key {}",
                            cp.size, witness.endpoint.key
                        ),
                    );
                };
                let now = self.clock().now();
                let c = StoredCosignature {
                    size: cp.size,
                    witness: witness.name().to_owned(),
                    key_id: witness.verifier.key_id(),
                    line: line.to_owned(),
                    cosigned_at,
                    received_at: now,
                };
                if let Err(e) = store.add_cosignature(org.id, &c).await {
                    return self.failed(w, org, &witness, format!("cannot store its cosignature: {e}"));
                }
                tracing::debug!(witness = witness.name(), org = %org.slug, size = cp.size, "checkpoint cosigned");
                self.update_pair(w, org, |s| {
                    s.cosigned_size = Some(cp.size);
                    s.cosigned_at = Some(now);
                    s.behind_since = None;
                    s.last_error = None;
                });
                self.publish_pair_metrics(w, org);
                Outcome::Progress
            }
            409 => match conflict_size(&answer) {
                Some(held) if held > cp.size => {
                    *witness_size = Some(held);
                    self.alarm(w, org, &witness, format!(
                        "the witness holds a cosigned checkpoint of size {held}, larger than this log's newest checkpoint ({}): the log was rolled back",
                        cp.size
                    ));
                    Outcome::Failed
                }
                Some(held) if held == old => {
                    self.alarm(w, org, &witness, format!(
                        "the witness refused the checkpoint of size {} although it holds size {held}, the size sent: it cosigned another tree at that size",
                        cp.size
                    ));
                    Outcome::Failed
                }
                Some(held) => {
                    tracing::debug!(witness = witness.name(), org = %org.slug, held, sent = old, "witness holds another size; resending");
                    *witness_size = Some(held);
                    Outcome::Resend
                }
                None => self.failed(
                    w,
                    org,
                    &witness,
                    format!(
                        "409 without a valid {SIZE_CONTENT_TYPE} size ({:?}: {:?})",
                        answer.content_type,
                        first_line(&answer.body)
                    ),
                ),
            },
            422 => {
                self.alarm(w, org, &witness, format!(
                    "the witness refused the consistency proof from size {old}, which it cosigned, to this log's checkpoint of size {}: the log's tree does not extend what the witness cosigned",
                    cp.size
                ));
                Outcome::Failed
            }
            403 => self.failed(
                w,
                org,
                &witness,
                "403: the witness does not accept this log's signature (is the log's public key added to the witness?)"
                    .into(),
            ),
            404 => self.failed(
                w,
                org,
                &witness,
                format!(
                    "404: the witness does not know this log (add its origin {} to the witness)",
                    self.origin(&org.slug)
                ),
            ),
            status => {
                self.failed(w, org, &witness, format!("the witness answered {status}: {}", first_line(&answer.body)))
            }
        }
    }

    fn update_pair<T>(&self, w: usize, org: &Org, f: impl FnOnce(&mut super::PairState) -> T) -> T {
        let mut pairs = self.cosigning.pairs.write();
        let state = pairs
            .entry((w, org.id))
            .or_insert_with(|| super::PairState { org: org.slug.to_string(), ..Default::default() });
        f(state)
    }

    fn labels(witness: &Witness, org: &Org) -> WitnessLabels {
        WitnessLabels { witness: witness.name().to_owned(), org: org.slug.to_string() }
    }

    /// Sets the pair's gauges from its state.
    pub(crate) fn publish_pair_metrics(&self, w: usize, org: &Org) {
        let Some(witness) = self.cosigning.witnesses.get(w) else { return };
        let now = self.clock().now();
        let (size, lag, secs, alarm) = self.update_pair(w, org, |s| {
            (s.cosigned_size.unwrap_or(0), s.lag_events(), s.lag_seconds(now), s.alarm.is_some())
        });
        let labels = Self::labels(witness, org);
        let m = self.metrics();
        m.witness_cosigned_size.get_or_create(&labels).set(i64::try_from(size).unwrap_or(i64::MAX));
        m.witness_lag_events.get_or_create(&labels).set(i64::try_from(lag).unwrap_or(i64::MAX));
        m.witness_lag_seconds.get_or_create(&labels).set(secs);
        m.witness_alarm.get_or_create(&labels).set(i64::from(alarm));
    }

    fn failed(&self, w: usize, org: &Org, witness: &Witness, why: String) -> Outcome {
        tracing::warn!(witness = witness.name(), url = %witness.endpoint.url, org = %org.slug, error = %why, "witness: checkpoint not cosigned; will retry");
        self.metrics().witness_errors.get_or_create(&Self::labels(witness, org)).inc();
        let now = self.clock().now();
        self.update_pair(w, org, |s| s.last_error = Some((now, why)));
        self.publish_pair_metrics(w, org);
        Outcome::Failed
    }

    fn alarm(&self, w: usize, org: &Org, witness: &Witness, why: String) {
        let first = self.update_pair(w, org, |s| {
            let first = s.alarm.is_none();
            s.alarm = Some(why.clone());
            s.last_error = Some((self.clock().now(), why.clone()));
            first
        });
        self.metrics().witness_errors.get_or_create(&Self::labels(witness, org)).inc();
        self.publish_pair_metrics(w, org);
        if first {
            let source = format!("witness {} ({})", witness.name(), witness.endpoint.url);
            self.raise_integrity_alarm(&source, &org.slug.to_string(), &why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: &str, body: &str) -> Answer {
        Answer { status: 409, content_type: content_type.into(), body: body.into() }
    }

    #[test]
    fn a_conflict_names_the_size_in_its_own_media_type() {
        assert_eq!(conflict_size(&answer("text/x.tlog.size", "42\n")), Some(42));
        assert_eq!(conflict_size(&answer("text/x.tlog.size; charset=utf-8", "0\n")), Some(0));
        for (ct, body) in [
            ("text/plain", "42\n"),
            ("text/x.tlog.size", "042\n"),
            ("text/x.tlog.size", "\n"),
            ("text/x.tlog.size", "-1\n"),
            ("text/x.tlog.size", "4 2\n"),
        ] {
            assert_eq!(conflict_size(&answer(ct, body)), None, "{ct} {body:?}");
        }
    }
}
