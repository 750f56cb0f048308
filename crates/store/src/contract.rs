//! The storage contract: one suite, run against every backend.
//!
//! A backend's test crate calls [`contract_tests!`] with an async function that returns a fresh,
//! empty store (or `None`, with a reason printed, when its database is not available here).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use logbook_core::{
    leaf, Action, ActionGrant, Actor, ActorKind, Event, EventId, NewEvent, OrgId, OrgSlug, Outcome, Source, Timestamp,
};
use logbook_integrity::proof::{prove_inclusion, tiles_for_inclusion, TileSet};
use logbook_integrity::record_hash;
use logbook_integrity::tree::TreeEdge;

use crate::{
    CommitBatch, CommitError, EventFilter, EventRow, IdempotencyKey, LogHead, Mutation, MutationEntry, MutationError,
    MutationOutput, ServiceActionLabel, Store, StoredCheckpoint, StoredCosignature,
};

pub type SharedStore = Arc<dyn Store>;

/// Generates one `#[tokio::test]` per contract case.
#[macro_export]
macro_rules! contract_tests {
    ($make:path) => {
        $crate::contract_accounts_tests!($make);
        $crate::contract_tests!(@cases $make;
            orgs_are_created_once,
            commit_appends_and_reads_back,
            commit_refuses_a_stale_head,
            tiles_serve_proofs_at_every_size,
            tile_rows_list_every_width,
            checkpoints_only_grow,
            cosignatures_are_kept_with_their_checkpoint,
            self_check_state_is_kept_per_log,
            mutations_commit_with_their_events,
            idempotency_keys_are_remembered_once,
            service_actions_are_registered_once,
            organizations_never_mix,
            api_tokens_can_be_copied,
            queries_page_newest_first_with_every_filter,
            time_ranges_become_seq_ranges,
            users_are_listed_distinct_and_sorted,
            text_search_finds_substrings_case_insensitively,
            text_search_finds_unindexed_events_at_once,
            text_search_combines_with_every_filter,
            short_needles_scan_a_bounded_range,
            search_indexing_is_resumable_and_idempotent,
        );
    };
    (@accounts $make:path; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                match $make().await {
                    Some(store) => $crate::contract_accounts::$case(store).await,
                    None => eprintln!("SKIPPED {}: backend not available (see message above)", stringify!($case)),
                }
            }
        )*
    };
    (@cases $make:path; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                match $make().await {
                    Some(store) => $crate::contract::$case(store).await,
                    None => eprintln!("SKIPPED {}: backend not available (see message above)", stringify!($case)),
                }
            }
        )*
    };
}

/// Builds valid batches for a log, as the sequencer would.
#[derive(Debug)]
pub struct LogWriter {
    pub org: OrgId,
    pub slug: OrgSlug,
    pub edge: TreeEdge,
    pub time: i64,
}

impl LogWriter {
    pub fn new(org: OrgId, slug: &OrgSlug) -> Self {
        Self { org, slug: slug.clone(), edge: TreeEdge::new(), time: 1_764_000_000_000_000 }
    }

    pub fn event(&mut self, seq: u64, user: &str) -> EventRow {
        self.event_with(seq, user, Action::LoginFailed)
    }

    /// The action the query tests give event `seq`.
    pub fn action_of(seq: u64) -> Action {
        [Action::LoginFailed, Action::LoginSuccess, Action::UserRoleUpdated][(seq % 3) as usize]
    }

    /// The user the batches give event `seq`.
    pub fn user_of(seq: u64) -> String {
        format!("user{}@example.com", seq % 7)
    }

    pub fn event_with(&mut self, seq: u64, user: &str, action: Action) -> EventRow {
        self.event_full(seq, user, action, "Invalid password", None)
    }

    /// An event with the given details and target, for the search tests.
    pub fn event_full(
        &mut self,
        seq: u64,
        user: &str,
        action: Action,
        details: &str,
        target: Option<logbook_core::Target>,
    ) -> EventRow {
        self.time += 1_000;
        let e = Event {
            org: self.slug.clone(),
            seq,
            id: EventId::from_random_bytes((seq as u128).to_be_bytes()),
            time: Timestamp::from_micros(self.time),
            body: NewEvent {
                action: action.into(),
                actor: Actor { kind: ActorKind::Anonymous, id: user.into(), email: None },
                target,
                details: details.into(),
                fields: Default::default(),
                outcome: Outcome::Failure,
                source: Source { via: None, ip: Some([192, 0, 2, 1].into()), user_agent: None },
                recorded_by: "contract-test".into(),
            },
        };
        let leaf = leaf::encode(&e);
        EventRow {
            seq,
            time: e.time,
            action: e.body.action.code().into(),
            user: user.into(),
            leaf_hash: record_hash(&leaf).0,
            leaf,
        }
    }

