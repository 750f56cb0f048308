//! The account security rules that only show across requests and processes: the lockout and the
//! address throttle against concurrent guesses, the TOTP step of a locked account, the pending
//! sign-in token's limits, and password checks behind a session. Every case runs on SQLite and,
//! when a server answers, on PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use logbook_accounts::totp::TotpSealer;
use logbook_accounts::{totp, AccountError, Accounts, AccountsConfig, Caller, SignIn, SignInThrottle};
use logbook_core::{
    Action, Clock, ManualClock, NewEvent, OrgSlug, Outcome, Role, SeededRandom, Source, Timestamp, UserId,
};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_log::{LogConfig, LogService};
use logbook_store::accounts::{SealedTotp, TotpSecret};
use logbook_store::{AccountMutation, Mutation, Store};

const PASSWORD: &str = "correct horse battery staple 42";
/// The installation secret the fixture's accounts are made with.
const INSTALLATION_SECRET: &str = "installation secret";
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// The default lockout threshold (settings).
const THRESHOLD: usize = 10;

struct Fx {
    accounts: Arc<Accounts>,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = logbook_store_sqlite::SqliteStore::open(dir.path()).await.unwrap();
    Some((Arc::new(store), Some(dir)))
}

async fn postgres() -> Backend {
    let url = logbook_test_support::fresh_database().await?;
    Some((Arc::new(logbook_store_postgres::PgStore::connect(&url).await.unwrap()), None))
}

type Backend = Option<(Arc<dyn Store>, Option<tempfile::TempDir>)>;

async fn fixture(backend: Backend, throttle: SignInThrottle) -> Option<Fx> {
    let (store, dir) = backend?;
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000)));
    let signer = Arc::new(CheckpointSigner::generate(&SeededRandom::new(7), "logbook.test").unwrap());
    let config = LogConfig {
        origin_prefix: "logbook.test".into(),
        checkpoint_interval: Duration::from_secs(3600),
        max_batch_events: 10_000,
        witness_dir: None,
        ..LogConfig::default()
    };
    let log = LogService::new(store.clone(), clock.clone(), Arc::new(SeededRandom::new(1)), signer, config);
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    let config = AccountsConfig { sign_in_throttle: throttle, hash_queue: 128, ..AccountsConfig::default() };
    let accounts = Arc::new(Accounts::new(log, org, config, INSTALLATION_SECRET).unwrap());
    Some(Fx { accounts, clock, store, _dir: dir })
}

/// The sealer of the fixture's installation, to look inside what the store holds.
fn sealer() -> TotpSealer {
    TotpSealer::derive(INSTALLATION_SECRET.as_bytes())
}

fn from(ip: &str) -> Source {
    Source { via: None, ip: Some(ip.parse().unwrap()), user_agent: Some("test".into()) }
}

impl Fx {
    async fn add_user(&self, email: &str) -> UserId {
        self.accounts.create_user_as_operator(email, Role::Admin, PASSWORD).await.unwrap().id
    }

    /// Enrols TOTP as the store sees it (independent of the enrolment API under test).
    async fn enrol(&self, user: UserId, email: &str) {
        let e = logbook_core::EventBuilder::new(
            Action::TotpEnrolled,
            logbook_core::Actor {
                kind: logbook_core::ActorKind::User,
                id: user.to_string(),
                email: Some(email.into()),
            },
            "logbook",
        )
        .build();
        let secret = Some(self.accounts.seal_totp(user, &TotpSecret(SECRET.into())));
        let m = AccountMutation::SetTotp { user, secret, end_sessions: None };
        self.accounts.log().append(self.accounts.org(), vec![e], Some(Mutation::Account(m))).await.unwrap();
    }

    fn code(&self) -> String {
        totp::code_at(&TotpSecret(SECRET.into()), self.clock.now()).unwrap()
    }

    fn wrong_code(&self) -> String {
        self.wrong_code_for(&TotpSecret(SECRET.into()))
    }

