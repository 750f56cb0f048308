//! Cosigning: each new checkpoint is sent to the configured C2SP witnesses (`tlog-witness`), and
//! the cosignatures they answer (`tlog-cosignature`) are checked and stored with it.
//!
//! A witness keeps, per log, the newest checkpoint it cosigned, and cosigns a newer one only
//! with a consistency proof from that one: once a witness has cosigned a checkpoint, nobody — not
//! even someone holding the database and the signing key — can get it to cosign a rolled-back
//! or forked tree. A witness that refuses Logbook's checkpoint as inconsistent (a proof that
//! does not hold from the size it has, or a size larger than the log's) is therefore evidence
//! that this log's history changed: it raises the integrity alarm ([`IntegrityAlarm`]).
//!
//! Nothing here is on the append path. The sequencer only publishes, through
//! [`crate::LogService::checkpointed`], that it stored a checkpoint; one task per witness and
//! log ([`client`]) reads the newest stored checkpoint, sends it (skipping any it did not get to
//! in time), and retries with capped exponential backoff when the witness cannot be reached or
//! refuses. A checkpoint that fewer than the quorum of witnesses cosigned is served as such
//! ([`CheckpointWitnessing`]).

pub(crate) mod client;

use std::collections::BTreeMap;
use std::sync::Arc;

use logbook_core::{OrgId, Timestamp};
use logbook_integrity::cosignature::CosignatureVerifier;
use logbook_store::{Org, StoreError, StoredCheckpoint, StoredCosignature};

use crate::LogService;

/// A witness as configured: where it answers and the key its cosignatures must verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessEndpoint {
    /// The witness's URL prefix; requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// Its cosignature verifier key, `<name>+<key id>+<base64 key>`.
    pub key: String,
}

impl WitnessEndpoint {
    /// Parses `URL=VERIFIER_KEY` (split at the first `=`: the URL itself holds none).
    pub fn parse(item: &str) -> Result<Self, String> {
        let (url, key) = item
            .split_once('=')
            .ok_or_else(|| format!("witness {item:?}: expected URL=VERIFIER_KEY (e.g. https://witness.example.com=witness.example.com+1234abcd+AbC…)"))?;
        let w = Self { url: url.trim().trim_end_matches('/').to_owned(), key: key.trim().to_owned() };
        w.check()?;
        Ok(w)
    }

    /// Checks the URL (absolute `http://` or `https://`, no query) and the key (a cosignature
    /// verifier key); returns the key's verifier.
    pub fn check(&self) -> Result<CosignatureVerifier, String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("witness URL {:?}: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("witness URL {:?}: must be an absolute http:// or https:// URL", self.url));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("witness URL {:?}: must not have a query or fragment", self.url));
        }
        CosignatureVerifier::new(&self.key).map_err(|e| {
            format!(
                "witness key {:?} of {}: not a cosignature verifier key (name+keyid+base64): {e}",
                self.key, self.url
            )
        })
    }

    /// Where checkpoints are sent.
    pub fn add_checkpoint_url(&self) -> String {
        format!("{}/add-checkpoint", self.url.trim_end_matches('/'))
    }
}

/// A configured witness, its key parsed.
#[derive(Debug)]
pub(crate) struct Witness {
    pub endpoint: WitnessEndpoint,
    pub verifier: CosignatureVerifier,
}

impl Witness {
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    fn signed(&self, c: &StoredCosignature) -> bool {
        c.witness == self.verifier.name() && c.key_id == self.verifier.key_id()
    }
}

/// Something that shows this log's history is not what it was: raised by a witness that refuses
/// a checkpoint as inconsistent (and by any other check that finds the same). Kept until the
/// process restarts; shown in the console's integrity banner, `/metrics` and the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IntegrityAlarm {
    /// Who noticed, e.g. `witness w1.example.com`.
    pub source: String,
    /// The organization whose log it concerns.
    pub org: String,
    /// What was found, in a sentence.
    pub message: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Where one witness stands with one log, as the API, the console and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WitnessStatus {
    pub url: String,
    /// The witness's key name (the name in its signature lines).
    pub name: String,
    pub org: String,
    /// The largest checkpoint size it cosigned (none yet: null).
    pub cosigned_size: Option<u64>,
    /// When that cosignature was received (RFC 3339).
    pub cosigned_at: Option<String>,
    /// The size of the newest signed checkpoint of the log.
    pub checkpoint_size: u64,
    /// Entries of the newest checkpoint the witness has not cosigned yet.
    pub lag_events: u64,
    /// For how long the witness has been behind the newest checkpoint: since the first
    /// checkpoint it has not cosigned was signed (0 when it is caught up).
    pub lag_seconds: f64,
    /// The last failure talking to it (null after a success).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Set when the witness refused a checkpoint as inconsistent with what it cosigned before.
    pub alarm: Option<String>,
}

