//! `/metrics`: Prometheus text format.

use parking_lot::Mutex;

use logbook_accounts::AccountMetrics;
use logbook_log::LogMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub http_responses: Family<StatusLabel, Counter>,
    pub http_panics: Counter,
    /// Exports whose response or store reads are still going.
    pub exports_in_progress: Gauge,
}

impl Metrics {
    pub fn new(log: &LogMetrics, accounts: &AccountMetrics) -> Self {
        let mut registry = Registry::default();
        log.register(&mut registry);
        accounts.register(&mut registry);
        let http_responses = Family::<StatusLabel, Counter>::default();
        registry.register("logbook_http_responses", "HTTP responses by status", http_responses.clone());
        let http_panics = Counter::default();
        registry.register("logbook_http_panics", "Request handlers that panicked (answered 500)", http_panics.clone());
        let exports_in_progress = Gauge::default();
        registry.register(
            "logbook_exports_in_progress",
            "Exports still streaming or reading the store",
            exports_in_progress.clone(),
        );
        Self { registry: Mutex::new(registry), http_responses, http_panics, exports_in_progress }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}
