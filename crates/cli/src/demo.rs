//! `logbook demo`: realistic events for trying Logbook out and for benchmarks, appended through
//! the real append path with a clock that walks from `--days` ago to now.
//!
//! The events are fabricated, so they say so (`recorded_by: demo`), and they only go into a log
//! that holds nothing but its set-up — the first admin's creation and API token events — so
//! trying Logbook out right after creating the first admin works, while a log in use is never
//! filled with them unless `--force` says so. Each run records one `demo.events_added` event of
//! its own (actor `cli:$USER`, `recorded_by: cli`) naming how many events it added and their
//! seqs, so the log itself tells where the fabricated ones are.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;

use logbook_core::{
    Action, Actor, ActorKind, Clock, ManualClock, NewEvent, OrgSlug, Outcome, Source, SystemClock, Target, Timestamp,
};
use logbook_log::LogService;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use anyhow::bail;
use logbook_core::{EventBuilder, OrgId};
use logbook_store::Store;

use crate::cli::DemoArgs;
use crate::commands::{cli_actor, one_shot};
use crate::config::Config;

const ROLES: [&str; 3] = ["Admin", "Analyst", "Auditor"];
const FIRST: [&str; 16] = [
    "ada", "ben", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lena", "mateo", "nia", "omar",
    "priya",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];

/// The `recorded_by` of every fabricated event.
pub const RECORDED_BY: &str = "demo";

fn target(kind: &str, id: impl Into<String>, display: impl Into<String>) -> Target {
    Target { kind: kind.into(), id: id.into(), display: display.into() }
}

/// A deterministic stream of plausible platform events.
#[derive(Debug)]
pub struct Scenario {
    rng: StdRng,
    users: Vec<(String, String, usize)>, // (id, email, role)
    pending: VecDeque<NewEvent>,
    protected: u64,
}