/// Which witnesses cosigned one checkpoint, against the configured quorum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CheckpointWitnessing {
    /// The checkpoint's tree size.
    pub size: u64,
    /// The key names of the configured witnesses whose verified cosignature of it is stored.
    pub cosigned_by: Vec<String>,
    /// How many cosignatures the checkpoint needs (0 when no witness is configured).
    pub quorum: usize,
    /// Whether it has at least `quorum` of them.
    pub quorum_reached: bool,
}

/// The in-memory state of one (witness, log) pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairState {
    pub org: String,
    pub cosigned_size: Option<u64>,
    pub cosigned_at: Option<Timestamp>,
    pub checkpoint_size: u64,
    /// The signing time of the first checkpoint the witness has not cosigned.
    pub behind_since: Option<Timestamp>,
    pub last_error: Option<(Timestamp, String)>,
    pub alarm: Option<String>,
}

/// Everything cosigning keeps in the log service.
#[derive(Debug)]
pub(crate) struct Cosigning {
    pub witnesses: Vec<Arc<Witness>>,
    pub quorum: usize,
    /// Per (witness index, organization).
    pub pairs: parking_lot::RwLock<BTreeMap<(usize, OrgId), PairState>>,
    pub alarms: parking_lot::RwLock<Vec<IntegrityAlarm>>,
    pub tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// `None` only if the TLS setup failed (every attempt then records that).
    pub http: Option<reqwest::Client>,
}

