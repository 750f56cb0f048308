//! The storage contract for the accounts tables (part of [`crate::contract_tests!`]).

#![allow(clippy::unwrap_used)]

use logbook_core::{InvitationId, OrgId, ProtectedUserId, Role, Timestamp, UserId};

use crate::accounts::{EndSessions, LoginAttempt, PasswordHash, SealedTotp};
use crate::contract::{org, LogWriter, SharedStore};
use crate::{AccountMutation, CommitError, Mutation, MutationEntry, MutationError, MutationOutput};

/// Every case of the accounts contract, for [`crate::contract_tests!`].
#[macro_export]
#[doc(hidden)]
macro_rules! contract_accounts_tests {
    ($make:path) => {
        $crate::contract_tests!(@accounts $make;
            users_keep_at_least_one_admin,
            sessions_start_end_and_expire,
            invitations_are_accepted_once,
            protected_users_page_and_search,
            settings_are_replaced_whole,
            sign_in_failures_are_counted_per_address_and_window,
            account_rules_hold_at_their_edges,
            sign_in_attempts_are_counted_before_the_check_up_to_the_limit,
            login_attempts_are_counted_before_the_check_and_lock_once,
            pending_sign_ins_take_five_codes_and_complete_once,
            changes_end_exactly_the_sessions_they_name,
            a_totp_secret_is_resealed_only_from_what_is_stored,
        );
    };
}

/// No limit on the failures of an address, for the cases that count without one.
const NO_LIMIT: u32 = u32::MAX;

/// Commits one account mutation with one event, as the accounts service would.
struct Accounts {
    store: SharedStore,
    org: OrgId,
    writer: LogWriter,
    next_id: i64,
}

impl Accounts {
    async fn new(store: &SharedStore, slug: &str) -> Self {
        let (org, writer) = org(store, slug).await;
        // Ids are the caller's; offset per organization so two never collide.
        let next_id = 1000 * org.0;
        Self { store: store.clone(), org, writer, next_id }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.writer.time)
    }

    async fn apply(&mut self, m: AccountMutation) -> Result<MutationOutput, MutationError> {
        let before = self.writer.edge.clone();
        let mut batch = self.writer.batch(1);
        batch.mutations.push(MutationEntry { first_seq: batch.base_size, count: 1, mutation: Mutation::Account(m) });
        match self.store.commit(self.org, batch).await {
            Ok(mut out) => Ok(out.remove(0)),
            Err(CommitError::Rejected { reason, .. }) => {
                self.writer.edge = before;
                let size = self.store.log_head(self.org).await.unwrap().size;
                assert_eq!(size, self.writer.edge.size(), "a refused mutation appends no event");
                Err(reason)
            }
            Err(e) => panic!("commit failed: {e}"),
        }
    }

    async fn add_user(&mut self, email: &str, role: Role) -> UserId {
        let m = AccountMutation::CreateUser {
            id: UserId(self.id()),
            email: email.into(),
            role,
            password_hash: PasswordHash(format!("hash-of-{email}")),
            only_if_first: false,
        };
        match self.apply(m).await {
            Ok(MutationOutput::UserCreated(id)) => id,
            other => panic!("{other:?}"),
        }
    }
}

pub async fn users_keep_at_least_one_admin(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let first = AccountMutation::CreateUser {
        id: UserId(1),
        email: "ada@example.com".into(),
        role: Role::Admin,
        password_hash: PasswordHash("h".into()),
        only_if_first: true,
    };
    let Ok(MutationOutput::UserCreated(ada)) = a.apply(first.clone()).await else { panic!() };
    assert_eq!(a.apply(first).await, Err(MutationError::Conflict), "the setup link works once");
    let bob = a.add_user("bob@example.com", Role::Auditor).await;
    let dup = AccountMutation::CreateUser {
        id: UserId(a.id()),
        email: "bob@example.com".into(),
        role: Role::Admin,
        password_hash: PasswordHash("h".into()),
        only_if_first: false,
    };
    assert_eq!(a.apply(dup).await, Err(MutationError::EmailTaken));

    let demote = AccountMutation::SetUserRole { user: ada, from: Role::Admin, to: Role::Analyst };
    assert_eq!(a.apply(demote.clone()).await, Err(MutationError::LastAdmin));
    assert_eq!(a.apply(AccountMutation::DeleteUser { user: ada }).await, Err(MutationError::LastAdmin));
    let stale = AccountMutation::SetUserRole { user: bob, from: Role::Analyst, to: Role::Admin };
    assert_eq!(a.apply(stale).await, Err(MutationError::Conflict), "the role changed meanwhile");
    a.apply(AccountMutation::SetUserRole { user: bob, from: Role::Auditor, to: Role::Admin }).await.unwrap();
    a.apply(demote).await.unwrap();
    assert_eq!(store.user(a.org, ada).await.unwrap().unwrap().role, Role::Analyst);

    a.apply(AccountMutation::DeleteUser { user: ada }).await.unwrap();
    assert_eq!(a.apply(AccountMutation::DeleteUser { user: ada }).await, Err(MutationError::NotFound));
    assert_eq!(store.user(a.org, ada).await.unwrap(), None);
    assert_eq!(store.user_count(a.org).await.unwrap(), 1);
    let users = store.users_of(a.org).await.unwrap();
    assert_eq!(
        users.iter().map(|u| (u.email.as_str(), u.role)).collect::<Vec<_>>(),
        [("bob@example.com", Role::Admin)]
    );
    assert_eq!(store.user_by_email(a.org, "bob@example.com").await.unwrap().unwrap().id, bob);

    // Another organization's users are its own.
    let mut other = Accounts::new(&store, "globex").await;
    other.add_user("bob@example.com", Role::Admin).await;
    assert_eq!(store.user(other.org, bob).await.unwrap(), None);
}