    fn wrong_code_for(&self, secret: &TotpSecret) -> String {
        let now = self.clock.now().as_micros();
        let near: Vec<String> = [-30_000_000, 0, 30_000_000]
            .iter()
            .map(|d| totp::code_at(secret, Timestamp::from_micros(now + d)).unwrap())
            .collect();
        (0..).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).unwrap()
    }

    /// Moves the clock to the next TOTP step, so a new code is not a replay.
    fn next_step(&self) {
        self.clock.advance_micros(totp::STEP_SECONDS as i64 * 1_000_000);
    }

    async fn pending(&self, email: &str, source: &Source) -> String {
        match self.accounts.sign_in(email, PASSWORD, None, source).await.unwrap() {
            SignIn::NeedsTotp { pending } => pending,
            SignIn::Done(_) => panic!("TOTP is enrolled"),
        }
    }

    async fn caller(&self, email: &str) -> Caller {
        self.caller_from(email, &Source::default()).await
    }

    async fn caller_from(&self, email: &str, source: &Source) -> Caller {
        let SignIn::Done(s) = self.accounts.sign_in(email, PASSWORD, None, source).await.unwrap() else {
            panic!("no TOTP expected")
        };
        self.accounts.authenticate(s.token.expose(), source).await.unwrap().unwrap()
    }

    async fn lock(&self, email: &str) {
        for _ in 0..THRESHOLD {
            let r = self.accounts.sign_in(email, "wrong password!", None, &Source::default()).await;
            assert!(matches!(r, Err(AccountError::SignInFailed)), "{r:?}");
        }
        assert!(self.is_locked(email).await);
    }

    async fn is_locked(&self, email: &str) -> bool {
        let u = self.store.user_by_email(self.accounts.org().id, email).await.unwrap().unwrap();
        u.locked_until.is_some_and(|t| t > self.clock.now())
    }

    async fn events(&self) -> Vec<NewEvent> {
        let org = self.accounts.org().id;
        let size = self.store.log_head(org).await.unwrap().size;
        let rows = self.store.events(org, 0..size).await.unwrap();
        rows.iter().map(|r| logbook_core::leaf::decode(&r.leaf).unwrap().body).collect()
    }

    async fn count_outcome(&self, action: Action, outcome: Outcome) -> usize {
        self.events().await.iter().filter(|e| e.action == action && e.outcome == outcome).count()
    }

    async fn count(&self, action: Action, reason: Option<&str>) -> usize {
        self.events()
            .await
            .iter()
            .filter(|e| {
                e.action == action && reason.is_none_or(|r| e.fields.get("reason").map(String::as_str) == Some(r))
            })
            .count()
    }
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::sqlite().await).await
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::postgres().await).await
                }
            )*
        }
    };
}

on_both_stores!(
    the_totp_step_refuses_a_locked_account_and_a_right_code_does_not_unlock,
    a_pending_sign_in_allows_five_codes_and_works_once,
    concurrent_wrong_passwords_check_at_most_the_threshold,
    concurrent_failures_from_one_address_check_at_most_its_limit,
    wrong_passwords_behind_a_session_count_and_are_recorded,
    totp_enrolment_needs_the_issued_secret_and_the_password,
    totp_secrets_are_encrypted_at_rest_and_bound_to_their_user,
    plain_totp_secrets_of_an_earlier_version_are_read_and_then_encrypted,
);

const NO_THROTTLE: SignInThrottle = SignInThrottle { max_failures: 0, window: Duration::from_secs(900) };

fn failed(r: &Result<impl std::fmt::Debug, AccountError>) -> bool {
    matches!(r, Err(AccountError::SignInFailed))
}

/// Item 1: knowing the password does not let anyone keep guessing codes once the account shows
/// locked, and a right code does not lift the lock.
async fn the_totp_step_refuses_a_locked_account_and_a_right_code_does_not_unlock(backend: Backend) {
    let Some(fx) = fixture(backend, NO_THROTTLE).await else { return };
    let bob = fx.add_user("bob@example.com").await;
    fx.enrol(bob, "bob@example.com").await;
    let pending = fx.pending("bob@example.com", &Source::default()).await;
    fx.lock("bob@example.com").await;
    let code = fx.code();
    let r = fx.accounts.sign_in_totp(&pending, &code, &Source::default()).await;
    assert!(failed(&r), "a locked account is refused at the TOTP step: {r:?}");
    assert!(fx.is_locked("bob@example.com").await, "the lock stays");
    // Nor does the one-request form (password and code together) get through.
    let r = fx.accounts.sign_in("bob@example.com", PASSWORD, Some(&code), &Source::default()).await;
    assert!(failed(&r), "{r:?}");
    assert!(fx.is_locked("bob@example.com").await);
    assert!(fx.store.sessions_of(bob).await.unwrap().is_empty(), "no session was created");
    assert_eq!(fx.count(Action::LoginSuccess, None).await, 0);
    assert!(fx.count(Action::LoginFailed, Some("locked")).await >= 1, "the refusal is recorded as locked");
}

