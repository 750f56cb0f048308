//! Failed sign-ins counted per source address, so one address cannot try password after
//! password across many accounts (the per-account lockout only stops it trying one account).
//!
//! The counter lives in the database (`sign_in_throttle`), so every process sharing it counts
//! together and refuses together. An attempt is counted before its password is checked, and
//! given back when it was right (`attempts.rs`). An address over the limit is refused before any
//! password is hashed, so a flood costs one indexed read per request. The failure that reaches the limit is
//! recorded in its Login Failed event (`address_failures`, and the details say further
//! sign-ins are refused); the refusals that follow are not recorded one by one, so a flood
//! cannot fill the log, but they are counted in `/metrics`.

use std::net::IpAddr;
use std::time::Duration;

use logbook_core::{Source, Timestamp};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::{AccountError, Accounts};

/// How many failed sign-ins one address may make in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInThrottle {
    /// Failures allowed from one address within `window`; the next attempts are refused until
    /// the window (which starts at the address's first failure) is over. 0 turns it off.
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        Self { max_failures: 30, window: Duration::from_secs(15 * 60) }
    }
}

impl SignInThrottle {
    pub fn minutes(&self) -> u64 {
        self.window.as_secs().div_ceil(60)
    }
}

/// The address a failure is counted against: an IPv4 address as it is, an IPv6 address by its
/// /64 (one subscriber's network usually has a whole /64, so single addresses would be free).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// What the accounts count, in Prometheus form.
#[derive(Debug, Clone, Default)]
pub struct AccountMetrics {
    pub sign_ins_throttled: Counter,
}

impl AccountMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "logbook_sign_ins_throttled",
            "Sign-ins refused because their address had too many recent failures",
            self.sign_ins_throttled.clone(),
        );
    }
}

/// What counting a failure found: the failures in the address's window, and whether this one
/// reached the limit (so its event says further sign-ins are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub failures: u32,
    pub reached_limit: bool,
}

impl Accounts {
    fn window_since(&self) -> Timestamp {
        let now = self.now().as_micros();
        let window = i64::try_from(self.config.sign_in_throttle.window.as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_micros(now.saturating_sub(window))
    }

    /// Refuses a sign-in from an address with too many recent failures, before any hashing.
    pub(crate) async fn check_address(&self, source: &Source) -> Result<(), AccountError> {
        let policy = self.config.sign_in_throttle;
        let Some(ip) = source.ip.filter(|_| policy.max_failures > 0) else { return Ok(()) };
        let failures = self.log.store().sign_in_failures(self.org.id, &address_key(ip), self.window_since()).await?;
        if failures >= policy.max_failures {
            self.metrics.sign_ins_throttled.inc();
            return Err(AccountError::Throttled { minutes: policy.minutes() });
        }
        Ok(())
    }

    /// Counts an attempt from `source` against its address before its password or code is
    /// checked (see `attempts.rs`): the key, the window and the count; `None` when the throttle is
    /// off or the address unknown. Refused with `Throttled` when the address has its limit of
    /// failures already: one statement decides and counts, so concurrent attempts never pass
    /// the limit together.
    pub(crate) async fn count_address_attempt(
        &self,
        source: &Source,
    ) -> Result<Option<(String, Timestamp, Counted)>, AccountError> {
        let policy = self.config.sign_in_throttle;
        let Some(ip) = source.ip.filter(|_| policy.max_failures > 0) else { return Ok(None) };
        let (key, since) = (address_key(ip), self.window_since());
        let counted =
            self.log.store().count_sign_in_attempt(self.org.id, &key, self.now(), since, policy.max_failures).await?;
        let Some(failures) = counted else {
            self.metrics.sign_ins_throttled.inc();
            return Err(AccountError::Throttled { minutes: policy.minutes() });
        };
        Ok(Some((key, since, Counted { failures, reached_limit: failures == policy.max_failures })))
    }

    /// Forgets addresses whose window is over (run periodically).
    pub async fn prune_sign_in_throttle(&self) -> Result<u64, AccountError> {
        Ok(self.log.store().prune_sign_in_failures(self.window_since()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_by_ipv4_address_and_ipv6_network() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9", "a mapped IPv4 address is that address");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), key("2001:db8:1:2::7"), "one /64, one counter");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }
}