    /// A batch of `n` events on top of the current edge (the edge advances).
    pub fn batch(&mut self, n: u64) -> CommitBatch {
        let base = self.edge.size();
        let events: Vec<EventRow> =
            (base..base + n).map(|s| self.event_with(s, &Self::user_of(s), Self::action_of(s))).collect();
        let tiles = self.edge.append_all(events.iter().map(|e| logbook_integrity::Hash(e.leaf_hash)));
        CommitBatch { base_size: base, events, tiles, mutations: Vec::new(), now: Timestamp::from_micros(self.time) }
    }
}

/// After an upgrade that added free-text search to a store of 500 events (from
/// [`LogWriter::batch`]): every event is found before the indexer backfills it, and after.
pub async fn upgraded_search_finds_before_and_after_backfill(store: &dyn Store, org: OrgId) {
    let filter = EventFilter { text: Some("USER3@".into()), ..Default::default() };
    let want: Vec<u64> = (0..500).rev().filter(|s| s % 7 == 3).collect();
    let seqs = |p: crate::EventPage| p.rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.query_events(org, &filter, u64::MAX, 500).await.unwrap()), want, "found before backfill");
    while store.index_search_text(org, 128).await.unwrap() > 0 {}
    assert_eq!(store.search_indexed(org).await.unwrap(), 500);
    assert_eq!(seqs(store.query_events(org, &filter, u64::MAX, 500).await.unwrap()), want, "and from the index");
}

pub(crate) async fn org(store: &SharedStore, slug: &str) -> (OrgId, LogWriter) {
    let slug = OrgSlug::parse(slug).expect("valid slug");
    let org = store.ensure_org(&slug, Timestamp::from_micros(1)).await.expect("ensure_org");
    (org.id, LogWriter::new(org.id, &slug))
}

pub async fn orgs_are_created_once(store: SharedStore) {
    let slug = OrgSlug::parse("acme").unwrap();
    let a = store.ensure_org(&slug, Timestamp::from_micros(5)).await.unwrap();
    let b = store.ensure_org(&slug, Timestamp::from_micros(9)).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.created, Timestamp::from_micros(5));
    assert_eq!(store.org(&slug).await.unwrap(), Some(a.clone()));
    assert_eq!(store.org(&OrgSlug::parse("nobody").unwrap()).await.unwrap(), None);
    assert_eq!(store.orgs().await.unwrap(), vec![a.clone()]);
    assert_eq!(store.log_head(a.id).await.unwrap(), LogHead::default());
    store.ping().await.unwrap();
}

pub async fn commit_appends_and_reads_back(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let b1 = w.batch(3);
    let b2 = w.batch(300);
    assert_eq!(store.commit(id, b1.clone()).await.unwrap(), vec![]);
    store.commit(id, b2.clone()).await.unwrap();
    let head = store.log_head(id).await.unwrap();
    assert_eq!(head, LogHead { size: 303, last_time: Some(b2.events[299].time) });
    let all = store.events(id, 0..303).await.unwrap();
    let want: Vec<_> = b1.events.iter().chain(&b2.events).cloned().collect();
    assert_eq!(all, want);
    assert_eq!(store.events(id, 300..1000).await.unwrap(), want[300..].to_vec());
    assert!(store.events(id, 303..400).await.unwrap().is_empty());
}

pub async fn commit_refuses_a_stale_head(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let b1 = w.batch(5);
    store.commit(id, b1.clone()).await.unwrap();
    // Another writer's batch built on the old head (size 0).
    let mut stale = LogWriter::new(id, &w.slug).batch(2);
    match store.commit(id, stale.clone()).await {
        Err(CommitError::HeadMoved { size: 5 }) => {}
        other => panic!("expected HeadMoved {{ size: 5 }}, got {other:?}"),
    }
    // Also a batch that claims a base beyond the head.
    stale.base_size = 9;
    assert!(matches!(store.commit(id, stale.clone()).await, Err(CommitError::HeadMoved { size: 5 })));
    assert_eq!(store.log_head(id).await.unwrap().size, 5);
    assert_eq!(store.events(id, 0..10).await.unwrap(), b1.events);
}

