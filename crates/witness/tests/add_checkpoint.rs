//! The witness's answers, over HTTP, to real checkpoints and proofs: every status the spec
//! names, forks, and concurrent requests.

#![allow(clippy::unwrap_used)]

use logbook_integrity::cosignature::CosignatureVerifier;
use logbook_integrity::witness_protocol::{parse_size_body, AddCheckpointRequest, SIZE_CONTENT_TYPE};
use logbook_test_support::witness::Answer;
use logbook_test_support::{TestWitness, ToyLog};

const ORIGIN: &str = "log.test/default";

fn body_of(note: &str) -> &str {
    &note[..=note.find("\n\n").unwrap()]
}

/// A 200 whose one line is a valid cosignature of `req`'s checkpoint by `w`.
fn assert_cosigned(w: &TestWitness, req: &AddCheckpointRequest, a: &Answer) {
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.content_type.starts_with("text/plain"), "{a:?}");
    let v = CosignatureVerifier::new(&w.verifier_key).unwrap();
    assert!(a.body.ends_with('\n') && a.body.matches('\n').count() == 1, "{a:?}");
    v.verify_line(body_of(&req.checkpoint), &a.body).unwrap();
    v.verify_note(&format!("{}{}", req.checkpoint, a.body)).unwrap();
}

fn assert_conflict(a: &Answer, size: u64) {
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(a.content_type, SIZE_CONTENT_TYPE, "{a:?}");
    assert_eq!(a.body, format!("{size}\n"));
    assert_eq!(parse_size_body(a.body.as_bytes()).unwrap(), size);
}

#[tokio::test]
async fn every_answer_of_the_spec() {
    let w = TestWitness::spawn(1).await;
    let mut log = ToyLog::new(ORIGIN, 7);
    log.grow(5);

    // Unknown log: 404, even with a valid signature.
    let a = w.send(&log.request(0)).await;
    assert_eq!(a.status, 404, "{a:?}");
    w.add_log(ORIGIN, log.verifier_key());

    // Signed by another key for the same origin: 403.
    let mut impostor = ToyLog::new(ORIGIN, 8);
    impostor.grow(5);
    assert_eq!(w.send(&impostor.request(0)).await.status, 403);
    // Malformed: 400.
    assert_eq!(w.post("old x\n\n").await.status, 400);
    assert_eq!(w.post(format!("old 0\n\n{}", "garbage\n")).await.status, 400);
    assert_eq!(w.post(log.request(0).to_body().replace("old 0", "old 00")).await.status, 400);
    assert_eq!(w.held(ORIGIN), (0, None), "nothing refused changed the state");

    // The first checkpoint, from 0: cosigned.
    let first = log.request(0);
    assert_cosigned(&w, &first, &w.send(&first).await);
    let root5 = log.root();
    assert_eq!(w.held(ORIGIN), (5, Some(root5)));

    // An old size that is not what the witness holds: 409 naming 5.
    log.grow(3);
    assert_conflict(&w.send(&log.request(0)).await, 5);
    assert_conflict(&w.send(&log.request(4)).await, 5);
    // Old size larger than the checkpoint: 400 (before the 409).
    let mut req = log.request(5);
    req.old_size = 9;
    req.proof.clear();
    assert_eq!(w.send(&req).await.status, 400);
    // A proof that does not prove 5 -> 8: 422.
    let mut bad = log.request(5);
    bad.proof = log.proof(4);
    assert_eq!(w.send(&bad).await.status, 422);
    let mut none = log.request(5);
    none.proof.clear();
    assert_eq!(w.send(&none).await.status, 422);
    assert_eq!(w.held(ORIGIN), (5, Some(root5)));

    // The right proof: 200, and the state moves to 8.
    let next = log.request(5);
    assert_cosigned(&w, &next, &w.send(&next).await);
    assert_eq!(w.held(ORIGIN), (8, Some(log.root())));
    // The same checkpoint again: cosigned again.
    let again = log.request(8);
    assert_cosigned(&w, &again, &w.send(&again).await);
    // A body over the limit.
    assert_eq!(w.post(vec![b'a'; 70 * 1024]).await.status, 413);
    w.stop().await;
}

#[tokio::test]
async fn a_forged_fork_is_refused_and_the_state_is_unchanged() {
    let w = TestWitness::spawn(2).await;
    let mut log = ToyLog::new(ORIGIN, 7);
    w.add_log(ORIGIN, log.verifier_key());
    log.grow(10);
    assert_eq!(w.send(&log.request(0)).await.status, 200);
    let held = w.held(ORIGIN);
    assert_eq!(held, (10, Some(log.root())));

    // The same origin and key, another tree from leaf 6 on.
    let mut fork = log.fork(6, "forged");
    fork.grow(4);
    assert_eq!(fork.size(), 10);
    assert_ne!(fork.root(), log.root());
    // Same size, other root: 409.
    assert_conflict(&w.send(&fork.request(10)).await, 10);
    // Larger, with the fork's own (valid for its tree) proof from 10: 422.
    fork.grow(5);
    assert_eq!(w.send(&fork.request(10)).await.status, 422);
    // A rollback to a smaller tree: from 10, a malformed request (400); from anything else, 409
    // naming 10. Starting the fork over from 0: 409.
    let mut small = log.fork(4, "rollback");
    small.grow(1);
    assert_eq!(w.send(&small.request(10)).await.status, 400);
    assert_conflict(&w.send(&small.request(5)).await, 10);
    assert_conflict(&w.send(&small.request(0)).await, 10);
    assert_conflict(&w.send(&fork.request(0)).await, 10);
    assert_eq!(w.held(ORIGIN), held, "the witness still holds the real tree");

    // The real log goes on.
    log.grow(3);
    assert_eq!(w.send(&log.request(10)).await.status, 200);
    assert_eq!(w.held(ORIGIN), (13, Some(log.root())));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_requests_from_the_same_size_exactly_one_wins() {
    let w = TestWitness::spawn(3).await;
    let mut base = ToyLog::new(ORIGIN, 7);
    w.add_log(ORIGIN, base.verifier_key());
    base.grow(3);
    assert_eq!(w.send(&base.request(0)).await.status, 200);
    for round in 0..20 {
        let from = base.size();
        // Two different checkpoints, each a valid extension of what the witness holds.
        let mut a = base.fork(from, &format!("a{round}"));
        a.grow(1 + round % 3);
        let mut b = base.fork(from, &format!("b{round}"));
        b.grow(2 + round % 2);
        let (qa, qb) = (a.request(from), b.request(from));
        let (ra, rb) = tokio::join!(w.send(&qa), w.send(&qb));
        let (winner, loser) = match (ra.status, rb.status) {
            (200, 409) => (a, rb),
            (409, 200) => (b, ra),
            other => panic!("round {round}: {other:?}: {ra:?} {rb:?}"),
        };
        assert_conflict(&loser, winner.size());
        assert_eq!(w.held(ORIGIN), (winner.size(), Some(winner.root())), "round {round}");
        base = winner;
    }
    w.stop().await;
}
