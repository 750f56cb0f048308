//! What the log service counts, in Prometheus form.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// One witness (its key name) and one log (its organization).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabels {
    pub witness: String,
    pub org: String,
}

#[derive(Debug, Clone)]
pub struct LogMetrics {
    pub events_appended: Counter,
    pub commits: Counter,
    pub commit_failures: Counter,
    pub batch_events: Histogram,
    pub commit_seconds: Histogram,
    pub checkpoints_signed: Counter,
    pub witness_failures: Counter,
    pub log_size: Gauge,
    /// Logs that do not extend their trusted checkpoint (see `trust`): appends refused.
    pub logs_damaged: Gauge,
    pub self_check_runs: Counter,
    pub self_check_failures: Counter,
    pub self_check_ok: Gauge,
    pub self_check_last_run: Gauge,
    pub self_check_last_success: Gauge,
    pub self_check_verified_size: Gauge,
    pub witness_cosigned_size: Family<WitnessLabels, Gauge>,
    pub witness_lag_events: Family<WitnessLabels, Gauge>,
    pub witness_lag_seconds: Family<WitnessLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub witness_errors: Family<WitnessLabels, Counter>,
    pub witness_alarm: Family<WitnessLabels, Gauge>,
    pub integrity_alarms: Counter,
    pub full_self_check_runs: Counter,
    pub full_self_check_failures: Counter,
    pub full_self_check_ok: Gauge,
    pub full_self_check_last_start: Gauge,
    pub full_self_check_last_end: Gauge,
    pub full_self_check_last_success: Gauge,
    pub full_self_check_checked: Gauge,
    pub full_self_check_size: Gauge,
    pub full_self_check_first_bad_seq: Gauge,
}

impl Default for LogMetrics {
    fn default() -> Self {
        Self {
            events_appended: Counter::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            batch_events: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 12)),
            checkpoints_signed: Counter::default(),
            witness_failures: Counter::default(),
            log_size: Gauge::default(),
            logs_damaged: Gauge::default(),
            self_check_runs: Counter::default(),
            self_check_failures: Counter::default(),
            self_check_ok: Gauge::default(),
            self_check_last_run: Gauge::default(),
            self_check_last_success: Gauge::default(),
            self_check_verified_size: Gauge::default(),
            witness_cosigned_size: Family::default(),
            witness_lag_events: Family::default(),
            witness_lag_seconds: Family::default(),
            witness_errors: Family::default(),
            witness_alarm: Family::default(),
            integrity_alarms: Counter::default(),
            full_self_check_runs: Counter::default(),
            full_self_check_failures: Counter::default(),
            full_self_check_ok: Gauge::default(),
            full_self_check_last_start: Gauge::default(),
            full_self_check_last_end: Gauge::default(),
            full_self_check_last_success: Gauge::default(),
            full_self_check_checked: Gauge::default(),
            full_self_check_size: Gauge::default(),
            full_self_check_first_bad_seq: Gauge::default(),
        }
    }
}

