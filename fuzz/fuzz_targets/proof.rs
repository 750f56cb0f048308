//! Inclusion and consistency proofs for the sizes and seqs a client asks for
//! (`GET /api/v1/proofs/...`): `tiles_for_inclusion`/`tiles_for_consistency` name the tiles,
//! `prove_*` compute the proof from exactly those tiles, `verify`/`verify_against` check it.
//!
//! The tree: 66,000 fixed leaves (past 65,536, so three tile levels), with an independent
//! RFC 6962 root computed here. Input: seq, size and `from` (u32 each), then a mutation.
//! Checks: nothing panics; the named tiles exist at that size and suffice; every proof
//! verifies and carries the real leaf hash and roots; a mutated inclusion proof that still
//! verifies against the real checkpoint of its size names the real leaf of its seq; a
//! mutated consistency proof that still verifies and ends at the real new root starts at the
//! real old root.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logbook_integrity::checkpoint::VerifiedCheckpoint;
use logbook_integrity::proof::{
    prove_consistency, prove_inclusion, tiles_for_consistency, tiles_for_inclusion, TileSet,
};
use logbook_integrity::tree::TileId;
use logbook_integrity::{node_hash, record_hash, Hash, EMPTY_HASH};

const N: u64 = 66_000;

/// `levels[l][i]`: the root of the perfect subtree of 2^l leaves starting at leaf i·2^l.
fn levels() -> &'static Vec<Vec<Hash>> {
    static L: OnceLock<Vec<Vec<Hash>>> = OnceLock::new();
    L.get_or_init(|| {
        let mut levels = vec![(0..N).map(|i| record_hash(&i.to_be_bytes())).collect::<Vec<_>>()];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().expect("non-empty");
            let next = prev.chunks_exact(2).map(|p| node_hash(p[0], p[1])).collect();
            levels.push(next);
        }
        levels
    })
}

/// RFC 6962 MTH of the leaves [lo, lo + n), straight from the definition.
fn mth(lo: u64, n: u64) -> Hash {
    if n == 0 {
        return EMPTY_HASH;
    }
    if n.is_power_of_two() && lo % n == 0 {
        let l = n.trailing_zeros() as usize;
        return levels()[l][(lo >> l) as usize];
    }
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    node_hash(mth(lo, k), mth(lo + k, n - k))
}

fn tiles(ids: &[TileId], size: u64) -> TileSet {
    let mut set = TileSet::new();
    for id in ids {
        let level = usize::from(id.level) * 8;
        let start = (id.index << 8) as usize;
        let end = start + id.width as usize;
        assert!(id.width >= 1 && id.width <= 256, "{id:?}");
        assert!(((end as u64) << level) <= size, "tile {id:?} does not exist at size {size}");
        let data: Vec<u8> = levels()[level][start..end].iter().flat_map(|h| h.0).collect();
        set.insert(*id, data);
    }
    set
}

fn u32_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 4];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from(u32::from_be_bytes(b))
}

fn mutate(hashes: &mut Vec<Hash>, nums: [&mut u64; 2], roots: [&mut Hash; 2], m: &[u8]) {
    let Some((&kind, m)) = m.split_first() else { return };
    let a = usize::from(m.first().copied().unwrap_or(0));
    let b = m.get(1).copied().unwrap_or(1);
    let [x, y] = nums;
    let [r0, r1] = roots;
    match kind % 8 {
        0 if !hashes.is_empty() => {
            let n = hashes.len();
            hashes[a % n].0[usize::from(b) % 32] ^= 1 << (b % 8);
        }
        1 => *x = u32_at(m, 1) % (N + 2),
        2 => *y = u32_at(m, 1) % (N + 2),
        3 if !hashes.is_empty() => {
            let n = hashes.len();
            hashes.remove(a % n);
        }
        4 => {
            let h = hashes.get(a % hashes.len().max(1)).copied().unwrap_or(EMPTY_HASH);
            hashes.insert(a % (hashes.len() + 1), h);
        }
        5 if hashes.len() >= 2 => {
            let n = hashes.len();
            hashes.swap(a % n, usize::from(b) % n);
        }
        6 => r0.0[a % 32] ^= 1 << (b % 8),
        7 => r1.0[a % 32] ^= 1 << (b % 8),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let size = 1 + u32_at(data, 0) % N;
    let seq = u32_at(data, 4) % size;
    let from = 1 + u32_at(data, 8) % size;
    let m = data.get(12..).unwrap_or_default();

    // Inclusion.
    let ids = tiles_for_inclusion(seq, size).expect("seq < size");
    let p = prove_inclusion(seq, size, &tiles(&ids, size)).expect("the named tiles suffice");
    assert_eq!((p.leaf_hash, p.root), (levels()[0][seq as usize], mth(0, size)));
    let cp = |size: u64| VerifiedCheckpoint { origin: "logbook.fuzz/default".into(), size, root: mth(0, size) };
    assert!(p.verify_against(&cp(size)).is_ok());
    let mut q = p.clone();
    mutate(&mut q.hashes, [&mut q.seq, &mut q.size], [&mut q.leaf_hash, &mut q.root], m);
    if q != p && (1..=N).contains(&q.size) && q.verify_against(&cp(q.size)).is_ok() {
        assert_eq!(q.leaf_hash, levels()[0][q.seq as usize], "a forged inclusion proof verified: {q:?}");
    }

    // Consistency.
    let ids = tiles_for_consistency(from, size).expect("1 <= from <= size");
    let c = prove_consistency(from, size, &tiles(&ids, size)).expect("the named tiles suffice");
    assert_eq!((c.old_root, c.new_root), (mth(0, from), mth(0, size)));
    let mut d = c.clone();
    mutate(&mut d.hashes, [&mut d.from, &mut d.to], [&mut d.old_root, &mut d.new_root], m);
    if d != c && d.to <= N && d.verify().is_ok() && d.new_root == mth(0, d.to) {
        assert_eq!(d.old_root, mth(0, d.from), "a forged consistency proof verified: {d:?}");
    }
});
