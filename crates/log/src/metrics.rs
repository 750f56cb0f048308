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
    }
}