impl Cosigning {
    pub fn new(config: &crate::LogConfig) -> Self {
        let mut witnesses = Vec::new();
        for endpoint in &config.witnesses {
            match endpoint.check() {
                Ok(verifier) => witnesses.push(Arc::new(Witness { endpoint: endpoint.clone(), verifier })),
                // The command line checks the configuration first; this only guards other callers.
                Err(e) => tracing::error!(error = %e, "witness left out: its configuration is invalid"),
            }
        }
        let quorum = config.witness_quorum.unwrap_or(config.witnesses.len()).min(config.witnesses.len());
        let http = reqwest::Client::builder()
            .connect_timeout(client::CONNECT_TIMEOUT)
            .timeout(client::REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("logbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .inspect_err(|e| tracing::error!(error = %e, "witnesses: cannot build the HTTP client"))
            .ok();
        Self {
            http,
            witnesses,
            quorum,
            pairs: parking_lot::RwLock::new(BTreeMap::new()),
            alarms: parking_lot::RwLock::new(Vec::new()),
            tasks: parking_lot::Mutex::new(Vec::new()),
        }
    }
}

impl LogService {
    /// Starts sending every log's new checkpoints to the configured witnesses (`serve` does;
    /// one-shot commands do not: the next `serve` sends their checkpoints). Idempotent.
    pub fn start_witnesses(self: &Arc<Self>) {
        let mut tasks = self.cosigning.tasks.lock();
        if !tasks.is_empty() || self.cosigning.witnesses.is_empty() {
            return;
        }
        tasks.push(tokio::spawn(client::supervise(Arc::downgrade(self))));
    }

    /// The configured witnesses' key names and URLs.
    pub fn witnesses(&self) -> Vec<WitnessEndpoint> {
        self.cosigning.witnesses.iter().map(|w| w.endpoint.clone()).collect()
    }

    /// How many cosignatures a checkpoint needs to count as witnessed (0 without witnesses).
    pub fn witness_quorum(&self) -> usize {
        self.cosigning.quorum
    }

    /// Where every witness stands with every log it was sent.
    pub fn witness_status(&self) -> Vec<WitnessStatus> {
        let now = self.shared.clock.now();
        let pairs = self.cosigning.pairs.read();
        pairs
            .iter()
            .filter_map(|((w, _), s)| {
                let witness = self.cosigning.witnesses.get(*w)?;
                Some(WitnessStatus {
                    url: witness.endpoint.url.clone(),
                    name: witness.name().to_owned(),
                    org: s.org.clone(),
                    cosigned_size: s.cosigned_size,
                    cosigned_at: s.cosigned_at.map(Timestamp::to_rfc3339),
                    checkpoint_size: s.checkpoint_size,
                    lag_events: s.lag_events(),
                    lag_seconds: s.lag_seconds(now),
                    last_error: s.last_error.as_ref().map(|(_, e)| e.clone()),
                    last_error_at: s.last_error.as_ref().map(|(t, _)| t.to_rfc3339()),
                    alarm: s.alarm.clone(),
                })
            })
            .collect()
    }

    /// The integrity alarms raised since start (empty: none).
    pub fn integrity_alarms(&self) -> Vec<IntegrityAlarm> {
        self.cosigning.alarms.read().clone()
    }

    /// Raises the integrity alarm: logged as an error, counted in `/metrics`
    /// (`logbook_integrity_alarms`) and shown above every console page to admins until restart.
    pub fn raise_integrity_alarm(&self, source: &str, org: &str, message: &str) {
        tracing::error!(source, org, "INTEGRITY ALARM: {message}");
        self.shared.metrics.integrity_alarms.inc();
        self.cosigning.alarms.write().push(IntegrityAlarm {
            source: source.to_owned(),
            org: org.to_owned(),
            message: message.to_owned(),
            at: self.shared.clock.now().to_rfc3339(),
        });
    }

    /// Which configured witnesses cosigned the checkpoint of `org` with `size`.
    pub async fn witnessing(&self, org: &Org, size: u64) -> Result<CheckpointWitnessing, StoreError> {
        let stored = if self.cosigning.witnesses.is_empty() {
            Vec::new()
        } else {
            self.store().cosignatures(org.id, size).await?
        };
        Ok(self.witnessing_of(size, &stored))
    }

    fn witnessing_of(&self, size: u64, stored: &[StoredCosignature]) -> CheckpointWitnessing {
        let cosigned_by: Vec<String> = self
            .cosigning
            .witnesses
            .iter()
            .filter(|w| stored.iter().any(|c| w.signed(c)))
            .map(|w| w.name().to_owned())
            .collect();
        let quorum = self.cosigning.quorum;
        CheckpointWitnessing { size, quorum_reached: cosigned_by.len() >= quorum, cosigned_by, quorum }
    }

    /// The newest checkpoint of a log as a note that also carries the stored cosignatures of the
    /// configured witnesses (one signature line each, after the log's own), and which of them
    /// cosigned it.
    pub async fn cosigned_checkpoint(
        &self,
        org: &Org,
    ) -> Result<Option<(StoredCheckpoint, CheckpointWitnessing)>, StoreError> {
        let Some(mut cp) = self.latest_checkpoint(org).await? else { return Ok(None) };
        let stored = if self.cosigning.witnesses.is_empty() {
            Vec::new()
        } else {
            self.store().cosignatures(org.id, cp.size).await?
        };
        for c in &stored {
            if self.cosigning.witnesses.iter().any(|w| w.signed(c)) {
                cp.note.push_str(&c.line);
            }
        }
        let witnessing = self.witnessing_of(cp.size, &stored);
        Ok(Some((cp, witnessing)))
    }
}

impl PairState {
    pub fn lag_events(&self) -> u64 {
        self.checkpoint_size.saturating_sub(self.cosigned_size.unwrap_or(0))
    }

    pub fn lag_seconds(&self, now: Timestamp) -> f64 {
        match self.behind_since {
            Some(t) if self.lag_events() > 0 => (now.as_micros() - t.as_micros()).max(0) as f64 / 1e6,
            _ => 0.0,
        }
    }
}

/// The body of a checkpoint note: its text up to and including the blank line's first newline,
/// which is what a cosignature signs.
pub(crate) fn note_body(note: &str) -> Option<&str> {
    note.find("\n\n").map(|i| &note[..=i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_witness_is_url_equals_key() {
        let key = logbook_integrity::cosignature::CosignatureSigner::generate(
            &logbook_core::SeededRandom::new(3),
            "w.example.com",
        )
        .unwrap()
        .verifier_key()
        .to_owned();
        let w = WitnessEndpoint::parse(&format!("https://w.example.com/prefix/={key}")).unwrap();
        assert_eq!(w.url, "https://w.example.com/prefix");
        assert_eq!(w.key, key);
        assert_eq!(w.add_checkpoint_url(), "https://w.example.com/prefix/add-checkpoint");
        for bad in [
            key.clone(),
            format!("ftp://w.example.com={key}"),
            format!("w.example.com={key}"),
            "https://w.example.com=w.example.com+0000+AAAA".to_owned(),
            format!("https://w.example.com/?a={key}"),
        ] {
            assert!(WitnessEndpoint::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_note_body_ends_at_the_blank_line() {
        assert_eq!(note_body("o\n1\nAAA=\n\n\u{2014} k sig\n"), Some("o\n1\nAAA=\n"));
        assert_eq!(note_body("no blank line\n"), None);
    }
}
