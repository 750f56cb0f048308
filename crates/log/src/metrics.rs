//! What the log service counts, in Prometheus form.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
    pub self_check_runs: Counter,
    pub self_check_failures: Counter,
    pub self_check_ok: Gauge,
    pub self_check_last_run: Gauge,
    pub self_check_last_success: Gauge,
    pub self_check_verified_size: Gauge,
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
            self_check_runs: Counter::default(),
            self_check_failures: Counter::default(),
            self_check_ok: Gauge::default(),
            self_check_last_run: Gauge::default(),
            self_check_last_success: Gauge::default(),
            self_check_verified_size: Gauge::default(),
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