pub async fn sessions_start_end_and_expire(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let ada = a.add_user("ada@example.com", Role::Admin).await;
    a.apply(AccountMutation::SetTotp {
        user: ada,
        secret: Some(SealedTotp("JBSWY3DPEHPK3PXP".into())),
        end_sessions: None,
    })
    .await
    .unwrap();
    let until = Timestamp::from_micros(a.now().as_micros() + 60_000_000);
    store.count_login_attempt(a.org, ada, a.now(), 2, until).await.unwrap().unwrap();
    let second = store.count_login_attempt(a.org, ada, a.now(), 2, until).await.unwrap().unwrap();
    assert_eq!(second, LoginAttempt { failures: 2, lock: Some(until) }, "the second reaches the threshold");
    let u = store.user(a.org, ada).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (2, Some(until)));
    assert_eq!(u.totp, Some(SealedTotp("JBSWY3DPEHPK3PXP".into())));

    let expires = Timestamp::from_micros(a.now().as_micros() + 3_600_000_000);
    let start = |token: u8, step| AccountMutation::CreateSession {
        user: ada,
        token_hash: [token; 32],
        expires,
        totp_step: step,
        pending: None,
        attempt_lock: None,
        address: None,
        user_agent: None,
    };
    assert_eq!(a.apply(start(1, Some(100))).await, Err(MutationError::Locked), "locked: no session");
    // The attempt that set the lock succeeded: its own lock is not in its way.
    let own = AccountMutation::CreateSession {
        user: ada,
        token_hash: [1; 32],
        expires,
        totp_step: Some(100),
        pending: None,
        attempt_lock: second.lock,
        address: None,
        user_agent: None,
    };
    a.apply(own).await.unwrap();
    assert_eq!(a.apply(start(2, Some(100))).await, Err(MutationError::TotpReplay), "a TOTP code works once");
    assert_eq!(a.apply(start(2, Some(99))).await, Err(MutationError::TotpReplay));
    a.apply(start(2, Some(101))).await.unwrap();
    let u = store.user(a.org, ada).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until, u.totp_last_step), (0, None, Some(101)), "success resets the counter");

    let (s, user) = store.session(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((s.user, user.email.as_str(), s.expires), (ada, "ada@example.com", expires));
    assert_eq!(store.session(&[9; 32]).await.unwrap(), None);
    let later = Timestamp::from_micros(s.last_seen.as_micros() + 5_000_000);
    store.touch_session(&[1; 32], later).await.unwrap();
    store.touch_session(&[1; 32], s.last_seen).await.unwrap();
    assert_eq!(store.session(&[1; 32]).await.unwrap().unwrap().0.last_seen, later, "activity never goes back");
    assert_eq!(store.sessions_of(ada).await.unwrap().len(), 2);

    // Session 2 is idle since its start; session 1 was touched later.
    let idle = store.expired_sessions(a.org, later, later, 10).await.unwrap();
    assert_eq!(idle.iter().map(|s| s.token_hash[0]).collect::<Vec<_>>(), [2]);
    let all = store.expired_sessions(a.org, Timestamp::from_micros(0), expires, 10).await.unwrap();
    assert_eq!(all.len(), 2, "both reach their absolute end");

    let digest = [7; 32];
    a.apply(AccountMutation::RecordView { token_hash: [1; 32], digest }).await.unwrap();
    assert_eq!(
        a.apply(AccountMutation::RecordView { token_hash: [1; 32], digest }).await,
        Err(MutationError::AlreadyRecorded)
    );
    a.apply(AccountMutation::RecordView { token_hash: [1; 32], digest: [8; 32] }).await.unwrap();

    a.apply(AccountMutation::EndSession { token_hash: [1; 32] }).await.unwrap();
    assert_eq!(
        a.apply(AccountMutation::EndSession { token_hash: [1; 32] }).await,
        Err(MutationError::NotFound),
        "ends once"
    );
    assert_eq!(store.session(&[1; 32]).await.unwrap(), None);
    assert_eq!(
        a.apply(AccountMutation::RecordView { token_hash: [1; 32], digest: [9; 32] }).await,
        Err(MutationError::NotFound)
    );

    // Deleting the user ends the rest of their sessions.
    a.add_user("bob@example.com", Role::Admin).await;
    a.apply(AccountMutation::DeleteUser { user: ada }).await.unwrap();
    assert_eq!(store.session(&[2; 32]).await.unwrap(), None);
    assert!(store.sessions_of(ada).await.unwrap().is_empty());
}