/// Item 1: a pending sign-in takes at most five codes, and works once.
async fn a_pending_sign_in_allows_five_codes_and_works_once(backend: Backend) {
    let Some(fx) = fixture(backend, NO_THROTTLE).await else { return };
    let bob = fx.add_user("bob@example.com").await;
    fx.enrol(bob, "bob@example.com").await;
    let src = Source::default();

    let pending = fx.pending("bob@example.com", &src).await;
    for _ in 0..5 {
        assert!(failed(&fx.accounts.sign_in_totp(&pending, &fx.wrong_code(), &src).await));
    }
    let r = fx.accounts.sign_in_totp(&pending, &fx.code(), &src).await;
    assert!(failed(&r), "the sixth code is refused, even a right one: {r:?}");
    assert!(!fx.is_locked("bob@example.com").await, "five wrong codes are below the lockout threshold");

    let pending = fx.pending("bob@example.com", &src).await;
    fx.accounts.sign_in_totp(&pending, &fx.code(), &src).await.unwrap();
    fx.next_step();
    let r = fx.accounts.sign_in_totp(&pending, &fx.code(), &src).await;
    assert!(failed(&r), "a used pending token does not start a second session: {r:?}");
    assert_eq!(fx.store.sessions_of(bob).await.unwrap().len(), 1);

    // It expires after five minutes, and dies with a password change.
    let pending = fx.pending("bob@example.com", &src).await;
    fx.clock.advance_micros(301_000_000);
    assert!(failed(&fx.accounts.sign_in_totp(&pending, &fx.code(), &src).await), "expired");
    let pending = fx.pending("bob@example.com", &src).await;
    let e = logbook_core::EventBuilder::new(Action::PasswordChanged, logbook_core::Actor::system(), "logbook").build();
    let new_hash = fx.store.user(fx.accounts.org().id, bob).await.unwrap().unwrap().password_hash;
    let m = AccountMutation::SetPassword { user: bob, password_hash: new_hash, end_sessions: None };
    fx.accounts.log().append(fx.accounts.org(), vec![e], Some(Mutation::Account(m))).await.unwrap();
    fx.next_step();
    assert!(failed(&fx.accounts.sign_in_totp(&pending, &fx.code(), &src).await), "the password changed");
}

/// Item 7: fifty wrong passwords at once: at most the threshold are checked, the rest find the
/// account locked; one lock is recorded.
async fn concurrent_wrong_passwords_check_at_most_the_threshold(backend: Backend) {
    let Some(fx) = fixture(backend, NO_THROTTLE).await else { return };
    fx.add_user("bob@example.com").await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50 {
        let accounts = fx.accounts.clone();
        let src = from(&format!("198.51.100.{n}"));
        tasks.spawn(async move { accounts.sign_in("bob@example.com", "wrong password!", None, &src).await });
    }
    for r in tasks.join_all().await {
        assert!(failed(&r), "{r:?}");
    }
    let checked = fx.count(Action::LoginFailed, Some("invalid_password")).await;
    assert!(checked <= THRESHOLD, "{checked} passwords were checked, the threshold is {THRESHOLD}");
    assert_eq!(checked + fx.count(Action::LoginFailed, Some("locked")).await, 50, "every attempt is recorded");
    assert_eq!(fx.count(Action::AccountLocked, None).await, 1, "locked once");
    assert!(fx.is_locked("bob@example.com").await);
}

