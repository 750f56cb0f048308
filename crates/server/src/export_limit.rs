//! How many exports run at once. An export reads the whole (filtered) log and holds a store
//! connection while it streams, so a few clients asking for many could starve everyone else:
//! at most `global` exports run at once, and at most `per_user` of one user. Beyond either,
//! the request is answered 429 before anything is read or recorded.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportBusy {
    /// This user already runs as many exports as one user may.
    User,
    /// The server runs as many exports as it allows.
    Server,
}

#[derive(Debug)]
pub struct ExportLimiter {
    global: usize,
    per_user: usize,
    running: Mutex<Running>,
    /// `logbook_exports_in_progress`.
    gauge: Gauge,
}

#[derive(Debug, Default)]
struct Running {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// One running export; the slot is given back when the last clone is dropped (the streamed
/// body and the task that reads the store each hold one, so the slot is held until both have
/// ended: the response finished or its client gone, and the reads stopped).
#[derive(Debug)]
pub struct ExportSlot {
    limiter: Arc<ExportLimiter>,
    user: String,
}

impl ExportLimiter {
    pub fn new(global: usize, per_user: usize, gauge: Gauge) -> Self {
        Self { global, per_user, running: Mutex::default(), gauge }
    }

    /// A slot for an export by `user`, or which limit refuses it.
    pub fn start(self: &Arc<Self>, user: &str) -> Result<Arc<ExportSlot>, ExportBusy> {
        let mut running = self.running.lock();
        let mine = running.by_user.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(ExportBusy::User);
        }
        if running.total >= self.global {
            return Err(ExportBusy::Server);
        }
        running.total += 1;
        *running.by_user.entry(user.to_owned()).or_insert(0) += 1;
        self.gauge.inc();
        Ok(Arc::new(ExportSlot { limiter: self.clone(), user: user.to_owned() }))
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self.limiter.running.lock();
        running.total = running.total.saturating_sub(1);
        if let Some(n) = running.by_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                running.by_user.remove(&self.user);
            }
        }
        self.limiter.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_hold_and_slots_come_back() {
        let limiter = Arc::new(ExportLimiter::new(3, 2, Gauge::default()));
        let a1 = limiter.start("ada").unwrap();
        let a2 = limiter.start("ada").unwrap();
        assert_eq!(limiter.start("ada").unwrap_err(), ExportBusy::User);
        let b1 = limiter.start("bob").unwrap();
        assert_eq!(limiter.start("cy").unwrap_err(), ExportBusy::Server);
        assert_eq!(limiter.gauge.get(), 3);
        let a1_too = a1.clone();
        drop(a1);
        assert_eq!(limiter.start("cy").unwrap_err(), ExportBusy::Server, "a clone still holds the slot");
        drop(a1_too);
        let c1 = limiter.start("cy").unwrap();
        drop((a2, b1, c1));
        assert_eq!(limiter.gauge.get(), 0);
        assert!(limiter.running.lock().by_user.is_empty());
    }
}