pub async fn invitations_are_accepted_once(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let expires = Timestamp::from_micros(a.now().as_micros() + 3_600_000_000);
    let invite = |email: &str, token: u8| AccountMutation::CreateInvitation {
        id: InvitationId(i64::from(token)),
        email: email.into(),
        role: Role::Analyst,
        token_hash: [token; 32],
        invited_by: "ada@example.com".into(),
        expires,
    };
    let Ok(MutationOutput::InvitationCreated(first)) = a.apply(invite("carol@example.com", 1)).await else { panic!() };
    let Ok(MutationOutput::InvitationCreated(second)) = a.apply(invite("dave@example.com", 2)).await else { panic!() };
    let inv = store.invitation_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (inv.id, inv.email.as_str(), inv.role, inv.invited_by.as_str()),
        (first, "carol@example.com", Role::Analyst, "ada@example.com")
    );
    assert!(inv.is_open(a.now()));
    assert_eq!(store.invitations(a.org).await.unwrap().iter().map(|i| i.id).collect::<Vec<_>>(), [second, first]);

    let accept = |id: InvitationId| AccountMutation::AcceptInvitation {
        id,
        user: UserId(100 + id.0),
        password_hash: PasswordHash("h".into()),
    };
    let Ok(MutationOutput::UserCreated(carol)) = a.apply(accept(first)).await else { panic!() };
    assert_eq!(store.user(a.org, carol).await.unwrap().unwrap().role, Role::Analyst);
    assert_eq!(a.apply(accept(first)).await, Err(MutationError::NotFound), "single use");
    assert!(store.invitation(a.org, first).await.unwrap().unwrap().accepted.is_some());

    a.apply(AccountMutation::RevokeInvitation { id: second }).await.unwrap();
    assert_eq!(a.apply(AccountMutation::RevokeInvitation { id: second }).await, Err(MutationError::NotFound));
    assert_eq!(a.apply(accept(second)).await, Err(MutationError::NotFound), "revoked");

    // An expired invitation cannot be accepted.
    let past = AccountMutation::CreateInvitation {
        id: InvitationId(3),
        email: "erin@example.com".into(),
        role: Role::Auditor,
        token_hash: [3; 32],
        invited_by: "ada@example.com".into(),
        expires: a.now(),
    };
    let Ok(MutationOutput::InvitationCreated(old)) = a.apply(past).await else { panic!() };
    assert_eq!(a.apply(accept(old)).await, Err(MutationError::NotFound));
    assert_eq!(store.user_count(a.org).await.unwrap(), 1);
}

pub async fn protected_users_page_and_search(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let m = AccountMutation::AddProtectedUser {
            id: ProtectedUserId(n + 1),
            email: format!("p{n:02}@example.com"),
            name: format!("Person {n}"),
        };
        let Ok(MutationOutput::ProtectedUserAdded(id)) = a.apply(m).await else { panic!() };
        ids.push(id);
    }
    let m = AccountMutation::AddProtectedUser {
        id: ProtectedUserId(50),
        email: "odd_100%@example.com".into(),
        name: "Zoë Ünicode".into(),
    };
    a.apply(m).await.unwrap();
    let dup = AccountMutation::AddProtectedUser {
        id: ProtectedUserId(51),
        email: "p03@example.com".into(),
        name: "Again".into(),
    };
    assert_eq!(a.apply(dup).await, Err(MutationError::EmailTaken));

    let page1 = store.protected_users(a.org, None, None, 5).await.unwrap();
    assert_eq!(
        page1.iter().map(|p| p.email.as_str()).collect::<Vec<_>>()[..2],
        ["odd_100%@example.com", "p00@example.com"]
    );
    let page2 = store.protected_users(a.org, None, Some(&page1[4].email), 100).await.unwrap();
    assert_eq!(page1.len() + page2.len(), 13);
    assert_eq!(page2[0].email, "p04@example.com");

    let hits = |q: &'static str| {
        let store = store.clone();
        let org = a.org;
        async move { store.protected_users(org, Some(q), None, 100).await.unwrap().len() }
    };
    assert_eq!(hits("PERSON 1").await, 3, "case-insensitive over names: 1, 10, 11");
    assert_eq!(hits("%").await, 1, "wildcards are literal");
    assert_eq!(hits("_").await, 1);
    assert_eq!(hits("p05@").await, 1);

    a.apply(AccountMutation::RemoveProtectedUser { id: ids[5] }).await.unwrap();
    assert_eq!(a.apply(AccountMutation::RemoveProtectedUser { id: ids[5] }).await, Err(MutationError::NotFound));
    assert_eq!(store.protected_user(a.org, ids[5]).await.unwrap(), None);
    assert_eq!(store.protected_user(a.org, ids[6]).await.unwrap().unwrap().name, "Person 6");
    let mut found = store
        .protected_emails(a.org, &["p06@example.com".into(), "p05@example.com".into(), "x@example.com".into()])
        .await
        .unwrap();
    found.sort();
    assert_eq!(found, ["p06@example.com"]);
}