/// Item 7: fifty failures at once from one address: at most its limit are checked.
async fn concurrent_failures_from_one_address_check_at_most_its_limit(backend: Backend) {
    let limit = 10;
    let throttle = SignInThrottle { max_failures: limit, window: Duration::from_secs(900) };
    let Some(fx) = fixture(backend, throttle).await else { return };
    fx.add_user("bob@example.com").await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50 {
        let accounts = fx.accounts.clone();
        tasks.spawn(async move {
            let email = if n % 2 == 0 { "bob@example.com".to_owned() } else { format!("nobody{n}@example.com") };
            accounts.sign_in(&email, "wrong password!", None, &from("203.0.113.9")).await
        });
    }
    let results = tasks.join_all().await;
    let throttled = results.iter().filter(|r| matches!(r, Err(AccountError::Throttled { .. }))).count();
    let checked = fx.count(Action::LoginFailed, None).await;
    assert!(checked <= limit as usize, "{checked} attempts were checked, the limit is {limit}");
    assert_eq!(checked + throttled, 50, "the others were refused as throttled");
    assert_eq!(
        fx.store.sign_in_failures(fx.accounts.org().id, "203.0.113.9", Timestamp::from_micros(0)).await.unwrap(),
        limit
    );

    // A right password gives its count back: the address is not charged for it.
    let throttle = SignInThrottle { max_failures: 3, window: Duration::from_secs(900) };
    let Some(fx) = fixture(sqlite().await, throttle).await else { return };
    fx.add_user("carol@example.com").await;
    for _ in 0..5 {
        fx.accounts.sign_in("carol@example.com", PASSWORD, None, &from("192.0.2.7")).await.unwrap();
    }
    assert_eq!(
        fx.store.sign_in_failures(fx.accounts.org().id, "192.0.2.7", Timestamp::from_micros(0)).await.unwrap(),
        0
    );
}

/// Item 13: a wrong current password behind a session is a failed check like any other: it is
/// recorded, counts toward the lockout and the address throttle, and locks the account.
async fn wrong_passwords_behind_a_session_count_and_are_recorded(backend: Backend) {
    let throttle = SignInThrottle { max_failures: 100, window: Duration::from_secs(900) };
    let Some(fx) = fixture(backend, throttle).await else { return };
    let bob = fx.add_user("bob@example.com").await;
    let caller = fx.caller_from("bob@example.com", &from("203.0.113.50")).await;
    let org = fx.accounts.org().id;
    let before = fx.store.user(org, bob).await.unwrap().unwrap().password_hash;
    let new = "another horse battery staple 43";
    let r = fx.accounts.change_password(&caller, "wrong password!", new).await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "{r:?}");
    let events = fx.events().await;
    let last = events.last().unwrap();
    assert_eq!((last.action.clone(), last.outcome), (Action::PasswordChanged.into(), Outcome::Failure), "{last:?}");
    assert_eq!(last.fields.get("reason").map(String::as_str), Some("invalid_password"));
    assert_eq!(last.fields.get("consecutive_failures").map(String::as_str), Some("1"));
    assert_eq!(fx.store.sign_in_failures(org, "203.0.113.50", Timestamp::from_micros(0)).await.unwrap(), 1);
    assert_eq!(fx.store.user(org, bob).await.unwrap().unwrap().failed_logins, 1);

    fx.enrol(bob, "bob@example.com").await;
    for n in 1..THRESHOLD {
        let r = fx.accounts.remove_totp(&caller, "wrong password!").await;
        assert!(matches!(r, Err(AccountError::Invalid(_))), "{n}: {r:?}");
    }
    let removals = fx.events().await.into_iter().filter(|e| e.action == Action::TotpRemoved).collect::<Vec<_>>();
    assert_eq!(removals.len(), THRESHOLD - 1);
    assert!(removals.iter().all(|e| e.outcome == Outcome::Failure));
    assert!(fx.is_locked("bob@example.com").await, "locked after the threshold");
    assert_eq!(fx.count(Action::AccountLocked, None).await, 1);
    assert_eq!(
        fx.store.sign_in_failures(org, "203.0.113.50", Timestamp::from_micros(0)).await.unwrap(),
        THRESHOLD as u32
    );

    // Locked: even the right password is not checked now.
    let r = fx.accounts.change_password(&caller, PASSWORD, new).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(fx.store.user(org, bob).await.unwrap().unwrap().password_hash, before, "unchanged");
    assert_eq!(fx.count(Action::PasswordChanged, None).await, 2, "refused and recorded, not changed");
    assert_eq!(fx.count_outcome(Action::PasswordChanged, Outcome::Success).await, 0);
    let last = fx.events().await.pop().unwrap();
    assert_eq!(last.fields.get("reason").map(String::as_str), Some("locked"), "{last:?}");
}

