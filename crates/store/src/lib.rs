//! The storage seam of Logbook.
//!
//! [`Store`] is deliberately narrow: it persists what the sequencer has already computed
//! (`seq`, time, leaf, leaf hash, tiles) in one durable transaction, and reads it back. All log
//! logic (numbering, hashing, tiling, signing, proving, auditing) lives above it and is shared
//! by every backend. Each backend lives in its own crate and must pass [`contract`] (feature
//! `contract`), the one test suite that pins the behaviour this trait promises.
//!
//! A backend holds SQL only. What every backend would otherwise write again is here, once, over
//! small traits of single statements that each backend implements: the steps of the append
//! transaction and the rules its mutations keep ([`commit`], [`accounts`]), and the algorithms
//! of the reads — pages by filter and by text, binary search by time, users, tiles
//! ([`reads`], [`search`]).
//!
//! What every backend guarantees:
//! - `commit` is atomic and durable before it returns `Ok` (fsync'ed commit);
//! - `commit` appends only at the head it was told (`base_size`), so two writers can never
//!   fork a log ([`CommitError::HeadMoved`]);
//! - the event, tile and checkpoint tables refuse UPDATE and DELETE at the database itself;
//! - every query is scoped to one organization.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use logbook_core::{ActionGrant, ApiTokenId, OrgId, OrgSlug, Timestamp};
use logbook_integrity::tree::{TileId, TileRow};

pub mod accounts;
pub mod commit;
#[cfg(feature = "contract")]
pub mod contract;
#[cfg(feature = "contract")]
pub mod contract_accounts;
mod error;
pub mod reads;
pub mod search;
#[cfg(feature = "testing")]
pub mod testing;

pub use accounts::{AccountMutation, AccountStore};
pub use error::{ApplyError, BoxError, CommitError, MutationError, StoreError};
pub use search::{
    fold_case, merge_newest_first, search_text, search_text_of, EventFilter, EventPage, SHORT_NEEDLE_SCAN_ROWS,
    TRIGRAM_MIN_CHARS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub slug: OrgSlug,
    pub created: Timestamp,
}

/// One event as stored: the canonical leaf plus the columns kept beside it for queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: u64,
    pub time: Timestamp,
    /// Action code.
    pub action: String,
    /// The User column: actor email, or actor identifier.
    pub user: String,
    pub leaf: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

/// The head of a log as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogHead {
    pub size: u64,
    /// Time of the last event (`None` for an empty log).
    pub last_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: [u8; 32],
    /// The signed note, exactly as signed.
    pub note: String,
    pub signed_at: Timestamp,
}

/// A witness's cosignature of one stored checkpoint (C2SP tlog-cosignature), checked against the
/// witness's configured key before it is stored, and kept beside the checkpoint it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCosignature {
    /// The size of the checkpoint it signs (a checkpoint of the same log with that size is stored).
    pub size: u64,
    /// The witness's key name, as in its signature line.
    pub witness: String,
    /// The witness key's 4-byte key ID, as in its signature line.
    pub key_id: u32,
    /// The signature line exactly as the witness answered it (`— <name> <base64>\n`): appended to
    /// the checkpoint's note it makes a note with the log's and the witness's signatures.
    pub line: String,
    /// When the witness says it cosigned (the cosignature's own timestamp, seconds).
    pub cosigned_at: u64,
    /// When Logbook received and stored it.
    pub received_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub org: OrgId,
    pub name: String,
    pub created: Timestamp,
    pub revoked: Option<Timestamp>,
    /// Which action codes (and whether actor type `system`) the token may record.
    pub grant: ActionGrant,
}

/// A service's own action code and the label the console shows for it, registered with the
/// first event that carries the code; never changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceActionLabel {
    pub code: String,
    pub label: String,
}

/// What a retried ingestion request with the same `Idempotency-Key` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: [u8; 32],
    pub first_seq: u64,
    pub count: u64,
}

