//! The sequencer's side of [`crate::trust`]: which checkpoints it must extend, when it checks,
//! and what it does when the tree does not extend them (the log becomes *damaged*).

use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_store::StoredCheckpoint;

use super::Sequencer;
use crate::trust::{check_extends, explain, Anchor};
use crate::witness::{self, WitnessedCheckpoint};
use crate::AppendError;

/// The witness directory's newest checkpoint size when the trusted checkpoints were read (`None`:
/// it had none, or none is configured): [`witness::publish`] writes only on top of that one.
pub(super) struct DirState(pub Option<u64>);

impl Sequencer {
    /// At start: the tree must extend the newest stored checkpoint and every checkpoint of the
    /// witness directory (its history included, in case its newest file was replaced).
    pub(super) async fn check_at_start(&mut self, latest: Option<StoredCheckpoint>) -> Result<(), AppendError> {
        let mut anchors = Vec::new();
        if let Some(cp) = latest {
            match self.trusted_stored(&cp) {
                Some(a) => anchors.push(a),
                None => {
                    self.damage(format!(
                        "the newest stored checkpoint of {} (size {}) is not validly signed by the configured key {} for {}: \
                         the store was altered, or Logbook runs with another key than the one that signed it; nothing will \
                         be signed or appended. Run `logbook verify`",
                        self.org.slug,
                        cp.size,
                        self.shared.signer.verifier_key(),
                        self.origin
                    ));
                    return Ok(());
                }
            }
        }
        let history = self.witness_history().await;
        if let Some(newest) = history.iter().max_by_key(|c| c.size) {
            anchors.push(Anchor::from((newest, "the witness directory")));
        }
        anchors.sort_by_key(|a| std::cmp::Reverse(a.size));
        let (size, root) = (self.edge.size(), self.edge.root());
        for a in &anchors {
            if let Err(m) = check_extends(&*self.shared.store, &self.org, a, size, root).await? {
                let why = explain(&*self.shared.store, &self.org, a, &m, size, root, &history).await;
                self.damage(why);
                return Ok(());
            }
        }
        self.anchor = anchors.into_iter().next();
        Ok(())
    }

    /// Reloads the edge from the store (another process appended, or a commit failed) and checks
    /// that the tree still extends the anchor.
    pub(super) async fn reload_checked(&mut self) -> Result<(), AppendError> {
        self.reload().await?;
        let Some(a) = self.anchor.clone() else { return Ok(()) };
        let (size, root) = (self.edge.size(), self.edge.root());
        match check_extends(&*self.shared.store, &self.org, &a, size, root).await? {
            Ok(()) => Ok(()),
            Err(m) => {
                let history = self.witness_history().await;
                let why = explain(&*self.shared.store, &self.org, &a, &m, size, root, &history).await;
                self.damage(why.clone());
                Err(AppendError::Damaged(why))
            }
        }
    }

    /// Before signing a tree of `size` leaves: checkpoints trusted since the anchor (another
    /// process's, in the store or in a shared witness directory) must be extended too. `Ok(None)`:
    /// do not sign now (another process is ahead, or the log was found damaged).
    pub(super) async fn newer_trusted(&mut self, size: u64) -> Result<Option<DirState>, String> {
        let known = self.anchor.as_ref().map_or(0, |a| a.size);
        let mut candidates = Vec::new();
        let latest = self.shared.store.latest_checkpoint(self.org.id).await.map_err(|e| e.to_string())?;
        if let Some(cp) = latest.filter(|cp| cp.size > known) {
            match self.trusted_stored(&cp) {
                Some(a) => candidates.push(a),
                None => {
                    self.damage(format!(
                        "a new checkpoint of {} in the store (size {}) is not validly signed by the configured key; \
                         nothing will be signed or appended. Run `logbook verify`",
                        self.org.slug, cp.size
                    ));
                    return Ok(None);
                }
            }
        }
        let dir_newest = self.witness_newest().await.map_err(|e| format!("reading the witness directory: {e}"))?;
        let dir = DirState(dir_newest.as_ref().map(|c| c.size));
        if let Some(c) = dir_newest.filter(|c| c.size > known) {
            candidates.push(Anchor::from((&c, "the witness directory")));
        }
        let root = self.edge.root();
        for a in candidates {
            if a.size > size {
                // Another process signed a larger tree than this one has seen: nothing to sign
                // until a commit reloads the head (and checks it then).
                self.checkpointed_size = size;
                return Ok(None);
            }
            match check_extends(&*self.shared.store, &self.org, &a, size, root).await.map_err(|e| e.to_string())? {
                Ok(()) => {
                    if self.anchor.as_ref().is_none_or(|old| a.size > old.size) {
                        self.anchor = Some(a);
                    }
                }
                Err(m) => {
                    let history = self.witness_history().await;
                    let why = explain(&*self.shared.store, &self.org, &a, &m, size, root, &history).await;
                    self.damage(why);
                    return Ok(None);
                }
            }
        }
        Ok(Some(dir))
    }