/// Item 14: a client cannot enrol a secret of its own choosing.
async fn totp_enrolment_needs_the_issued_secret_and_the_password(backend: Backend) {
    let Some(fx) = fixture(backend, NO_THROTTLE).await else { return };
    let bob = fx.add_user("bob@example.com").await;
    let caller = fx.caller("bob@example.com").await;
    let chosen = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU";
    let code = totp::code_at(&TotpSecret(chosen.into()), fx.clock.now()).unwrap();
    let r = fx.accounts.enrol_totp(&caller, chosen, &code, PASSWORD).await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "a secret the client chose is refused: {r:?}");
    let org = fx.accounts.org().id;
    assert_eq!(fx.store.user(org, bob).await.unwrap().unwrap().totp, None);

    // The enrolment names the issued secret; one swapped for the client's is refused.
    let enrolment = fx.accounts.begin_totp(&caller).unwrap();
    assert_eq!(format!("{enrolment:?}"), "TotpEnrolment(<redacted>)", "the secret is not printed");
    let forged = enrolment.token.replacen(&enrolment.secret, chosen, 1);
    let r = fx.accounts.enrol_totp(&caller, &forged, &code, PASSWORD).await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "{r:?}");
    let issued = TotpSecret(enrolment.secret.clone());
    let issued_code = totp::code_at(&issued, fx.clock.now()).unwrap();
    // Without the right password, nothing is enrolled, and the wrong one counts and is recorded.
    let r = fx.accounts.enrol_totp(&caller, &enrolment.token, &issued_code, "wrong password!").await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "{r:?}");
    assert_eq!(fx.store.user(org, bob).await.unwrap().unwrap().totp, None);
    assert_eq!(fx.store.user(org, bob).await.unwrap().unwrap().failed_logins, 1);
    assert_eq!(fx.count_outcome(Action::TotpEnrolled, Outcome::Failure).await, 1);
    // Another session cannot use this session's enrolment.
    let other = fx.caller("bob@example.com").await;
    let r = fx.accounts.enrol_totp(&other, &enrolment.token, &issued_code, PASSWORD).await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "{r:?}");
    // A wrong code does not enrol; the issued secret, its code and the password do.
    let r = fx.accounts.enrol_totp(&caller, &enrolment.token, &fx.wrong_code_for(&issued), PASSWORD).await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "{r:?}");
    fx.accounts.enrol_totp(&caller, &enrolment.token, &issued_code, PASSWORD).await.unwrap();
    let u = fx.store.user(org, bob).await.unwrap().unwrap();
    let enrolled = u.totp.map(|s| sealer().open(org, bob, &s).unwrap());
    assert_eq!((enrolled, u.failed_logins), (Some(issued), 0), "a right password gives its failure back");
    assert_eq!(fx.count_outcome(Action::TotpEnrolled, Outcome::Success).await, 1);
    // An enrolment expires after 30 minutes.
    fx.add_user("carol@example.com").await;
    let carol = fx.caller("carol@example.com").await;
    let enrolment = fx.accounts.begin_totp(&carol).unwrap();
    fx.clock.advance_micros(30 * 60 * 1_000_000);
    let secret = TotpSecret(enrolment.secret);
    let code = totp::code_at(&secret, fx.clock.now()).unwrap();
    let r = fx.accounts.enrol_totp(&carol, &enrolment.token, &code, PASSWORD).await;
    assert!(matches!(r, Err(AccountError::Invalid(_))), "{r:?}");
}