/// A domain change that must commit in the same transaction as its audit events, or not at all.
/// Later features add variants; each backend applies each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    CreateApiToken {
        name: String,
        token_hash: [u8; 32],
        grant: ActionGrant,
    },
    RevokeApiToken {
        id: ApiTokenId,
    },
    /// What an ingestion request commits with its events: the labels of the service actions it
    /// records for the first time (refused with `ActionLabelConflict` if a code already has
    /// another label), and which events an idempotent request appended (the events of its
    /// submission).
    Ingest {
        token: ApiTokenId,
        labels: Vec<ServiceActionLabel>,
        idempotency: Option<IdempotencyKey>,
    },
    Account(AccountMutation),
}

/// An ingestion request's `Idempotency-Key` and the hash of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutationOutput {
    Done,
    ApiTokenCreated(ApiTokenId),
    UserCreated(logbook_core::UserId),
    InvitationCreated(logbook_core::InvitationId),
    ProtectedUserAdded(logbook_core::ProtectedUserId),
}

/// A mutation and the events committed with it (`first_seq .. first_seq + count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationEntry {
    pub first_seq: u64,
    pub count: u64,
    pub mutation: Mutation,
}

/// Everything one durable transaction appends to one log.
#[derive(Debug, Clone, Default)]
pub struct CommitBatch {
    /// The log size the sequencer built on. The commit fails with `HeadMoved` otherwise.
    pub base_size: u64,
    /// Events `base_size ..` in order.
    pub events: Vec<EventRow>,
    pub tiles: Vec<TileRow>,
    pub mutations: Vec<MutationEntry>,
    pub now: Timestamp,
}

/// Held by a sequencer while it reloads, builds and commits a batch: the appenders of one log
/// are serialized across every process on the database. See [`Store::lock_log`].
#[async_trait]
pub trait LogLock: Send + fmt::Debug {
    async fn unlock(self: Box<Self>);
}

/// The lock of a backend with a single writer, where `commit`'s own head check suffices.
#[derive(Debug)]
pub struct NoLock;

#[async_trait]
impl LogLock for NoLock {
    async fn unlock(self: Box<Self>) {}
}