    /// The stored checkpoint as an anchor, if it is validly signed for this log and its size and
    /// root columns are the note's.
    fn trusted_stored(&self, cp: &StoredCheckpoint) -> Option<Anchor> {
        let v = self.shared.signer.verifier().verify(&cp.note).ok()?;
        (v.origin == self.origin && v.size == cp.size && v.root.0 == cp.root).then(|| Anchor {
            size: cp.size,
            root: v.root,
            source: "the store".into(),
        })
    }

    /// Every checkpoint of this log in the witness directory, sorted by size (the newest file
    /// and the history); empty when none is configured. An unreadable directory is logged.
    async fn witness_history(&self) -> Vec<WitnessedCheckpoint> {
        let read = self.in_witness_dir(|dir, org, v, origin| {
            let mut all = witness::history(dir, org, v, origin)?;
            all.extend(witness::newest(dir, org, v, origin)?);
            all.sort_by_key(|c| c.size);
            all.dedup_by_key(|c| c.size);
            Ok(all)
        });
        match read.await {
            Ok(h) => h.unwrap_or_default(),
            Err(e) => {
                self.shared.metrics.witness_failures.inc();
                tracing::error!(org = %self.org.slug, error = %e, "cannot read the witness directory");
                Vec::new()
            }
        }
    }

    async fn witness_newest(&self) -> std::io::Result<Option<WitnessedCheckpoint>> {
        Ok(self.in_witness_dir(witness::newest).await?.flatten())
    }

    /// Runs a blocking read of the witness directory (`None` when none is configured).
    async fn in_witness_dir<T: Send + 'static>(
        &self,
        read: impl FnOnce(&std::path::Path, &logbook_core::OrgSlug, &CheckpointVerifier, &str) -> std::io::Result<T>
            + Send
            + 'static,
    ) -> std::io::Result<Option<T>> {
        let Some(dir) = self.shared.config.witness_dir.clone() else { return Ok(None) };
        let (org, origin, key) =
            (self.org.slug.clone(), self.origin.clone(), self.shared.signer.verifier_key().to_owned());
        tokio::task::spawn_blocking(move || {
            let verifier = CheckpointVerifier::new(&key).map_err(std::io::Error::other)?;
            read(&dir, &org, &verifier, &origin).map(Some)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Marks the log damaged: logged once, counted, shown, and from now on every submission is
    /// refused and nothing is signed or written to the witness directory.
    pub(super) fn damage(&mut self, why: String) {
        if self.damaged.is_some() {
            return;
        }
        tracing::error!(org = %self.org.slug, error = %why, "integrity: the stored log does not extend its trusted checkpoint; appends are refused and nothing is signed");
        self.shared.metrics.logs_damaged.inc();
        self.shared.damaged.lock().insert(self.org.id, why.clone());
        self.set_health(Err(why.clone()));
        self.damaged = Some(why);
    }
}