impl Scenario {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let users = (0..40)
            .map(|i| {
                let name = FIRST[i % FIRST.len()];
                let email =
                    if i < FIRST.len() { format!("{name}@acme.example") } else { format!("{name}.{i}@acme.example") };
                (format!("usr_{i:03}"), email, rng.gen_range(0..3))
            })
            .collect();
        Self { rng, users, pending: VecDeque::new(), protected: 0 }
    }

    fn source(&mut self, user: usize) -> Source {
        Source {
            via: None,
            ip: Some([198, 51, 100, (user % 250) as u8 + 1].into()),
            user_agent: Some(AGENTS[user % AGENTS.len()].to_owned()),
        }
    }

    fn actor(&self, user: usize) -> Actor {
        let (id, email, _) = &self.users[user];
        Actor { kind: ActorKind::User, id: id.clone(), email: Some(email.clone()) }
    }

    fn event(
        &mut self,
        action: Action,
        user: usize,
        target: Option<Target>,
        details: String,
        fields: &[(&str, String)],
    ) -> NewEvent {
        let outcome = if action == Action::LoginFailed { Outcome::Failure } else { Outcome::Success };
        NewEvent {
            action: action.into(),
            actor: self.actor(user),
            target,
            details,
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            outcome,
            source: self.source(user),
            recorded_by: RECORDED_BY.into(),
        }
    }

    pub fn next_event(&mut self) -> NewEvent {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        let user = self.rng.gen_range(0..self.users.len());
        let roll = self.rng.gen_range(0..1000);
        match roll {
            0..=549 => {
                let totp = self.rng.gen_bool(0.6);
                let method = if totp { "password + TOTP" } else { "password" };
                self.event(
                    Action::LoginSuccess,
                    user,
                    None,
                    format!("Method: {method}"),
                    &[("method", method.replace(" + ", "+"))],
                )
            }
            550..=749 => {
                let (why, reason) = if self.rng.gen_bool(0.7) {
                    ("Signed out", "user")
                } else {
                    ("Session ended: idle timeout", "idle_timeout")
                };
                self.event(Action::Logout, user, None, why.into(), &[("reason", reason.into())])
            }
            750..=869 => {
                // A mistyped password now and then, or a burst: brute force on one account.
                if self.rng.gen_bool(0.08) {
                    let burst = self.rng.gen_range(5..25);
                    let ip: std::net::IpAddr = [203, 0, 113, self.rng.gen_range(1..255)].into();
                    let victim = self.users[user].1.clone();
                    for _ in 0..burst {
                        self.pending.push_back(NewEvent {
                            action: Action::LoginFailed.into(),
                            actor: Actor { kind: ActorKind::Anonymous, id: victim.clone(), email: None },
                            target: None,
                            details: "Invalid password".into(),
                            fields: [("reason".to_string(), "invalid_password".to_string())].into(),
                            outcome: Outcome::Failure,
                            source: Source { via: None, ip: Some(ip), user_agent: Some("python-requests/2.31".into()) },
                            recorded_by: RECORDED_BY.into(),
                        });
                    }
                    return self.next_event();
                }
                let (details, reason) = match self.rng.gen_range(0..10) {
                    0..=6 => ("Invalid password", "invalid_password"),
                    7 | 8 => ("Failed verification (TOTP)", "totp_failed"),
                    _ => ("Unknown user", "unknown_user"),
                };
                let mut e = self.event(Action::LoginFailed, user, None, details.into(), &[("reason", reason.into())]);
                if reason == "unknown_user" {
                    e.actor = Actor {
                        kind: ActorKind::Anonymous,
                        id: format!("{}x@acme.example", FIRST[user % FIRST.len()]),
                        email: None,
                    };
                }
                e
            }
            870..=929 => {
                self.protected += 1;
                let n = self.protected;
                let t = target("protected_user", format!("pu_{n}"), format!("vip{n}@acme.example"));
                self.event(
                    Action::ProtectedUserAdded,
                    user,
                    Some(t),
                    format!("Protected user vip{n}@acme.example added"),
                    &[],
                )
            }
            930..=949 => {
                let n = self.rng.gen_range(1..=self.protected.max(1));
                let t = target("protected_user", format!("pu_{n}"), format!("vip{n}@acme.example"));
                self.event(
                    Action::ProtectedUserRemoved,
                    user,
                    Some(t),
                    format!("Protected user vip{n}@acme.example removed"),
                    &[],
                )
            }
            950..=969 => {
                let other = self.rng.gen_range(0..self.users.len());
                let old = self.users[other].2;
                let new = (old + self.rng.gen_range(1..3)) % 3;
                self.users[other].2 = new;
                let t = target("management_user", self.users[other].0.clone(), self.users[other].1.clone());
                let details = format!("Role changed from {} to {}", ROLES[old], ROLES[new]);
                self.event(
                    Action::UserRoleUpdated,
                    user,
                    Some(t),
                    details,
                    &[("old_role", ROLES[old].to_lowercase()), ("new_role", ROLES[new].to_lowercase())],
                )
            }
            970..=984 => {
                let n = self.rng.gen_range(100..10_000);
                let t = target("invitation", format!("inv_{n}"), format!("new{n}@acme.example"));
                self.event(
                    Action::UserInvited,
                    user,
                    Some(t),
                    format!("Invited new{n}@acme.example as Auditor"),
                    &[("role", "auditor".into())],
                )
            }
            985..=992 => {
                let n = self.rng.gen_range(100..10_000);
                let t = target("management_user", format!("usr_n{n}"), format!("new{n}@acme.example"));
                self.event(
                    Action::ManagementUserAdded,
                    user,
                    Some(t),
                    "Invitation accepted".into(),
                    &[("role", "auditor".into())],
                )
            }
            993..=996 => {
                let n = self.rng.gen_range(100..10_000);
                let t = target("management_user", format!("usr_n{n}"), format!("new{n}@acme.example"));
                self.event(
                    Action::ManagementUserDeleted,
                    user,
                    Some(t),
                    format!("Management user new{n}@acme.example deleted"),
                    &[],
                )
            }
            _ => {
                let t = target("audit_log", "default", "default");
                self.event(
                    Action::AuditLogExported,
                    user,
                    Some(t),
                    "Exported 250 events as CSV".into(),
                    &[("format", "csv".into())],
                )
            }
        }
    }
}

/// Appends `events` scenario events through the real append path, their times walking evenly
/// from `days` ago to now on `clock` (the log service's clock). `progress` is told how many
/// events each append added.
pub async fn fill(
    log: &LogService,
    org: &logbook_store::Org,
    clock: &ManualClock,
    events: u64,
    days: u64,
    seed: u64,
    progress: &dyn Fn(u64),
) -> anyhow::Result<u64> {
    let now = SystemClock.now().as_micros();
    let span = (days as i64) * 86_400_000_000;
    // Small batches spread the times; big demos need big batches to finish in minutes.
    let batch = (events / 20_000).clamp(1, 1000);
    let mut scenario = Scenario::new(seed);
    let mut done = 0u64;
    while done < events {
        let k = batch.min(events - done);
        clock.set(Timestamp::from_micros(now - span + (span as f64 * done as f64 / events as f64) as i64));
        log.append(org, (0..k).map(|_| scenario.next_event()).collect(), None).await?;
        done += k;
        progress(k);
    }
    Ok(done)
}