/// The storage trait. Object-safe: the backend is chosen once, at start, from the URL.
#[async_trait]
pub trait Store: AccountStore + Send + Sync + fmt::Debug + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Cheap round trip to the database, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Returns the organization, creating it (and its empty log) if needed.
    async fn ensure_org(&self, slug: &OrgSlug, now: Timestamp) -> Result<Org, StoreError>;
    async fn org(&self, slug: &OrgSlug) -> Result<Option<Org>, StoreError>;
    async fn orgs(&self) -> Result<Vec<Org>, StoreError>;

    async fn log_head(&self, org: OrgId) -> Result<LogHead, StoreError>;

    /// Takes the log's append lock, shared by every process on the database. Without it two
    /// processes would still never fork a log (`commit` checks the head), but the one that
    /// keeps losing the race could starve.
    async fn lock_log(&self, org: OrgId) -> Result<Box<dyn LogLock>, StoreError>;

    /// Appends a batch in one durable transaction. Returns one output per mutation. Takes the
    /// batch by value: it is large, and a blocking backend moves it to its writer thread.
    async fn commit(&self, org: OrgId, batch: CommitBatch) -> Result<Vec<MutationOutput>, CommitError>;

    /// Events with `seq` in `seqs`, in `seq` order.
    async fn events(&self, org: OrgId, seqs: Range<u64>) -> Result<Vec<EventRow>, StoreError>;

    /// One page of the audit log, newest first: events matching `filter` with `seq < before`
    /// (the keyset cursor), at most `limit`. Cost depends on the page size, not on how deep the
    /// page is.
    ///
    /// A text filter is answered from the backend's trigram index for the events the search
    /// indexer has reached ([`Store::search_indexed`]) and by decoding the rows above that
    /// point, so an event is found from the moment its commit returns.
    async fn query_events(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// [`Store::query_events`] for a request someone waits for (a list or a search): the
    /// database stops the work once it has run for `deadline` (SQLite: a progress handler on
    /// the reading connection; PostgreSQL: `statement_timeout` in the read's transaction), and
    /// the answer is then [`StoreError::Deadline`]. So a costly filter cannot keep a connection
    /// and a core busy after its client has given up.
    async fn query_events_within(
        &self,
        org: OrgId,
        filter: &EventFilter,
        before: u64,
        limit: usize,
        deadline: std::time::Duration,
    ) -> Result<EventPage, StoreError>;

    /// Adds the [`search_text`] of up to `max` events past [`Store::search_indexed`] to the
    /// free-text index, in one transaction; returns how many. Safe to call from several
    /// processes at once. Runs outside the append's commit (see ARCHITECTURE.md, "Querying").
    async fn index_search_text(&self, org: OrgId, max: usize) -> Result<u64, StoreError>;

    /// How many events (from `seq` 0) the free-text index holds.
    async fn search_indexed(&self, org: OrgId) -> Result<u64, StoreError>;

    /// The first `seq` whose time is at or after `t` (the log's size when there is none). Time
    /// never decreases along `seq`, so this needs no time index.
    async fn seq_at_or_after(&self, org: OrgId, t: Timestamp) -> Result<u64, StoreError>;

    /// Distinct User column values starting with `prefix`, sorted, at most `limit`: what the User
    /// filter offers.
    async fn users(&self, org: OrgId, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Hash data for each tile, at least as wide as asked (wider data is a prefix-compatible
    /// extension). Level-0 partial tiles come from the events' leaf hashes.
    async fn read_tiles(&self, org: OrgId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Every stored tile row (any width) of `level` with index in `indexes`, for audits.
    async fn tile_rows(&self, org: OrgId, level: u8, indexes: Range<u64>) -> Result<Vec<TileRow>, StoreError>;

    /// Stores a checkpoint unless one of the same or larger size exists; returns whether it
    /// was stored.
    async fn add_checkpoint(&self, org: OrgId, checkpoint: &StoredCheckpoint) -> Result<bool, StoreError>;
    async fn checkpoints(&self, org: OrgId) -> Result<Vec<StoredCheckpoint>, StoreError>;
    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Stores a witness's cosignature of the stored checkpoint of `org` with its `size`, unless
    /// that witness key (name and key ID) already cosigned that size; returns whether it was
    /// stored. A cosignature of a size with no stored checkpoint is refused (an error).
    async fn add_cosignature(&self, org: OrgId, cosignature: &StoredCosignature) -> Result<bool, StoreError>;
    /// The cosignatures of the checkpoint of `org` with `size`, by witness name and key ID.
    async fn cosignatures(&self, org: OrgId, size: u64) -> Result<Vec<StoredCosignature>, StoreError>;
    /// Per witness key (name and key ID), its cosignature of the largest size of `org`, by
    /// witness name and key ID: how far each witness has seen the log.
    async fn newest_cosignatures(&self, org: OrgId) -> Result<Vec<StoredCosignature>, StoreError>;
    /// The saved state of `org`'s scheduled full self-check, as last saved. Opaque to the
    /// store: the log service seals it (whoever can write the database must not be able to
    /// forge it), so a backend only keeps the bytes.
    async fn self_check_state(&self, org: OrgId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the saved state of `org`'s full self-check.
    async fn save_self_check_state(&self, org: OrgId, state: &[u8]) -> Result<(), StoreError>;

    async fn api_token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiToken>, StoreError>;
    async fn api_tokens(&self, org: OrgId) -> Result<Vec<ApiToken>, StoreError>;
    async fn idempotency_record(&self, token: ApiTokenId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// The service actions registered in `org`'s log, by code.
    async fn service_actions(&self, org: OrgId) -> Result<Vec<ServiceActionLabel>, StoreError>;

    /// For copying a store (`logbook migrate-store`): every token of `org` with its hash.
    async fn api_token_rows(&self, org: OrgId) -> Result<Vec<(ApiToken, [u8; 32])>, StoreError>;
    /// For copying a store: adds a token as it was (name, hash, times) to `org`.
    async fn import_api_token(&self, org: OrgId, token: &ApiToken, token_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// For copying a store: registers a service action in `org` as it was.
    async fn import_service_action(&self, org: OrgId, action: &ServiceActionLabel) -> Result<(), StoreError>;
}