pub async fn tiles_serve_proofs_at_every_size(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let mut roots = vec![w.edge.root()];
    let mut leaves = Vec::new();
    // Batches that straddle tile boundaries in every way, up to a second level-1 entry.
    for n in [1u64, 254, 2, 255, 256, 300, 1, 1000] {
        let b = w.batch(n);
        for e in &b.events {
            leaves.push(e.leaf_hash);
        }
        store.commit(id, b.clone()).await.unwrap();
        roots.push(w.edge.root());
    }
    let total = w.edge.size();
    let mut edge = TreeEdge::new();
    let mut root_at = vec![edge.root()];
    for l in &leaves {
        edge.append_all([logbook_integrity::Hash(*l)]);
        root_at.push(edge.root());
    }
    for (seq, size) in
        [(0, 1), (0, total), (254, 255), (255, 256), (256, 257), (511, 768), (1000, total), (total - 1, total)]
    {
        let ids = tiles_for_inclusion(seq, size).unwrap();
        let data = store.read_tiles(id, &ids).await.unwrap();
        let mut set = TileSet::new();
        for (t, d) in ids.iter().zip(data) {
            set.insert(*t, d);
        }
        let p = prove_inclusion(seq, size, &set).unwrap_or_else(|e| panic!("proof {seq}/{size}: {e}"));
        assert_eq!(p.root, root_at[size as usize], "root at {size}");
        assert_eq!(p.leaf_hash.0, leaves[seq as usize]);
    }
    // The edge can be rebuilt from the store, as a restarting sequencer does.
    let need = TreeEdge::tiles_for(total);
    let data = store.read_tiles(id, &need).await.unwrap();
    let pairs: Vec<_> = need.into_iter().zip(data).collect();
    assert_eq!(TreeEdge::restore(total, &pairs).unwrap(), w.edge);
}

pub async fn tile_rows_list_every_width(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    for _ in 0..3 {
        let b = w.batch(256 * 2 + 10);
        store.commit(id, b.clone()).await.unwrap();
    }
    let level0 = store.tile_rows(id, 0, 0..u64::MAX).await.unwrap();
    assert_eq!(level0.len(), 6, "six full level-0 tiles");
    assert!(level0.iter().all(|r| r.id.is_full() && r.hashes.len() == 256 * 32));
    let level1 = store.tile_rows(id, 1, 0..1).await.unwrap();
    let widths: Vec<u32> = level1.iter().map(|r| r.id.width).collect();
    assert_eq!(widths, vec![2, 4, 6], "one partial row per commit, narrowest first");
    assert!(store.tile_rows(id, 1, 1..5).await.unwrap().is_empty());
}

pub async fn checkpoints_only_grow(store: SharedStore) {
    let (id, _) = org(&store, "acme").await;
    let cp = |size: u64| StoredCheckpoint {
        size,
        root: [size as u8; 32],
        note: format!("note {size}\n"),
        signed_at: Timestamp::from_micros(size as i64),
    };
    assert_eq!(store.latest_checkpoint(id).await.unwrap(), None);
    assert!(store.add_checkpoint(id, &cp(10)).await.unwrap());
    assert!(!store.add_checkpoint(id, &cp(10)).await.unwrap(), "same size twice");
    assert!(!store.add_checkpoint(id, &cp(5)).await.unwrap(), "older size");
    assert!(store.add_checkpoint(id, &cp(20)).await.unwrap());
    assert_eq!(store.latest_checkpoint(id).await.unwrap(), Some(cp(20)));
    assert_eq!(store.checkpoints(id).await.unwrap(), vec![cp(10), cp(20)]);
}

pub async fn cosignatures_are_kept_with_their_checkpoint(store: SharedStore) {
    let (id, _) = org(&store, "acme").await;
    let (other, _) = org(&store, "globex").await;
    let cp = |size: u64| StoredCheckpoint {
        size,
        root: [size as u8; 32],
        note: format!("note {size}\n"),
        signed_at: Timestamp::from_micros(size as i64),
    };
    let cosig = |size: u64, witness: &str, key_id: u32| StoredCosignature {
        size,
        witness: witness.into(),
        key_id,
        line: format!("\u{2014} {witness} {size}{key_id}\n"),
        cosigned_at: 1_700_000_000 + size,
        received_at: Timestamp::from_micros(size as i64 * 10),
    };
    for size in [10, 20, 30] {
        assert!(store.add_checkpoint(id, &cp(size)).await.unwrap());
    }
    assert_eq!(store.newest_cosignatures(id).await.unwrap(), vec![]);
    assert!(store.add_cosignature(id, &cosig(10, "w1.example", 7)).await.unwrap());
    assert!(store.add_cosignature(id, &cosig(20, "w1.example", 7)).await.unwrap());
    assert!(store.add_cosignature(id, &cosig(20, "w2.example", 9)).await.unwrap());
    // The same witness key's name, other key: another witness.
    assert!(store.add_cosignature(id, &cosig(10, "w2.example", 8)).await.unwrap());
    let mut again = cosig(20, "w1.example", 7);
    again.line = "\u{2014} w1.example other\n".into();
    assert!(!store.add_cosignature(id, &again).await.unwrap(), "one cosignature per witness key and size");
    assert!(store.add_cosignature(id, &cosig(25, "w1.example", 7)).await.is_err(), "no checkpoint of size 25");
    assert!(
        store.add_cosignature(other, &cosig(10, "w1.example", 7)).await.is_err(),
        "the checkpoint is another log's"
    );

    assert_eq!(
        store.cosignatures(id, 20).await.unwrap(),
        vec![cosig(20, "w1.example", 7), cosig(20, "w2.example", 9)],
        "the first line stored is kept"
    );
    assert_eq!(store.cosignatures(id, 30).await.unwrap(), vec![]);
    assert_eq!(
        store.newest_cosignatures(id).await.unwrap(),
        vec![cosig(20, "w1.example", 7), cosig(10, "w2.example", 8), cosig(20, "w2.example", 9)]
    );
    assert_eq!(store.newest_cosignatures(other).await.unwrap(), vec![]);
}

