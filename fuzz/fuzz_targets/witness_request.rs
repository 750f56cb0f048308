//! The witness's outside input: `POST /add-checkpoint` bodies (`AddCheckpointRequest::parse`),
//! 409 size bodies (`parse_size_body`), 200 cosignature answers (`cosignature_lines`) and
//! cosignature lines checked against a checkpoint (`CosignatureVerifier::verify_line`,
//! `verify_note`), and cosignature verifier keys (`CosignatureVerifier::new`).
//!
//! Checks beyond "no panic": an accepted request re-serialises to exactly its bytes, carries at
//! most 63 proof hashes and none from size 0; an accepted size body is the canonical decimal (a
//! final newline optional); each accepted answer line starts with the em dash; a line that
//! verifies names the fuzz witness and a timestamp below 2^63, and the witness's own line for
//! that timestamp verifies to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_integrity::cosignature::{CosignatureSigner, CosignatureVerifier};
use logbook_integrity::witness_protocol::{
    cosignature_lines, parse_size_body, AddCheckpointRequest, MAX_PROOF_LINES,
};

/// Fills with 0, 1, …, 31 (the fuzz witness key's seed; never used outside the fuzz targets).
#[derive(Debug)]
struct FixedSeed;

impl logbook_core::Random for FixedSeed {
    fn fill(&self, dest: &mut [u8]) {
        for (i, d) in dest.iter_mut().enumerate() {
            *d = i as u8;
        }
    }
}

const BODY: &str = "log.fuzz/default\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

thread_local! {
    static KEYS: (CosignatureSigner, CosignatureVerifier) = {
        let s = CosignatureSigner::generate(&FixedSeed, "witness.fuzz").expect("fuzz witness key");
        let v = s.verifier();
        (s, v)
    };
}

fuzz_target!(|data: &[u8]| KEYS.with(|(signer, verifier)| check(signer, verifier, data)));

fn check(signer: &CosignatureSigner, verifier: &CosignatureVerifier, data: &[u8]) {
    if let Ok(req) = AddCheckpointRequest::parse(data) {
        assert_eq!(req.to_body().as_bytes(), data, "an accepted request re-serialises equal");
        assert!(req.proof.len() <= MAX_PROOF_LINES);
        assert!(req.old_size > 0 || req.proof.is_empty());
    }
    if let Ok(size) = parse_size_body(data) {
        let canonical = size.to_string();
        assert!(data == canonical.as_bytes() || data == format!("{canonical}\n").as_bytes());
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(lines) = cosignature_lines(text) {
        assert!(lines.iter().all(|l| l.starts_with("\u{2014} ")));
    }
    if text.len() < 512 {
        let _ = CosignatureVerifier::new(text);
    }
    let _ = verifier.verify_note(text);
    if let Ok(t) = verifier.verify_line(BODY, text) {
        assert!(t <= i64::MAX as u64);
        assert_eq!(verifier.verify_line(BODY, &signer.cosign(BODY, t)), Ok(t));
    }
}