/// Item 9: the stored TOTP secret is encrypted (the raw column holds neither the base32 secret
/// nor its bytes), opens only for its own user, and signing in with TOTP still works.
async fn totp_secrets_are_encrypted_at_rest_and_bound_to_their_user(backend: Backend) {
    let Some(fx) = fixture(backend, NO_THROTTLE).await else { return };
    let org = fx.accounts.org().id;
    let bob = fx.add_user("bob@example.com").await;
    let carol = fx.add_user("carol@example.com").await;
    let caller = fx.caller("bob@example.com").await;
    let enrolment = fx.accounts.begin_totp(&caller).unwrap();
    let secret = TotpSecret(enrolment.secret.clone());
    let code = totp::code_at(&secret, fx.clock.now()).unwrap();
    fx.accounts.enrol_totp(&caller, &enrolment.token, &code, PASSWORD).await.unwrap();

    // What the column holds (the rows map it unchanged).
    let stored = fx.store.user(org, bob).await.unwrap().unwrap().totp.unwrap();
    let raw = totp_rs::Secret::Encoded(secret.0.clone()).to_bytes().unwrap();
    assert!(!stored.0.contains(&secret.0) && !stored.0.contains(&secret.0.to_lowercase()), "{}", stored.0);
    assert!(!stored.0.as_bytes().windows(raw.len()).any(|w| w == raw), "not the raw secret either");
    assert!(!stored.0.contains(&hex::encode(&raw)), "nor its hex");
    assert!(!TotpSealer::is_plain(&stored));
    assert_eq!(sealer().open(org, bob, &stored).unwrap(), secret, "it is the secret, sealed");

    // Signing in with TOTP works, in one request and in two.
    fx.next_step();
    let src = Source::default();
    let now_code = || totp::code_at(&secret, fx.clock.now()).unwrap();
    let r = fx.accounts.sign_in("bob@example.com", PASSWORD, Some(&now_code()), &src).await.unwrap();
    assert!(matches!(r, SignIn::Done(_)));
    fx.next_step();
    let SignIn::NeedsTotp { pending } = fx.accounts.sign_in("bob@example.com", PASSWORD, None, &src).await.unwrap()
    else {
        panic!("TOTP is enrolled")
    };
    fx.accounts.sign_in_totp(&pending, &now_code(), &src).await.unwrap();

    // Bob's sealed secret copied into Carol's row does not open there: no code is accepted.
    let e = logbook_core::EventBuilder::new(Action::TotpEnrolled, logbook_core::Actor::system(), "logbook").build();
    let m = AccountMutation::SetTotp { user: carol, secret: Some(stored.clone()), end_sessions: None };
    fx.accounts.log().append(fx.accounts.org(), vec![e], Some(Mutation::Account(m))).await.unwrap();
    fx.next_step();
    let r = fx.accounts.sign_in("carol@example.com", PASSWORD, Some(&now_code()), &src).await;
    assert!(matches!(r, Err(AccountError::Internal(_))), "{r:?}");
    assert!(fx.store.sessions_of(carol).await.unwrap().is_empty());
    assert!(sealer().open(org, carol, &stored).is_err());
}

/// Item 9: a store written before secrets were sealed keeps working, and its plain secrets are
/// sealed by `seal_plain_totp_secrets` (which `Application::build` runs at start), once.
async fn plain_totp_secrets_of_an_earlier_version_are_read_and_then_encrypted(backend: Backend) {
    let Some(fx) = fixture(backend, NO_THROTTLE).await else { return };
    let org = fx.accounts.org().id;
    let bob = fx.add_user("bob@example.com").await;
    let carol = fx.add_user("carol@example.com").await;
    let e = logbook_core::EventBuilder::new(Action::TotpEnrolled, logbook_core::Actor::system(), "logbook").build();
    let m = AccountMutation::SetTotp { user: bob, secret: Some(SealedTotp(SECRET.into())), end_sessions: None };
    fx.accounts.log().append(fx.accounts.org(), vec![e], Some(Mutation::Account(m))).await.unwrap();
    fx.enrol(carol, "carol@example.com").await;
    let carol_sealed = fx.store.user(org, carol).await.unwrap().unwrap().totp;
    let src = Source::default();
    let r = fx.accounts.sign_in("bob@example.com", PASSWORD, Some(&fx.code()), &src).await.unwrap();
    assert!(matches!(r, SignIn::Done(_)), "a plain secret is still read");

    assert_eq!(fx.accounts.seal_plain_totp_secrets().await.unwrap(), 1, "bob's only");
    let stored = fx.store.user(org, bob).await.unwrap().unwrap().totp.unwrap();
    assert!(!TotpSealer::is_plain(&stored) && !stored.0.contains(SECRET), "{}", stored.0);
    assert_eq!(sealer().open(org, bob, &stored).unwrap(), TotpSecret(SECRET.into()));
    assert_eq!(fx.store.user(org, carol).await.unwrap().unwrap().totp, carol_sealed, "a sealed one is left as it is");
    assert_eq!(fx.accounts.seal_plain_totp_secrets().await.unwrap(), 0, "once");
    fx.next_step();
    let r = fx.accounts.sign_in("bob@example.com", PASSWORD, Some(&fx.code()), &src).await.unwrap();
    assert!(matches!(r, SignIn::Done(_)), "and still works sealed");
}
