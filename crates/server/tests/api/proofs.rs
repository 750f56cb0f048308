//! Checkpoints and proofs verify with the public key alone.

use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_integrity::from_hex;
use logbook_integrity::proof::{check_consistency, check_inclusion};
use logbook_test_support::on_both_stores;
use serde_json::Value;

use crate::helpers::{login_failed, ApiApp};

on_both_stores!(fixture = crate::helpers::reader; proofs_verify_with_the_public_key_alone);

async fn proofs_verify_with_the_public_key_alone(app: ApiApp) {
    let batch: Vec<Value> = (0..600).map(|i| login_failed(&format!("u{i}"))).collect();
    app.post_events(&Value::Array(batch)).await;
    let size = app.size().await;
    let note = app.checkpoint_covering(size).await;
    let (_, key) = app.get("/api/v1/public-key").await;
    let cp = CheckpointVerifier::new(&key).unwrap().verify(&note).unwrap();
    assert_eq!(cp.origin, "logbook.local/default");

    for seq in [0, 1, 255, 256, 300, size - 1] {
        let (status, body) = app.get(&format!("/api/v1/proof/inclusion?seq={seq}&size={size}")).await;
        assert_eq!(status, 200, "{body}");
        let p: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(p["seq"], seq);
        let hashes: Vec<_> =
            p["hashes"].as_array().unwrap().iter().map(|h| from_hex(h.as_str().unwrap()).unwrap()).collect();
        let leaf = from_hex(p["leaf_hash"].as_str().unwrap()).unwrap();
        assert_eq!(p["root"].as_str().unwrap(), logbook_integrity::to_hex(&cp.root));
        check_inclusion(seq, size, leaf, &hashes, cp.root).unwrap();
        assert!(body.chars().all(|c| !c.is_ascii_uppercase()), "lowercase hex");
    }
    // Without size: against the latest checkpoint.
    let (status, _) = app.get("/api/v1/proof/inclusion?seq=3").await;
    assert_eq!(status, 200);

    let (status, body) = app.get(&format!("/api/v1/proof/consistency?from=10&to={size}")).await;
    assert_eq!(status, 200, "{body}");
    let c: Value = serde_json::from_str(&body).unwrap();
    let hashes: Vec<_> =
        c["hashes"].as_array().unwrap().iter().map(|h| from_hex(h.as_str().unwrap()).unwrap()).collect();
    check_consistency(10, size, from_hex(c["old_root"].as_str().unwrap()).unwrap(), &hashes, cp.root).unwrap();

    for (path, code) in [
        (format!("/api/v1/proof/inclusion?seq={size}&size={size}"), 400),
        (format!("/api/v1/proof/inclusion?seq=0&size={}", size + 5), 400),
        ("/api/v1/proof/inclusion?seq=-1".to_string(), 400),
        ("/api/v1/proof/inclusion".to_string(), 400),
        ("/api/v1/proof/consistency?from=0&to=5".to_string(), 400),
        ("/api/v1/proof/consistency?from=9&to=5".to_string(), 400),
        ("/api/v1/proof/inclusion?seq=0&org=nobody".to_string(), 404),
        ("/api/v1/proof/inclusion?seq=0&org=Bad%20Org".to_string(), 400),
        ("/api/v1/nothing-here".to_string(), 404),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, code, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(v["error"]["code"].is_string());
    }
    app.stop().await;
}
