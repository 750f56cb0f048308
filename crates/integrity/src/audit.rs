//! Recomputes a log from its stored events and compares everything stored about it.
//!
//! The [`Auditor`] is fed the stored events in `seq` order, a page at a time, together with the
//! stored tiles the pages complete; at the end it is given the stored tiles at the edge. It
//! checks, for each event: `seq` is gapless, the leaf names this organization and this `seq`,
//! the indexed columns agree with the leaf, `time` never goes backwards, and the stored leaf
//! hash is the hash of the leaf. Then every stored tile must equal the recomputed one, every
//! checkpoint root must equal the recomputed root at its size, no checkpoint may commit to more
//! events than are stored, and every event must be covered by a signed checkpoint.
//!
//! Each finding names the first `seq` it concerns, so the report names the first bad `seq`.

use std::fmt;

use logbook_core::{leaf, Timestamp};

use crate::tree::{hashes_of, TileRow, TreeEdge};
use crate::{record_hash, to_hex, Hash, HASH_SIZE};

/// A stored event as the auditor sees it: the leaf and the columns stored beside it.
#[derive(Debug, Clone, Copy)]
pub struct StoredEventRef<'a> {
    pub seq: u64,
    pub time: Timestamp,
    pub action: &'a str,
    pub user: &'a str,
    pub leaf: &'a [u8],
    pub leaf_hash: &'a [u8],
}

/// A checkpoint whose signature was already checked: stored, or supplied by the auditor.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointClaim {
    pub size: u64,
    pub root: Hash,
    /// Where it came from, for the report (e.g. "stored checkpoint", a file name).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The first `seq` the problem concerns, when there is one.
    pub seq: Option<u64>,
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(s) => write!(f, "seq {s}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub org: String,
    pub size: u64,
    pub root: Hash,
    pub checkpoints_checked: usize,
    /// Sorted by `seq`, findings without one last.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn first_bad_seq(&self) -> Option<u64> {
        self.findings.first().and_then(|f| f.seq)
    }
}

/// At most this many findings are kept, those with the lowest seqs: the first ones matter, the
/// rest are mostly consequences.
const MAX_FINDINGS: usize = 1000;

#[derive(Debug)]
pub struct Auditor {
    org: String,
    edge: TreeEdge,
    next_seq: u64,
    last_time: Option<Timestamp>,
    claims: Vec<CheckpointClaim>,
    next_claim: usize,
    last_good_claim: u64,
    completed: Vec<TileRow>,
    findings: Vec<Finding>,
    checked: usize,
}

impl Auditor {
    pub fn new(org: &str, mut claims: Vec<CheckpointClaim>) -> Self {
        claims.sort_by_key(|c| c.size);
        let mut a = Self {
            org: org.to_owned(),
            edge: TreeEdge::new(),
            next_seq: 0,
            last_time: None,
            claims,
            next_claim: 0,
            last_good_claim: 0,
            completed: Vec::new(),
            findings: Vec::new(),
            checked: 0,
        };
        a.check_claims();
        a
    }

    /// An auditor that continues a log from `edge`, the tree of its first `edge.size()` events
    /// (e.g. restored from stored tiles, which the caller need not trust: a claim at a larger
    /// size is met only if the edge and every event fed after it are what was signed). It is
    /// fed the events from `edge.size()` on and checks them as [`Auditor::new`]'s does, except
    /// that time is compared only between the events fed. Claims below `edge.size()` are
    /// ignored. Used by the self-check, which audits only the newest part of a log.
    pub fn resume(org: &str, edge: TreeEdge, mut claims: Vec<CheckpointClaim>) -> Self {
        let start = edge.size();
        claims.retain(|c| c.size >= start);
        claims.sort_by_key(|c| c.size);
        let mut a = Self {
            org: org.to_owned(),
            edge,
            next_seq: start,
            last_time: None,
            claims,
            next_claim: 0,
            last_good_claim: start,
            completed: Vec::new(),
            findings: Vec::new(),
            checked: 0,
        };
        a.check_claims();
        a
    }