pub async fn settings_are_replaced_whole(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    assert_eq!(store.settings_json(a.org).await.unwrap(), None);
    a.apply(AccountMutation::PutSettings { json: r#"{"time_zone":"Europe/Berlin"}"#.into() }).await.unwrap();
    a.apply(AccountMutation::PutSettings { json: r#"{"time_zone":"UTC"}"#.into() }).await.unwrap();
    assert_eq!(store.settings_json(a.org).await.unwrap().as_deref(), Some(r#"{"time_zone":"UTC"}"#));
    let other = Accounts::new(&store, "globex").await;
    assert_eq!(store.settings_json(other.org).await.unwrap(), None);
}

pub async fn sign_in_failures_are_counted_per_address_and_window(store: SharedStore) {
    let a = Accounts::new(&store, "acme").await;
    let b = Accounts::new(&store, "globex").await;
    let t = |s: i64| Timestamp::from_micros(1_700_000_000_000_000 + s * 1_000_000);
    let window = 900; // seconds
    let addr = "203.0.113.9";
    assert_eq!(store.sign_in_failures(a.org, addr, t(0)).await.unwrap(), 0, "nothing counted yet");
    for n in 1..=3 {
        assert_eq!(
            store.count_sign_in_attempt(a.org, addr, t(n), t(n - window), NO_LIMIT).await.unwrap(),
            Some(n as u32)
        );
    }
    assert_eq!(store.sign_in_failures(a.org, addr, t(10 - window)).await.unwrap(), 3);
    assert_eq!(store.sign_in_failures(a.org, "203.0.113.10", t(10 - window)).await.unwrap(), 0, "per address");
    assert_eq!(store.sign_in_failures(b.org, addr, t(10 - window)).await.unwrap(), 0, "per organization");

    // Concurrent failures (as from several processes) are all counted.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, org) = (store.clone(), a.org);
        tasks.spawn(
            async move { store.count_sign_in_attempt(org, addr, t(20), t(20 - window), NO_LIMIT).await.unwrap() },
        );
    }
    let mut counts = tasks.join_all().await;
    counts.sort_unstable();
    assert_eq!(counts, (4..=23).map(Some).collect::<Vec<_>>(), "each failure got its own count");

    // Once the window has passed, the address starts again from one.
    let later = t(1 + window + 1);
    assert_eq!(store.sign_in_failures(a.org, addr, t(window + 2 - window)).await.unwrap(), 0, "window over");
    assert_eq!(store.count_sign_in_attempt(a.org, addr, later, t(2), NO_LIMIT).await.unwrap(), Some(1));
    assert_eq!(store.sign_in_failures(a.org, addr, t(2)).await.unwrap(), 1);

    store.count_sign_in_attempt(b.org, "198.51.100.1", t(5), t(5 - window), NO_LIMIT).await.unwrap();
    assert_eq!(store.prune_sign_in_failures(t(100)).await.unwrap(), 1, "only the stale window is pruned");
    assert_eq!(store.sign_in_failures(a.org, addr, t(2)).await.unwrap(), 1, "the live window stays");
}

/// The rules of the account mutations at their edges: what an unknown or foreign record, a
/// no-op change, a new TOTP secret and a used invitation are answered.
pub async fn account_rules_hold_at_their_edges(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let ada = a.add_user("ada@example.com", Role::Admin).await;
    let nobody = UserId(999_999);
    let expires = Timestamp::from_micros(a.now().as_micros() + 3_600_000_000);
    let start = |user, token: u8, step| AccountMutation::CreateSession {
        user,
        token_hash: [token; 32],
        expires,
        totp_step: step,
        pending: None,
        attempt_lock: None,
        address: None,
        user_agent: None,
    };

    // An unknown user: every change is NotFound, and none creates a row.
    for m in [
        AccountMutation::SetUserRole { user: nobody, from: Role::Admin, to: Role::Auditor },
        AccountMutation::DeleteUser { user: nobody },
        AccountMutation::SetPassword { user: nobody, password_hash: PasswordHash("h".into()), end_sessions: None },
        AccountMutation::SetTotp { user: nobody, secret: None, end_sessions: None },
        start(nobody, 1, None),
    ] {
        assert_eq!(a.apply(m.clone()).await, Err(MutationError::NotFound), "{m:?}");
    }
    assert!(store.sessions_of(nobody).await.unwrap().is_empty());
    assert_eq!(store.count_login_attempt(a.org, nobody, a.now(), 5, expires).await.unwrap(), None);

    // Another organization's user cannot be changed through this one, not even by id.
    let mut other = Accounts::new(&store, "globex").await;
    let olga = other.add_user("olga@example.com", Role::Admin).await;
    let _spare = other.add_user("otto@example.com", Role::Admin).await;
    for m in [
        AccountMutation::SetUserRole { user: olga, from: Role::Admin, to: Role::Auditor },
        AccountMutation::DeleteUser { user: olga },
        start(olga, 2, None),
    ] {
        assert_eq!(a.apply(m.clone()).await, Err(MutationError::NotFound), "{m:?}");
    }
    assert_eq!(store.user(other.org, olga).await.unwrap().unwrap().role, Role::Admin);

    // The only admin may keep the admin role: only leaving it is refused.
    a.apply(AccountMutation::SetUserRole { user: ada, from: Role::Admin, to: Role::Admin }).await.unwrap();

    // A sign-in without a code leaves the last step used; a new secret starts with none used.
    a.apply(start(ada, 3, Some(500))).await.unwrap();
    a.apply(start(ada, 4, None)).await.unwrap();
    assert_eq!(a.apply(start(ada, 5, Some(500))).await, Err(MutationError::TotpReplay));
    a.apply(AccountMutation::SetTotp {
        user: ada,
        secret: Some(SealedTotp("KRSXG5CTMVRXEZLU".into())),
        end_sessions: None,
    })
    .await
    .unwrap();
    assert_eq!(store.user(a.org, ada).await.unwrap().unwrap().totp_last_step, None);
    a.apply(start(ada, 5, Some(500))).await.unwrap();

    // An accepted invitation cannot be revoked; an expired one can.
    let invite = |id: i64, email: &str, expires| AccountMutation::CreateInvitation {
        id: InvitationId(id),
        email: email.into(),
        role: Role::Auditor,
        token_hash: [id as u8; 32],
        invited_by: "ada@example.com".into(),
        expires,
    };
    let accept = |id: i64| AccountMutation::AcceptInvitation {
        id: InvitationId(id),
        user: UserId(500 + id),
        password_hash: PasswordHash("h".into()),
    };
    a.apply(invite(41, "finn@example.com", expires)).await.unwrap();
    a.apply(accept(41)).await.unwrap();
    let revoke = |id: i64| AccountMutation::RevokeInvitation { id: InvitationId(id) };
    assert_eq!(a.apply(revoke(41)).await, Err(MutationError::NotFound), "accepted");
    a.apply(invite(42, "gail@example.com", a.now())).await.unwrap();
    a.apply(revoke(42)).await.unwrap();
    assert!(store.invitation(a.org, InvitationId(42)).await.unwrap().unwrap().revoked.is_some());

    // An invitation for an address that has an account meanwhile: refused, and still open.
    a.apply(invite(43, "ada@example.com", expires)).await.unwrap();
    assert_eq!(a.apply(accept(43)).await, Err(MutationError::EmailTaken));
    assert!(store.invitation(a.org, InvitationId(43)).await.unwrap().unwrap().is_open(a.now()));
    // Another organization's invitation is not this one's to accept.
    other.apply(invite(44, "hank@example.com", expires)).await.unwrap();
    assert_eq!(a.apply(accept(44)).await, Err(MutationError::NotFound));
}

/// The address throttle counts an attempt before its password is checked, in one statement:
/// concurrent attempts never get past the limit together, and a right password gives its
/// attempt back.
pub async fn sign_in_attempts_are_counted_before_the_check_up_to_the_limit(store: SharedStore) {
    let a = Accounts::new(&store, "acme").await;
    let t = |s: i64| Timestamp::from_micros(1_700_000_000_000_000 + s * 1_000_000);
    let window = 900; // seconds
    let addr = "203.0.113.77";
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (store, org) = (store.clone(), a.org);
        tasks.spawn(async move { store.count_sign_in_attempt(org, addr, t(1), t(1 - window), 10).await.unwrap() });
    }
    let mut counted: Vec<u32> = tasks.join_all().await.into_iter().flatten().collect();
    counted.sort_unstable();
    assert_eq!(counted, (1..=10).collect::<Vec<_>>(), "50 at once, a limit of 10: exactly 10 counted");
    assert_eq!(store.sign_in_failures(a.org, addr, t(1 - window)).await.unwrap(), 10, "the refused are not counted");

    store.give_back_sign_in_attempt(a.org, addr, t(2 - window)).await.unwrap();
    assert_eq!(store.sign_in_failures(a.org, addr, t(2 - window)).await.unwrap(), 9, "a right password is given back");
    assert_eq!(store.count_sign_in_attempt(a.org, addr, t(3), t(3 - window), 10).await.unwrap(), Some(10));
    assert_eq!(store.count_sign_in_attempt(a.org, addr, t(3), t(3 - window), 10).await.unwrap(), None);

    // A new window starts from one; a give-back meant for a window that is over changes nothing.
    let later = t(window + 2);
    assert_eq!(store.count_sign_in_attempt(a.org, addr, later, t(2), 10).await.unwrap(), Some(1));
    store.give_back_sign_in_attempt(a.org, addr, t(window + 3)).await.unwrap();
    assert_eq!(store.sign_in_failures(a.org, addr, t(2)).await.unwrap(), 1);
    store.give_back_sign_in_attempt(a.org, addr, t(2)).await.unwrap();
    store.give_back_sign_in_attempt(a.org, addr, t(2)).await.unwrap();
    assert_eq!(store.sign_in_failures(a.org, addr, t(2)).await.unwrap(), 0, "never below zero");
    store.give_back_sign_in_attempt(a.org, "192.0.2.99", t(2)).await.unwrap();
    let b = Accounts::new(&store, "globex").await;
    assert_eq!(store.count_sign_in_attempt(b.org, addr, later, t(2), 1).await.unwrap(), Some(1), "per organization");
}

/// The lockout counts an attempt before its password or code is checked, in one statement: the
/// attempt that reaches the threshold locks the account, the others find it locked; only that
/// attempt's success lifts its lock, and a locked account gets no session.
pub async fn login_attempts_are_counted_before_the_check_and_lock_once(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let ada = a.add_user("ada@example.com", Role::Admin).await;
    let (org, now) = (a.org, a.now());
    let at = move |s: i64| Timestamp::from_micros(now.as_micros() + s * 1_000_000);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.spawn(async move { store.count_login_attempt(org, ada, now, 5, at(60)).await.unwrap() });
    }
    let mut granted: Vec<LoginAttempt> = tasks.join_all().await.into_iter().flatten().collect();
    granted.sort_by_key(|g| g.failures);
    assert_eq!(granted.iter().map(|g| g.failures).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "50 at once: 5 counted");
    assert_eq!(granted.iter().map(|g| g.lock).collect::<Vec<_>>(), [None, None, None, None, Some(at(60))]);
    let user = |store: SharedStore| async move {
        let u = store.user(org, ada).await.unwrap().unwrap();
        (u.failed_logins, u.locked_until)
    };
    assert_eq!(user(store.clone()).await, (5, Some(at(60))));

    // A right answer of another attempt gives its failure back but leaves the lock.
    store.give_back_login_attempt(org, ada, &granted[0]).await.unwrap();
    assert_eq!(user(store.clone()).await, (4, Some(at(60))));
    let expires = at(3600);
    let start = |token: u8, attempt_lock| AccountMutation::CreateSession {
        user: ada,
        token_hash: [token; 32],
        expires,
        totp_step: None,
        pending: None,
        attempt_lock,
        address: None,
        user_agent: None,
    };
    assert_eq!(a.apply(start(1, None)).await, Err(MutationError::Locked), "a locked account gets no session");
    assert_eq!(a.apply(start(1, Some(at(59)))).await, Err(MutationError::Locked), "not with another lock");
    // The attempt that set the lock was right after all: its give-back lifts it.
    store.give_back_login_attempt(org, ada, &granted[4]).await.unwrap();
    assert_eq!(user(store.clone()).await, (3, None));

    // A lock of a failed attempt stays until it expires; then one attempt locks again at once.
    store.count_login_attempt(org, ada, now, 5, at(60)).await.unwrap().unwrap();
    let fifth = store.count_login_attempt(org, ada, now, 5, at(60)).await.unwrap().unwrap();
    assert_eq!(fifth, LoginAttempt { failures: 5, lock: Some(at(60)) });
    assert_eq!(store.count_login_attempt(org, ada, at(59), 5, at(119)).await.unwrap(), None, "locked");
    let after = store.count_login_attempt(org, ada, at(60), 5, at(120)).await.unwrap();
    assert_eq!(after, Some(LoginAttempt { failures: 6, lock: Some(at(120)) }));
    assert_eq!(store.count_login_attempt(org, ada, at(60), 5, at(120)).await.unwrap(), None);
    // That attempt succeeds: its own lock does not stop its session, which resets the counter.
    a.apply(start(2, Some(at(120)))).await.unwrap();
    assert_eq!(user(store.clone()).await, (0, None));

    let other = Accounts::new(&store, "globex").await;
    assert_eq!(store.count_login_attempt(other.org, ada, now, 5, at(60)).await.unwrap(), None, "not another org's");
}

/// A pending sign-in (password right, TOTP code next) takes at most a few codes, even at once,
/// and completes once; it dies with the user's password or TOTP.
pub async fn pending_sign_ins_take_five_codes_and_complete_once(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let ada = a.add_user("ada@example.com", Role::Admin).await;
    let bob = a.add_user("bob@example.com", Role::Admin).await;
    let (org, now) = (a.org, a.now());
    let exp = Timestamp::from_micros(now.as_micros() + 300_000_000);
    store.add_pending_sign_in(org, ada, &[1; 32], now, exp).await.unwrap();
    for n in 1..=5 {
        assert_eq!(store.count_pending_attempt(org, &[1; 32], now, 5).await.unwrap(), Some((ada, n)));
    }
    assert_eq!(store.count_pending_attempt(org, &[1; 32], now, 5).await.unwrap(), None, "five codes at most");

    store.add_pending_sign_in(org, ada, &[2; 32], now, exp).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.spawn(async move { store.count_pending_attempt(org, &[2; 32], now, 5).await.unwrap() });
    }
    assert_eq!(tasks.join_all().await.into_iter().flatten().count(), 5, "20 at once: 5 counted");

    store.add_pending_sign_in(org, ada, &[3; 32], now, exp).await.unwrap();
    assert_eq!(store.count_pending_attempt(org, &[3; 32], exp, 5).await.unwrap(), None, "expired");
    assert_eq!(store.count_pending_attempt(org, &[9; 32], now, 5).await.unwrap(), None, "unknown");
    let other = Accounts::new(&store, "globex").await;
    store.add_pending_sign_in(org, ada, &[4; 32], now, exp).await.unwrap();
    assert_eq!(store.count_pending_attempt(other.org, &[4; 32], now, 5).await.unwrap(), None, "another org's");

    let start = |user, token: u8, pending| AccountMutation::CreateSession {
        user,
        token_hash: [token; 32],
        expires: exp,
        totp_step: None,
        pending: Some(pending),
        attempt_lock: None,
        address: None,
        user_agent: None,
    };
    assert_eq!(a.apply(start(bob, 1, [4; 32])).await, Err(MutationError::NotFound), "not another user's");
    a.apply(start(ada, 1, [4; 32])).await.unwrap();
    assert_eq!(a.apply(start(ada, 2, [4; 32])).await, Err(MutationError::NotFound), "completes once");
    assert_eq!(store.count_pending_attempt(org, &[4; 32], now, 5).await.unwrap(), None, "used");
    assert_eq!(store.sessions_of(ada).await.unwrap().len(), 1);

    // A new password or TOTP voids the sign-ins that passed the old one; so does deletion.
    store.add_pending_sign_in(org, ada, &[5; 32], now, exp).await.unwrap();
    a.apply(AccountMutation::SetPassword { user: ada, password_hash: PasswordHash("new".into()), end_sessions: None })
        .await
        .unwrap();
    assert_eq!(store.count_pending_attempt(org, &[5; 32], now, 5).await.unwrap(), None, "password changed");
    store.add_pending_sign_in(org, ada, &[6; 32], now, exp).await.unwrap();
    a.apply(AccountMutation::SetTotp { user: ada, secret: None, end_sessions: None }).await.unwrap();
    assert_eq!(store.count_pending_attempt(org, &[6; 32], now, 5).await.unwrap(), None, "TOTP changed");
    store.add_pending_sign_in(org, ada, &[7; 32], now, exp).await.unwrap();
    a.apply(AccountMutation::DeleteUser { user: ada }).await.unwrap();
    assert_eq!(store.count_pending_attempt(org, &[7; 32], now, 5).await.unwrap(), None, "user deleted");
    // Expired ones are dropped when another is added: the table does not grow.
    store.add_pending_sign_in(org, bob, &[8; 32], exp, Timestamp::from_micros(exp.as_micros() + 1)).await.unwrap();
}

/// A password change, a TOTP change and "sign out everywhere" end the sessions they name, only
/// when those are exactly the user's others (so that each ended one has its Logout event); the
/// session's address and user agent are kept.
pub async fn changes_end_exactly_the_sessions_they_name(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let ada = a.add_user("ada@example.com", Role::Admin).await;
    let bob = a.add_user("bob@example.com", Role::Auditor).await;
    let expires = Timestamp::from_micros(a.now().as_micros() + 3_600_000_000);
    let start = |user, token: u8| AccountMutation::CreateSession {
        user,
        token_hash: [token; 32],
        expires,
        totp_step: None,
        pending: None,
        attempt_lock: None,
        address: Some("203.0.113.7".into()),
        user_agent: Some(format!("agent {token}")),
    };
    for t in 1..=3 {
        a.apply(start(ada, t)).await.unwrap();
    }
    a.apply(start(bob, 9)).await.unwrap();
    let (s, _) = store.session(&[2; 32]).await.unwrap().unwrap();
    assert_eq!((s.address.as_deref(), s.user_agent.as_deref()), (Some("203.0.113.7"), Some("agent 2")));
    assert_eq!(store.sessions_of(ada).await.unwrap()[0].user_agent.as_deref(), Some("agent 1"));

    let password = |end: EndSessions| AccountMutation::SetPassword {
        user: ada,
        password_hash: PasswordHash("new".into()),
        end_sessions: Some(end),
    };
    let keep_1 = |ended: Vec<[u8; 32]>| EndSessions { keep: Some([1; 32]), ended };
    assert_eq!(a.apply(password(keep_1(vec![[2; 32]]))).await, Err(MutationError::Conflict), "one is missing");
    assert_eq!(
        a.apply(password(keep_1(vec![[2; 32], [3; 32], [9; 32]]))).await,
        Err(MutationError::Conflict),
        "another user's is not theirs"
    );
    assert_eq!(store.sessions_of(ada).await.unwrap().len(), 3, "a refused change ends nothing");
    assert_eq!(
        store.user(a.org, ada).await.unwrap().unwrap().password_hash,
        PasswordHash("hash-of-ada@example.com".into())
    );
    a.apply(password(keep_1(vec![[3; 32], [2; 32]]))).await.unwrap();
    let left: Vec<u8> = store.sessions_of(ada).await.unwrap().iter().map(|s| s.token_hash[0]).collect();
    assert_eq!(left, [1], "the one that made the change stays");
    assert!(store.session(&[9; 32]).await.unwrap().is_some(), "another user's sessions stay");

    a.apply(start(ada, 4)).await.unwrap();
    let totp = |end| AccountMutation::SetTotp { user: ada, secret: None, end_sessions: Some(end) };
    assert_eq!(a.apply(totp(keep_1(vec![]))).await, Err(MutationError::Conflict), "a session started meanwhile");
    a.apply(totp(keep_1(vec![[4; 32]]))).await.unwrap();

    let everywhere =
        |user, ended| AccountMutation::EndSessionsOf { user, end_sessions: EndSessions { keep: None, ended } };
    assert_eq!(a.apply(everywhere(ada, vec![])).await, Err(MutationError::Conflict));
    a.apply(everywhere(ada, vec![[1; 32]])).await.unwrap();
    assert!(store.sessions_of(ada).await.unwrap().is_empty());
    a.apply(everywhere(ada, vec![])).await.unwrap();
    assert_eq!(a.apply(everywhere(UserId(424242), vec![])).await, Err(MutationError::NotFound), "no such user");
}

pub async fn a_totp_secret_is_resealed_only_from_what_is_stored(store: SharedStore) {
    let mut a = Accounts::new(&store, "acme").await;
    let ada = a.add_user("ada@example.com", Role::Admin).await;
    let bob = a.add_user("bob@example.com", Role::Admin).await;
    let plain = SealedTotp("JBSWY3DPEHPK3PXP".into());
    a.apply(AccountMutation::SetTotp { user: ada, secret: Some(plain.clone()), end_sessions: None }).await.unwrap();
    let sealed = SealedTotp("v1:sealed".into());
    assert!(!store.reseal_totp(a.org, ada, &SealedTotp("OTHER".into()), &sealed).await.unwrap(), "not what is stored");
    assert!(!store.reseal_totp(a.org, bob, &plain, &sealed).await.unwrap(), "bob has none");
    let other = Accounts::new(&store, "globex").await;
    assert!(!store.reseal_totp(other.org, ada, &plain, &sealed).await.unwrap(), "another organization's");
    assert_eq!(store.user(a.org, ada).await.unwrap().unwrap().totp, Some(plain.clone()));
    assert!(store.reseal_totp(a.org, ada, &plain, &sealed).await.unwrap());
    assert_eq!(store.user(a.org, ada).await.unwrap().unwrap().totp, Some(sealed.clone()));
    assert!(!store.reseal_totp(a.org, ada, &plain, &sealed).await.unwrap(), "once");
    assert_eq!(store.user(a.org, bob).await.unwrap().unwrap().totp, None);
}