impl LogMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register("logbook_events_appended", "Events durably appended", self.events_appended.clone());
        r.register("logbook_commits", "Durable commits (one per group-commit batch)", self.commits.clone());
        r.register(
            "logbook_commit_failures",
            "Commits that failed; their events were not acknowledged",
            self.commit_failures.clone(),
        );
        r.register("logbook_batch_events", "Events per commit", self.batch_events.clone());
        r.register("logbook_commit_seconds", "Time to a durable commit", self.commit_seconds.clone());
        r.register(
            "logbook_logs_damaged",
            "Logs whose stored tree does not extend their newest trusted checkpoint; they take no appends and sign nothing",
            self.logs_damaged.clone(),
        );
        r.register("logbook_checkpoints_signed", "Checkpoints signed and stored", self.checkpoints_signed.clone());
        r.register(
            "logbook_witness_failures",
            "Checkpoints that could not be written to the witness",
            self.witness_failures.clone(),
        );
        r.register("logbook_log_size", "Entries in the most recently appended log", self.log_size.clone());
        r.register("logbook_self_check_runs", "Integrity self-checks run", self.self_check_runs.clone());
        r.register(
            "logbook_self_check_failures",
            "Integrity self-checks that found a log not matching its newest signed checkpoint (or could not read it)",
            self.self_check_failures.clone(),
        );
        r.register(
            "logbook_self_check_ok",
            "1 if the last integrity self-check passed, 0 if it failed or none ran yet",
            self.self_check_ok.clone(),
        );
        r.register(
            "logbook_self_check_last_run_timestamp_seconds",
            "When the last integrity self-check ran (Unix time)",
            self.self_check_last_run.clone(),
        );
        r.register(
            "logbook_self_check_last_success_timestamp_seconds",
            "When an integrity self-check last passed (Unix time)",
            self.self_check_last_success.clone(),
        );
        r.register(
            "logbook_self_check_verified_size",
            "Entries covered by the checkpoints the last passing self-check verified, over all logs",
            self.self_check_verified_size.clone(),
        );
        r.register(
            "logbook_witness_cosigned_size",
            "Per witness and log: the largest checkpoint size the witness cosigned",
            self.witness_cosigned_size.clone(),
        );
        r.register(
            "logbook_witness_lag_events",
            "Per witness and log: entries of the newest checkpoint the witness has not cosigned",
            self.witness_lag_events.clone(),
        );
        r.register(
            "logbook_witness_lag_seconds",
            "Per witness and log: how long the witness has been behind the newest checkpoint",
            self.witness_lag_seconds.clone(),
        );
        r.register(
            "logbook_witness_errors",
            "Per witness and log: attempts to get a checkpoint cosigned that failed",
            self.witness_errors.clone(),
        );
        r.register(
            "logbook_witness_alarm",
            "Per witness and log: 1 once the witness refused a checkpoint as inconsistent with what it cosigned (a fork or a rollback)",
            self.witness_alarm.clone(),
        );
        r.register(
            "logbook_integrity_alarms",
            "Integrity alarms raised since start (see the log and Settings, Integrity)",
            self.integrity_alarms.clone(),
        );
        r.register(
            "logbook_full_self_check_runs",
            "Full integrity self-checks finished",
            self.full_self_check_runs.clone(),
        );
        r.register(
            "logbook_full_self_check_failures",
            "Full integrity self-checks that found a log not matching its newest signed checkpoint",
            self.full_self_check_failures.clone(),
        );
        r.register(
            "logbook_full_self_check_ok",
            "1 if every log's last full self-check passed, 0 if one failed or none finished yet",
            self.full_self_check_ok.clone(),
        );
        r.register(
            "logbook_full_self_check_last_start_timestamp_seconds",
            "When the last finished full self-check started (Unix time)",
            self.full_self_check_last_start.clone(),
        );
        r.register(
            "logbook_full_self_check_last_end_timestamp_seconds",
            "When the last full self-check finished (Unix time)",
            self.full_self_check_last_end.clone(),
        );
        r.register(
            "logbook_full_self_check_last_success_timestamp_seconds",
            "When a full self-check last passed (Unix time)",
            self.full_self_check_last_success.clone(),
        );
        r.register(
            "logbook_full_self_check_checked_events",
            "Events the full self-check has read: of the runs under way, else of the last finished runs, over all logs",
            self.full_self_check_checked.clone(),
        );
        r.register(
            "logbook_full_self_check_log_size",
            "Entries of the signed checkpoints those full self-check runs check against (coverage = checked / size)",
            self.full_self_check_size.clone(),
        );
        r.register(
            "logbook_full_self_check_first_bad_seq",
            "The first bad seq the last full self-checks found, -1 if none",
            self.full_self_check_first_bad_seq.clone(),
        );
    }
}