pub async fn self_check_state_is_kept_per_log(store: SharedStore) {
    let (a, _) = org(&store, "acme").await;
    let (b, _) = org(&store, "globex").await;
    assert_eq!(store.self_check_state(a).await.unwrap(), None);
    store.save_self_check_state(a, b"first").await.unwrap();
    store.save_self_check_state(a, &[0, 255, 7]).await.unwrap();
    assert_eq!(store.self_check_state(a).await.unwrap(), Some(vec![0, 255, 7]), "replaced, bytes kept as given");
    assert_eq!(store.self_check_state(b).await.unwrap(), None, "per log");
    store.save_self_check_state(b, b"other").await.unwrap();
    assert_eq!(store.self_check_state(a).await.unwrap(), Some(vec![0, 255, 7]));
}

pub async fn mutations_commit_with_their_events(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let mut b = w.batch(1);
    b.mutations.push(MutationEntry {
        first_seq: 0,
        count: 1,
        mutation: Mutation::CreateApiToken {
            name: "billing".into(),
            token_hash: [1; 32],
            grant: ActionGrant::parse("login.*,billing.*").unwrap(),
        },
    });
    let out = store.commit(id, b.clone()).await.unwrap();
    let MutationOutput::ApiTokenCreated(token_id) = out[0] else { panic!("{out:?}") };
    let t = store.api_token_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((t.id, t.org, t.name.as_str(), t.revoked), (token_id, id, "billing", None));
    assert_eq!(t.grant.to_string(), "login.*,billing.*", "the grant is stored with the token");
    assert_eq!(store.api_token_by_hash(&[2; 32]).await.unwrap(), None);

    // A refused mutation takes its whole batch with it: events included.
    let mut dup = w.batch(2);
    dup.mutations.push(MutationEntry {
        first_seq: 1,
        count: 1,
        mutation: Mutation::CreateApiToken { name: "other".into(), token_hash: [3; 32], grant: ActionGrant::default() },
    });
    dup.mutations.push(MutationEntry {
        first_seq: 2,
        count: 1,
        mutation: Mutation::CreateApiToken {
            name: "billing".into(),
            token_hash: [4; 32],
            grant: ActionGrant::default(),
        },
    });
    match store.commit(id, dup.clone()).await {
        Err(CommitError::Rejected { index: 1, reason: MutationError::NameTaken }) => {}
        other => panic!("expected NameTaken at 1, got {other:?}"),
    }
    assert_eq!(store.log_head(id).await.unwrap().size, 1);
    assert_eq!(store.api_token_by_hash(&[3; 32]).await.unwrap(), None, "nothing of the batch was kept");

    let mut w2 = LogWriter::new(id, &w.slug);
    w2.edge = TreeEdge::new();
    w2.edge.append_all([logbook_integrity::Hash(store.events(id, 0..1).await.unwrap()[0].leaf_hash)]);
    let mut revoke = w2.batch(1);
    revoke.mutations.push(MutationEntry {
        first_seq: 1,
        count: 1,
        mutation: Mutation::RevokeApiToken { id: token_id },
    });
    store.commit(id, revoke.clone()).await.unwrap();
    assert!(store.api_token_by_hash(&[1; 32]).await.unwrap().unwrap().revoked.is_some());
    let mut again = w2.batch(1);
    again.mutations.push(MutationEntry { first_seq: 2, count: 1, mutation: Mutation::RevokeApiToken { id: token_id } });
    assert!(matches!(
        store.commit(id, again.clone()).await,
        Err(CommitError::Rejected { index: 0, reason: MutationError::NotFound })
    ));
    assert_eq!(store.api_tokens(id).await.unwrap().len(), 1);
}