/// The first event of the log that is not part of its set-up (the first admin's creation, API
/// token events), as (seq, action code), or `None` if the log holds only its set-up. Reads from
/// the start and stops at the first such event, so a log in use costs one page.
pub async fn beyond_set_up(store: &dyn Store, org: OrgId) -> anyhow::Result<Option<(u64, String)>> {
    const PAGE: u64 = 256;
    let size = store.log_head(org).await?.size;
    let mut admins = 0;
    let mut start = 0;
    while start < size {
        let end = size.min(start + PAGE);
        for row in store.events(org, start..end).await? {
            let set_up = match Action::from_code(&row.action) {
                Ok(Action::ManagementUserAdded) => {
                    admins += 1;
                    admins == 1
                }
                Ok(Action::ApiTokenCreated | Action::ApiTokenRevoked) => true,
                _ => false,
            };
            if !set_up {
                return Ok(Some((row.seq, row.action)));
            }
        }
        start = end;
    }
    Ok(None)
}

pub(crate) async fn run(config: &Config, a: DemoArgs) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now().as_micros();
    let span = (a.days as i64) * 86_400_000_000;
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(now - span)));
    let log = one_shot(config, clock.clone()).await?;
    let org = log.org(&OrgSlug::parse(&a.org)?).await?;
    let first = log.store().log_head(org.id).await?.size;
    let in_use = beyond_set_up(&**log.store(), org.id).await?;
    if let (Some((seq, action)), false) = (&in_use, a.force) {
        log.shutdown().await;
        bail!(
            "the log of {} holds {first} events, more than its set-up (the first admin, API tokens): entry {seq} is {action}. \
             Demo events are fabricated and must not be mixed into a log in use; use an empty data directory \
             (--data-dir), or pass --force to add them anyway",
            org.slug,
        );
    }
    fill_and_mark(log, org, clock, a, first, in_use.is_some()).await
}

async fn fill_and_mark(
    log: Arc<LogService>,
    org: logbook_store::Org,
    clock: Arc<ManualClock>,
    a: DemoArgs,
    first: u64,
    forced: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let bar = crate::progress::bar(a.events, "demo events");
    let added = std::sync::atomic::AtomicU64::new(0);
    let done = fill(&log, &org, &clock, a.events, a.days, a.seed, &|n| {
        added.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        bar.inc(n)
    })
    .await;
    bar.finish_and_clear();
    clock.set(Timestamp::from_micros(SystemClock.now().as_micros()));
    // Recorded even when the run stopped early: the log says which events are fabricated.
    let added = added.load(std::sync::atomic::Ordering::Relaxed);
    let marked = match added {
        0 => Ok(()),
        _ => log.append(&org, vec![marker(&org, first, added, &a, forced)], None).await.map(drop),
    };
    log.shutdown().await;
    let done = done?;
    marked?;
    eprintln!("added {done} demo events to {} in {:.1} s", org.slug, started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// The one event a run records of itself.
fn marker(org: &logbook_store::Org, first: u64, added: u64, a: &DemoArgs, forced: bool) -> NewEvent {
    let last = first + added - 1;
    let slug = org.slug.to_string();
    let details = format!("Added {added} fabricated demo events (entries {first} to {last}, recorded by \"demo\")");
    let mut b = EventBuilder::new(Action::DemoEventsAdded, cli_actor(), "cli")
        .target("audit_log", &slug, &slug)
        .details(details)
        .field("events", added.to_string())
        .field("first_seq", first.to_string())
        .field("last_seq", last.to_string())
        .field("days", a.days.to_string())
        .field("seed", a.seed.to_string());
    if forced {
        b = b.field("forced", "true");
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_is_valid_varied_and_deterministic() {
        let mut a = Scenario::new(7);
        let events: Vec<_> = (0..5000).map(|_| a.next_event()).collect();
        for e in &events {
            e.validate().unwrap();
        }
        let kinds: std::collections::HashSet<_> = events.iter().map(|e| e.action.clone()).collect();
        assert!(kinds.len() >= 9, "{kinds:?}");
        // Bursts: runs of at least five failed sign-ins on one account.
        let longest = events
            .windows(5)
            .filter(|w| w.iter().all(|e| e.action == Action::LoginFailed && e.actor.id == w[0].actor.id))
            .count();
        assert!(longest > 0, "brute-force bursts appear");
        let mut b = Scenario::new(7);
        assert!(events.iter().take(100).all(|e| *e == b.next_event()));
    }
}