    /// Also compares the time of the first event fed with `time`, that of the event before it
    /// (a resumed audit that remembers where it stopped).
    pub fn with_last_time(mut self, time: Option<Timestamp>) -> Self {
        self.last_time = time;
        self
    }

    /// The time of the last event fed (of a well-formed leaf).
    pub fn last_time(&self) -> Option<Timestamp> {
        self.last_time
    }

    /// The findings so far (unsorted; [`Auditor::finish`] sorts and trims them).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    fn find(&mut self, seq: Option<u64>, problem: impl Into<String>) {
        self.findings.push(Finding { seq, problem: problem.into() });
        if self.findings.len() >= 2 * MAX_FINDINGS {
            self.trim_findings();
        }
    }

    fn trim_findings(&mut self) {
        self.findings.sort_by_key(|f| (f.seq.is_none(), f.seq));
        self.findings.truncate(MAX_FINDINGS);
    }

    /// A problem somewhere in a range of seqs (a subtree, or between two checkpoints). A precise
    /// finding already inside the range names the first bad seq; this one is its consequence.
    fn find_in_range(&mut self, range: std::ops::Range<u64>, problem: String) {
        let first = self.findings.iter().filter_map(|f| f.seq).filter(|s| range.contains(s)).min();
        self.find(Some(first.unwrap_or(range.start)), problem);
    }

    pub fn size(&self) -> u64 {
        self.edge.size()
    }

    pub fn edge(&self) -> &TreeEdge {
        &self.edge
    }

    /// Feeds the next stored event (in `seq` order).
    pub fn event(&mut self, row: StoredEventRef<'_>) {
        let seq = row.seq;
        if seq > self.next_seq {
            let first = self.next_seq;
            self.find(Some(first), format!("events {first}..={} are missing", seq - 1));
        } else if seq < self.next_seq {
            self.find(Some(seq), "stored out of order or twice");
        }
        self.next_seq = seq + 1;

        match leaf::keys(row.leaf) {
            Err(e) => self.find(Some(seq), format!("the leaf is malformed ({e})")),
            Ok(k) => {
                if k.org != self.org {
                    self.find(Some(seq), format!("the leaf belongs to organization {:?}", k.org));
                }
                if k.seq != seq {
                    self.find(Some(seq), format!("the leaf records seq {} (moved or reordered)", k.seq));
                }
                if k.time != row.time {
                    self.find(Some(seq), "the stored time differs from the leaf");
                }
                if k.action != row.action {
                    self.find(Some(seq), "the stored action differs from the leaf");
                }
                if k.user != row.user {
                    self.find(Some(seq), "the stored user differs from the leaf");
                }
                if self.last_time.is_some_and(|t| k.time < t) {
                    self.find(Some(seq), "time goes backwards");
                }
                self.last_time = Some(k.time);
            }
        }

        let h = record_hash(row.leaf);
        if row.leaf_hash != h.0.as_slice() {
            self.find(Some(seq), "the leaf hash does not match the leaf: the event was altered");
        }
        let mut full = Vec::new();
        self.edge.push(h, &mut full);
        self.completed.extend(full);
        self.check_claims();
    }

    fn check_claims(&mut self) {
        let size = self.edge.size();
        while let Some(c) = self.claims.get(self.next_claim) {
            if c.size != size {
                break;
            }
            let (root, source, csize) = (c.root, c.source.clone(), c.size);
            self.checked += 1;
            self.next_claim += 1;
            if root == self.edge.root() {
                self.last_good_claim = csize;
            } else {
                let from = self.last_good_claim.min(csize.saturating_sub(1));
                self.find_in_range(
                    from..csize,
                    format!("{source} for size {csize} has root {}, the stored events give {}: an event in seqs {from}..{csize} was changed", to_hex(&root), to_hex(&self.edge.root())),
                );
            }
        }
    }

    /// Full tiles recomputed since the last call: the caller fetches the stored rows at their
    /// coordinates and hands both to [`Auditor::compare_tiles`].
    pub fn take_completed(&mut self) -> Vec<TileRow> {
        std::mem::take(&mut self.completed)
    }

    /// Compares recomputed full tiles with every stored row at their coordinates.
    pub fn compare_tiles(&mut self, computed: &[TileRow], stored: &[TileRow]) {
        for c in computed {
            let mut has_full = false;
            for s in stored.iter().filter(|s| s.id.level == c.id.level && s.id.index == c.id.index) {
                has_full |= s.id.is_full();
                self.compare_row(s, &hashes_of(&c.hashes));
            }
            if !has_full {
                let seq = c.id.first_seq_of_entry(0);
                self.find(Some(seq), format!("stored tree tile {}/{} is missing", c.id.level, c.id.index));
            }
        }
    }

    fn compare_row(&mut self, stored: &TileRow, recomputed: &[Hash]) {
        let want = stored.id.width as usize;
        if stored.hashes.len() != want * HASH_SIZE || want > recomputed.len() {
            let seq = stored.id.first_seq_of_entry(0);
            self.find(
                Some(seq),
                format!("stored tree tile {}/{} has the wrong size", stored.id.level, stored.id.index),
            );
            return;
        }
        let have = hashes_of(&stored.hashes);
        if let Some(i) = have.iter().zip(recomputed).position(|(a, b)| a != b) {
            let i = i as u64;
            let seqs = stored.id.first_seq_of_entry(i)..stored.id.first_seq_of_entry(i + 1);
            self.find_in_range(
                seqs,
                format!(
                    "stored tree tile {}/{} differs from the events at entry {i}",
                    stored.id.level, stored.id.index
                ),
            );
        }
    }

    /// Ends the audit. `edge_rows` are all stored tile rows at or beyond the edge of the
    /// recomputed tree (for each level, index ≥ the edge tile's index).
    pub fn finish(mut self, edge_rows: &[TileRow]) -> Report {
        let size = self.edge.size();
        let edge_index = |level: u8| size >> (8 * (u32::from(level) + 1));
        for row in edge_rows {
            let entries = self.edge.edge_entries(row.id.level).to_vec();
            let beyond = row.id.index > edge_index(row.id.level)
                || (row.id.index == edge_index(row.id.level) && row.id.width as usize > entries.len());
            if beyond {
                self.find(
                    Some(size),
                    format!(
                        "stored tree data reaches beyond the {size} stored events: events were removed from the end"
                    ),
                );
            } else if row.id.index == edge_index(row.id.level) {
                self.compare_row(row, &entries);
            }
        }
        let beyond: Vec<String> = self.claims[self.next_claim..]
            .iter()
            .map(|c| {
                format!("{} commits to {} events but only {size} are stored: the log was truncated", c.source, c.size)
            })
            .collect();
        for problem in beyond {
            self.find(Some(size), problem);
        }
        let covered = self.claims.iter().map(|c| c.size).max().unwrap_or(0);
        if covered < size {
            self.find(Some(covered), format!("events from seq {covered} on are not covered by any signed checkpoint"));
        }
        self.trim_findings();
        Report {
            org: self.org,
            size,
            root: self.edge.root(),
            checkpoints_checked: self.checked,
            findings: self.findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_core::{Action, Actor, ActorKind, Event, EventId, NewEvent, OrgSlug, Outcome, Source};

    struct Row {
        seq: u64,
        time: Timestamp,
        action: String,
        user: String,
        leaf: Vec<u8>,
        leaf_hash: Vec<u8>,
    }

    fn make(n: u64) -> (Vec<Row>, Vec<TileRow>, Hash) {
        let mut rows = Vec::new();
        let mut edge = TreeEdge::new();
        let mut tiles = Vec::new();
        for seq in 0..n {
            let e = Event {
                org: OrgSlug::parse("acme").unwrap(),
                seq,
                id: EventId::from_random_bytes([seq as u8; 16]),
                time: Timestamp::from_micros(1_000_000 + seq as i64),
                body: NewEvent {
                    action: Action::LoginSuccess.into(),
                    actor: Actor { kind: ActorKind::User, id: format!("u{seq}"), email: None },
                    target: None,
                    details: "Method: password".into(),
                    fields: Default::default(),
                    outcome: Outcome::Success,
                    source: Source::default(),
                    recorded_by: "test".into(),
                },
            };
            let leaf = leaf::encode(&e);
            let h = record_hash(&leaf);
            tiles.extend(edge.append_all([h]));
            rows.push(Row {
                seq,
                time: e.time,
                action: "login.success".into(),
                user: format!("u{seq}"),
                leaf,
                leaf_hash: h.0.to_vec(),
            });
        }
        (rows, tiles, edge.root())
    }

    fn audit(rows: &[Row], tiles: &[TileRow], claims: Vec<CheckpointClaim>) -> Report {
        let mut a = Auditor::new("acme", claims);
        for r in rows {
            a.event(StoredEventRef {
                seq: r.seq,
                time: r.time,
                action: &r.action,
                user: &r.user,
                leaf: &r.leaf,
                leaf_hash: &r.leaf_hash,
            });
            let done = a.take_completed();
            let stored: Vec<_> = tiles
                .iter()
                .filter(|t| done.iter().any(|d| d.id.level == t.id.level && d.id.index == t.id.index))
                .cloned()
                .collect();
            a.compare_tiles(&done, &stored);
        }
        let size = a.size();
        let edge: Vec<_> =
            tiles.iter().filter(|t| t.id.index >= size >> (8 * (u32::from(t.id.level) + 1))).cloned().collect();
        a.finish(&edge)
    }

    fn claim(size: u64, root: Hash) -> CheckpointClaim {
        CheckpointClaim { size, root, source: "checkpoint".into() }
    }

    #[test]
    fn intact_log_passes() {
        let (rows, tiles, root) = make(700);
        let r = audit(&rows, &tiles, vec![claim(700, root)]);
        assert!(r.is_intact(), "{:?}", r.findings);
        assert_eq!(r.root, root);
        assert_eq!(r.checkpoints_checked, 1);
    }

    #[test]
    fn each_kind_of_damage_names_the_first_bad_seq() {
        let (rows, tiles, root) = make(700);
        let claims = || vec![claim(700, root)];

        let mut r = make(700).0;
        r[300].leaf[40] ^= 1;
        assert_eq!(audit(&r, &tiles, claims()).first_bad_seq(), Some(300), "altered leaf");

        let mut r = make(700).0;
        r[10].user = "mallory".into();
        assert_eq!(audit(&r, &tiles, claims()).first_bad_seq(), Some(10), "altered column");

        let mut r = make(700).0;
        r.remove(500);
        assert_eq!(audit(&r, &tiles, claims()).first_bad_seq(), Some(500), "deleted event");

        let mut r = make(700).0;
        r.swap(5, 6);
        let (a, b) = r.split_at_mut(6);
        std::mem::swap(&mut a[5].seq, &mut b[0].seq);
        assert_eq!(audit(&r, &tiles, claims()).first_bad_seq(), Some(5), "reordered events");

        let mut t = tiles.clone();
        let i = t.iter().position(|t| t.id.level == 0 && t.id.index == 1).unwrap();
        t[i].hashes[32 * 7] ^= 0x80;
        let rep = audit(&rows, &t, claims());
        assert_eq!(rep.first_bad_seq(), Some(256 + 7), "altered tile: {:?}", rep.findings);

        let truncated = audit(&rows[..600], &tiles, claims());
        assert_eq!(truncated.first_bad_seq(), Some(600), "{:?}", truncated.findings);

        // A consistent rewrite of the whole store from seq 400 on: only checkpoints catch it.
        let (mut r2, _, _) = make(700);
        for row in &mut r2[400..] {
            row.user = format!("x{}", row.seq);
            let mut e = leaf::decode(&row.leaf).unwrap();
            e.body.actor.id = row.user.clone();
            row.leaf = leaf::encode(&e);
            row.leaf_hash = record_hash(&row.leaf).0.to_vec();
        }
        let mut edge = TreeEdge::new();
        let mut t2 = Vec::new();
        for row in &r2 {
            let mut h = [0u8; 32];
            h.copy_from_slice(&row.leaf_hash);
            t2.extend(edge.append_all([Hash(h)]));
        }
        let (_, _, root_at_300) = make(300);
        let rep = audit(&r2, &t2, vec![claim(300, root_at_300), claim(700, root)]);
        assert_eq!(rep.first_bad_seq(), Some(300), "{:?}", rep.findings);
    }

    #[test]
    fn the_first_bad_seq_survives_a_flood_of_later_findings() {
        let (rows, tiles, root) = make(3000);
        let mut r = make(3000).0;
        // A forged, self-consistent event at 100 shifts every later one: thousands of findings
        // after it, and only the stored tile still knows the one at 100.
        let forged = {
            let mut e = leaf::decode(&r[100].leaf).unwrap();
            e.body.details = "forged".into();
            let l = leaf::encode(&e);
            (record_hash(&l).0.to_vec(), l)
        };
        for i in (100..2999).rev() {
            r[i + 1].leaf = r[i].leaf.clone();
            r[i + 1].leaf_hash = r[i].leaf_hash.clone();
        }
        r[100].leaf_hash = forged.0;
        r[100].leaf = forged.1;
        let rep = audit(&r, &tiles, vec![claim(3000, root)]);
        assert!(rep.findings.len() <= MAX_FINDINGS);
        assert_eq!(rep.first_bad_seq(), Some(100), "{:?}", &rep.findings[..3]);
        drop(rows);
    }

    #[test]
    fn a_resumed_audit_checks_the_newest_part_against_the_claims() {
        let (rows, tiles, root) = make(700);
        let (_, _, root500) = make(500);
        let resume = |rows: &[Row], tiles: &[TileRow], claims| {
            let mut edge = TreeEdge::new();
            edge.append_all(rows[..300].iter().map(|r| Hash(r.leaf_hash.clone().try_into().unwrap())));
            let mut a = Auditor::resume("acme", edge, claims);
            for r in &rows[300..] {
                a.event(StoredEventRef {
                    seq: r.seq,
                    time: r.time,
                    action: &r.action,
                    user: &r.user,
                    leaf: &r.leaf,
                    leaf_hash: &r.leaf_hash,
                });
            }
            let done = a.take_completed();
            a.compare_tiles(&done, tiles);
            a.finish(&[])
        };
        let ok = resume(&rows, &tiles, vec![claim(100, root), claim(500, root500), claim(700, root)]);
        assert!(ok.is_intact(), "{:?}", ok.findings);
        assert_eq!((ok.size, ok.root, ok.checkpoints_checked), (700, root, 2));

        let mut bad = make(700).0;
        bad[450].leaf[40] ^= 1;
        assert_eq!(resume(&bad, &tiles, vec![claim(700, root)]).first_bad_seq(), Some(450));
        // A base edge that is not the signed tree's is caught by the claim beyond it.
        let mut forged = make(700).0;
        forged[10].leaf_hash[0] ^= 1;
        let r = resume(&forged, &tiles, vec![claim(700, root)]);
        assert!(!r.is_intact());
        assert_eq!(r.first_bad_seq(), Some(300), "{:?}", r.findings);
    }

    #[test]
    fn events_not_covered_by_a_checkpoint_are_reported() {
        let (rows, tiles, _) = make(10);
        let (_, _, root5) = make(5);
        let rep = audit(&rows, &tiles, vec![claim(5, root5)]);
        assert_eq!(rep.first_bad_seq(), Some(5));
    }
}