pub async fn idempotency_keys_are_remembered_once(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let token = service_token(&store, id, &mut w).await;
    let mut b = w.batch(3);
    b.mutations.push(MutationEntry {
        first_seq: 1,
        count: 3,
        mutation: Mutation::Ingest { token, labels: Vec::new(), idempotency: Some(key("req-1", [7; 32])) },
    });
    store.commit(id, b.clone()).await.unwrap();
    let rec = store.idempotency_record(token, "req-1").await.unwrap().unwrap();
    assert_eq!((rec.first_seq, rec.count, rec.request_hash), (1, 3, [7; 32]));
    assert_eq!(store.idempotency_record(token, "req-2").await.unwrap(), None);

    let mut b = w.batch(1);
    b.mutations.push(MutationEntry {
        first_seq: 4,
        count: 1,
        mutation: Mutation::Ingest { token, labels: Vec::new(), idempotency: Some(key("req-1", [8; 32])) },
    });
    assert!(matches!(
        store.commit(id, b.clone()).await,
        Err(CommitError::Rejected { index: 0, reason: MutationError::IdempotencyKeyTaken })
    ));
}

/// The organization's first event, creating the API token `svc` with the default grant.
async fn service_token(store: &SharedStore, id: OrgId, w: &mut LogWriter) -> logbook_core::ApiTokenId {
    let mut b = w.batch(1);
    b.mutations.push(MutationEntry {
        first_seq: 0,
        count: 1,
        mutation: Mutation::CreateApiToken { name: "svc".into(), token_hash: [9; 32], grant: ActionGrant::default() },
    });
    let MutationOutput::ApiTokenCreated(token) = store.commit(id, b).await.unwrap()[0] else { panic!() };
    token
}

fn key(key: &str, request_hash: [u8; 32]) -> IdempotencyKey {
    IdempotencyKey { key: key.into(), request_hash }
}

fn label(code: &str, label: &str) -> ServiceActionLabel {
    ServiceActionLabel { code: code.into(), label: label.into() }
}

pub async fn service_actions_are_registered_once(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let token = service_token(&store, id, &mut w).await;
    let ingest = |labels| Mutation::Ingest { token, labels, idempotency: None };
    let mut b = w.batch(2);
    let first = vec![label("billing.invoice.paid", "Invoice Paid"), label("billing.invoice.voided", "Invoice Voided")];
    b.mutations.push(MutationEntry { first_seq: 1, count: 2, mutation: ingest(first.clone()) });
    store.commit(id, b.clone()).await.unwrap();
    assert_eq!(store.service_actions(id).await.unwrap(), first);
    // The same label again is no change.
    let mut b = w.batch(1);
    b.mutations.push(MutationEntry { first_seq: 3, count: 1, mutation: ingest(vec![first[0].clone()]) });
    store.commit(id, b.clone()).await.unwrap();
    // Another label for a registered code is refused, with its events.
    let mut b = w.batch(1);
    let other = vec![label("billing.refund.sent", "Refund Sent"), label("billing.invoice.paid", "Paid!")];
    b.mutations.push(MutationEntry { first_seq: 4, count: 1, mutation: ingest(other) });
    match store.commit(id, b.clone()).await {
        Err(CommitError::Rejected { index: 0, reason: MutationError::ActionLabelConflict(code) }) => {
            assert_eq!(code, "billing.invoice.paid")
        }
        other => panic!("expected ActionLabelConflict, got {other:?}"),
    }
    assert_eq!(store.log_head(id).await.unwrap().size, 4);
    assert_eq!(store.service_actions(id).await.unwrap(), first, "nothing of the refused batch was kept");
    // Registrations are per organization, and copied as they are.
    let (other_org, _) = org(&store, "globex").await;
    assert_eq!(store.service_actions(other_org).await.unwrap(), vec![]);
    store.import_service_action(other_org, &first[1]).await.unwrap();
    assert_eq!(store.service_actions(other_org).await.unwrap(), vec![first[1].clone()]);
}

pub async fn organizations_never_mix(store: SharedStore) {
    let (a, mut wa) = org(&store, "acme").await;
    let (b, mut wb) = org(&store, "globex").await;
    assert_ne!(a, b);
    let ba = wa.batch(300);
    let bb = wb.batch(20);
    store.commit(a, ba.clone()).await.unwrap();
    store.commit(b, bb.clone()).await.unwrap();
    assert_eq!(store.log_head(a).await.unwrap().size, 300);
    assert_eq!(store.log_head(b).await.unwrap().size, 20);
    assert_eq!(store.events(b, 0..1000).await.unwrap(), bb.events);
    assert_eq!(store.events(a, 0..20).await.unwrap(), ba.events[..20].to_vec());
    assert_eq!(store.tile_rows(b, 0, 0..10).await.unwrap(), vec![]);
    assert_eq!(store.tile_rows(a, 0, 0..10).await.unwrap().len(), 1);
    store
        .add_checkpoint(
            a,
            &StoredCheckpoint { size: 300, root: [1; 32], note: "a\n".into(), signed_at: Timestamp::from_micros(1) },
        )
        .await
        .unwrap();
    assert_eq!(store.latest_checkpoint(b).await.unwrap(), None);
    // A batch for one org is checked against that org's head only.
    let next_b = wb.batch(1);
    store.commit(b, next_b.clone()).await.unwrap();
    assert_eq!(store.log_head(a).await.unwrap().size, 300);
}

pub async fn api_tokens_can_be_copied(store: SharedStore) {
    let (a, mut w) = org(&store, "acme").await;
    let (b, _) = org(&store, "copy").await;
    let mut batch = w.batch(1);
    batch.mutations.push(MutationEntry {
        first_seq: 0,
        count: 1,
        mutation: Mutation::CreateApiToken { name: "svc".into(), token_hash: [5; 32], grant: ActionGrant::default() },
    });
    store.commit(a, batch).await.unwrap();
    let rows = store.api_token_rows(a).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.name.as_str(), rows[0].1), ("svc", [5; 32]));
    let mut revoked = rows[0].0.clone();
    revoked.name = "old".into();
    revoked.revoked = Some(Timestamp::from_micros(77));
    store.import_api_token(b, &revoked, &[6; 32]).await.unwrap();
    let got = store.api_token_by_hash(&[6; 32]).await.unwrap().unwrap();
    assert_eq!((got.org, got.name.as_str(), got.created, got.revoked), (b, "old", revoked.created, revoked.revoked));
    assert_eq!(got.grant, ActionGrant::default());
    assert!(store.import_api_token(b, &revoked, &[6; 32]).await.is_err(), "the same token twice");
}

/// Walks every page of a filter and returns the seqs seen, checking each page is newest first.
async fn walk(store: &SharedStore, org: OrgId, filter: &EventFilter, limit: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut before = u64::MAX;
    loop {
        let page = store.query_events(org, filter, before, limit).await.unwrap();
        assert!(page.rows.len() <= limit);
        assert!(page.rows.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        assert!(page.rows.iter().all(|r| r.seq < before), "below the cursor");
        seen.extend(page.rows.iter().map(|e| e.seq));
        match page.next_before {
            Some(next) => {
                assert!(next < before, "the cursor moves down");
                before = next;
            }
            None => break,
        }
    }
    seen
}

pub async fn queries_page_newest_first_with_every_filter(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let (other, mut wo) = org(&store, "globex").await;
    for n in [300u64, 200, 500] {
        store.commit(id, w.batch(n)).await.unwrap();
    }
    store.commit(other, wo.batch(50)).await.unwrap();
    let all: Vec<u64> = (0..1000).rev().collect();
    let expect = |p: &dyn Fn(u64) -> bool| all.iter().copied().filter(|&s| p(s)).collect::<Vec<_>>();

    let page = store.query_events(id, &EventFilter::default(), u64::MAX, 50).await.unwrap().rows;
    assert_eq!(page.first().map(|e| e.seq), Some(999));
    assert_eq!(page.len(), 50);
    assert_eq!(page[0], store.events(id, 999..1000).await.unwrap()[0], "whole rows come back");
    assert_eq!(walk(&store, id, &EventFilter::default(), 64).await, all);

    let by_user = EventFilter { user: Some(LogWriter::user_of(3)), ..Default::default() };
    assert_eq!(walk(&store, id, &by_user, 13).await, expect(&|s| s % 7 == 3));

    let two_actions = EventFilter {
        actions: vec![LogWriter::action_of(0).code().into(), LogWriter::action_of(2).code().into()],
        ..Default::default()
    };
    assert_eq!(walk(&store, id, &two_actions, 17).await, expect(&|s| s % 3 != 1));

    let combined = EventFilter {
        user: Some(LogWriter::user_of(5)),
        actions: vec![LogWriter::action_of(1).code().into(), LogWriter::action_of(2).code().into()],
        seqs: 100..800,
        text: None,
    };
    assert_eq!(walk(&store, id, &combined, 5).await, expect(&|s| s % 7 == 5 && s % 3 != 0 && (100..800).contains(&s)));

    let nobody = EventFilter { user: Some("nobody@example.com".into()), ..Default::default() };
    assert!(store.query_events(id, &nobody, u64::MAX, 50).await.unwrap().rows.is_empty());
    assert_eq!(
        walk(&store, other, &EventFilter::default(), 100).await,
        (0..50).rev().collect::<Vec<_>>(),
        "only its own log"
    );
}

pub async fn time_ranges_become_seq_ranges(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let t0 = w.time;
    store.commit(id, w.batch(1000)).await.unwrap();
    // LogWriter gives event s the time t0 + 1000 * (s + 1).
    let time = |s: i64| Timestamp::from_micros(t0 + 1000 * (s + 1));
    assert_eq!(store.seq_at_or_after(id, time(500)).await.unwrap(), 500);
    assert_eq!(store.seq_at_or_after(id, Timestamp::from_micros(time(500).as_micros() - 1)).await.unwrap(), 500);
    assert_eq!(store.seq_at_or_after(id, Timestamp::from_micros(time(500).as_micros() + 1)).await.unwrap(), 501);
    assert_eq!(store.seq_at_or_after(id, Timestamp::from_micros(0)).await.unwrap(), 0);
    assert_eq!(store.seq_at_or_after(id, time(5000)).await.unwrap(), 1000);
    let (empty, _) = org(&store, "empty").await;
    assert_eq!(store.seq_at_or_after(empty, time(1)).await.unwrap(), 0);
}

pub async fn users_are_listed_distinct_and_sorted(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    store.commit(id, w.batch(700)).await.unwrap();
    let all: Vec<String> = (0..7).map(LogWriter::user_of).collect();
    assert_eq!(store.users(id, "", 100).await.unwrap(), all);
    assert_eq!(store.users(id, "user", 3).await.unwrap(), all[..3].to_vec());
    assert_eq!(store.users(id, "user4", 10).await.unwrap(), vec![LogWriter::user_of(4)]);
    assert!(store.users(id, "zzz", 10).await.unwrap().is_empty());
    let (other, _) = org(&store, "globex").await;
    assert!(store.users(other, "", 10).await.unwrap().is_empty());
}

/// The details the search tests give event `seq`: a few words that recur with known periods.
fn details_of(seq: u64) -> String {
    let colour = ["Crimson", "teal", "OCHRE"][(seq % 3) as usize];
    let extra = if seq.is_multiple_of(10) { " 100% off_sale" } else { "" };
    format!("Role of {colour} changed (ref {seq:04}){extra} — Zoë")
}

/// Commits `n` events with [`details_of`] details and a target on every fifth.
async fn commit_searchable(store: &SharedStore, org: OrgId, w: &mut LogWriter, n: u64) {
    let base = w.edge.size();
    let events: Vec<EventRow> = (base..base + n)
        .map(|s| {
            let target = (s % 5 == 0).then(|| logbook_core::Target {
                kind: "protected_user".into(),
                id: format!("pu_{s}"),
                display: format!("VIP{s}@Example.com"),
            });
            w.event_full(s, &LogWriter::user_of(s), LogWriter::action_of(s), &details_of(s), target)
        })
        .collect();
    let tiles = w.edge.append_all(events.iter().map(|e| logbook_integrity::Hash(e.leaf_hash)));
    let batch =
        CommitBatch { base_size: base, events, tiles, mutations: Vec::new(), now: Timestamp::from_micros(w.time) };
    store.commit(org, batch).await.unwrap();
}

async fn index_all(store: &SharedStore, org: OrgId) {
    while store.index_search_text(org, 97).await.unwrap() > 0 {}
}

fn text(t: &str) -> EventFilter {
    EventFilter { text: Some(t.into()), ..Default::default() }
}

/// The seqs of `0..n` whose search text contains `needle` (folded), newest first, computed
/// from the same rules the stores must follow.
fn expected(n: u64, needle: &str, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let needle = crate::fold_case(needle);
    (0..n)
        .rev()
        .filter(|&s| {
            let mut hay = format!(
                "{}\n{}\n{}\n{}",
                LogWriter::user_of(s),
                LogWriter::action_of(s).label(),
                LogWriter::action_of(s).code(),
                details_of(s)
            );
            if s % 5 == 0 {
                hay.push_str(&format!("\nVIP{s}@Example.com\npu_{s}"));
            }
            crate::fold_case(&hay).contains(&needle) && keep(s)
        })
        .collect()
}

pub async fn text_search_finds_substrings_case_insensitively(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    commit_searchable(&store, id, &mut w, 600).await;
    index_all(&store, id).await;
    assert_eq!(store.search_indexed(id).await.unwrap(), 600);
    for needle in [
        "crimson",
        "CRIMSON",
        "teal changed",
        "ochre",
        "user3@",
        "Login Failed",
        "role_updated",
        "vip25@example",
        "PU_35",
        "zoë",
        "ZOË",
        "ref 0123",
    ] {
        assert_eq!(walk(&store, id, &text(needle), 37).await, expected(600, needle, |_| true), "{needle:?}");
    }
    // LIKE and FTS syntax are plain characters.
    assert_eq!(walk(&store, id, &text("100% off_sale"), 50).await, expected(600, "100% off_sale", |_| true));
    assert_eq!(walk(&store, id, &text("0% o"), 50).await, expected(600, "0% o", |_| true));
    for nothing in ["100%%", "off%sale", "of_fsale", "\"crimson\"", "crimson OR teal", "teal*", "nobody-at-all"] {
        assert!(walk(&store, id, &text(nothing), 50).await.is_empty(), "{nothing:?}");
    }
    // A needle never spans two parts of the text.
    assert!(walk(&store, id, &text("com login"), 50).await.is_empty());
    assert_eq!(walk(&store, id, &text(""), 100).await.len(), 600, "an empty needle filters nothing");
}

pub async fn text_search_finds_unindexed_events_at_once(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    commit_searchable(&store, id, &mut w, 300).await;
    // Nothing indexed yet: every search is answered by decoding the rows.
    assert_eq!(store.search_indexed(id).await.unwrap(), 0);
    let want = expected(300, "teal", |_| true);
    assert_eq!(walk(&store, id, &text("teal"), 7).await, want);
    // Partly indexed, at a point that is not a page boundary: still exactly the same.
    store.index_search_text(id, 123).await.unwrap();
    assert_eq!(store.search_indexed(id).await.unwrap(), 123);
    for limit in [1, 7, 50, 500] {
        assert_eq!(walk(&store, id, &text("teal"), limit).await, want, "limit {limit}");
        assert_eq!(walk(&store, id, &text("te"), limit).await, expected(300, "te", |_| true), "limit {limit}");
    }
    commit_searchable(&store, id, &mut w, 50).await;
    assert_eq!(walk(&store, id, &text("teal"), 9).await, expected(350, "teal", |_| true), "new events at once");
    index_all(&store, id).await;
    assert_eq!(walk(&store, id, &text("teal"), 9).await, expected(350, "teal", |_| true));
}

pub async fn text_search_combines_with_every_filter(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    let (other, mut wo) = org(&store, "globex").await;
    commit_searchable(&store, id, &mut w, 700).await;
    commit_searchable(&store, other, &mut wo, 100).await;
    index_all(&store, other).await;
    store.index_search_text(id, 400).await.unwrap();
    let combined = EventFilter {
        user: Some(LogWriter::user_of(2)),
        actions: vec![LogWriter::action_of(0).code().into(), LogWriter::action_of(2).code().into()],
        seqs: 50..650,
        text: Some("Crimson".into()),
    };
    let want = expected(700, "crimson", |s| s % 7 == 2 && s % 3 != 1 && (50..650).contains(&s));
    assert!(!want.is_empty());
    assert_eq!(walk(&store, id, &combined, 3).await, want);
    let by_user = EventFilter { user: Some(LogWriter::user_of(4)), text: Some("ochre".into()), ..Default::default() };
    assert_eq!(walk(&store, id, &by_user, 10).await, expected(700, "ochre", |s| s % 7 == 4));
    let by_action = EventFilter {
        actions: vec![LogWriter::action_of(1).code().into()],
        text: Some("VIP".into()),
        ..Default::default()
    };
    assert_eq!(walk(&store, id, &by_action, 10).await, expected(700, "vip", |s| s % 3 == 1));
    let short_combined = EventFilter { text: Some("l".into()), ..combined.clone() };
    assert_eq!(
        walk(&store, id, &short_combined, 4).await,
        expected(700, "l", |s| s % 7 == 2 && s % 3 != 1 && (50..650).contains(&s))
    );
    // Only its own log, indexed or not.
    assert_eq!(walk(&store, other, &text("crimson"), 100).await, expected(100, "crimson", |_| true));
    assert!(walk(&store, other, &text("ref 0500"), 100).await.is_empty());
}

pub async fn short_needles_scan_a_bounded_range(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    commit_searchable(&store, id, &mut w, 400).await;
    index_all(&store, id).await;
    // A needle of one or two characters cannot use trigrams; it is still exact.
    for needle in ["%", "_", "ë", "Zo", "7)", "00"] {
        assert_eq!(walk(&store, id, &text(needle), 13).await, expected(400, needle, |_| true), "{needle:?}");
    }
}

pub async fn search_indexing_is_resumable_and_idempotent(store: SharedStore) {
    let (id, mut w) = org(&store, "acme").await;
    assert_eq!(store.index_search_text(id, 10).await.unwrap(), 0, "an empty log");
    commit_searchable(&store, id, &mut w, 30).await;
    // Several indexers at once (several processes): each event is indexed once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                let k = s.index_search_text(id, 4).await.unwrap();
                if k == 0 {
                    return n;
                }
                n += k;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 30);
    assert_eq!(store.search_indexed(id).await.unwrap(), 30);
    assert_eq!(walk(&store, id, &text("ref 00"), 100).await, expected(30, "ref 00", |_| true));
}
