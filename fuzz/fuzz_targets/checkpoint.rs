//! Signed checkpoints: C2SP signed notes read back from the store, the witness directory and
//! `logbook verify --checkpoint FILE` (`CheckpointVerifier::verify`, on `signed_note` and
//! `tlog_tiles`), and note verifier keys (`CheckpointVerifier::new`, `--public-key`).
//!
//! The fuzz key is fixed (seeds/checkpoint holds notes it signed). Checks: nothing panics; a
//! note that parses re-serialises to the same bytes, and so does its checkpoint body; a note
//! that verifies names exactly the origin, size and root of its body, and the note our signer
//! makes for them verifies to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook_integrity::checkpoint::{CheckpointSigner, CheckpointVerifier};
use signed_note::Note;
use tlog_tiles::Checkpoint;

/// The fuzz key (a fixed seed of 0, 1, …, 31; never used outside the fuzz targets).
const SECRET: &str = "PRIVATE+KEY+logbook.fuzz+200a8f84+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";

thread_local! {
    // The verifier is not `Sync`; libFuzzer runs the target on one thread.
    static KEYS: (CheckpointSigner, CheckpointVerifier) = {
        let s = CheckpointSigner::from_secret(SECRET).expect("fuzz key");
        let v = s.verifier();
        (s, v)
    };
}

fuzz_target!(|data: &[u8]| KEYS.with(|(signer, verifier)| check(signer, verifier, data)));

fn check(signer: &CheckpointSigner, verifier: &CheckpointVerifier, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() < 512 {
        let _ = CheckpointVerifier::new(text);
    }
    let verified = verifier.verify(text);
    let body = match Note::from_bytes(data) {
        Ok(note) => {
            assert_eq!(note.to_bytes(), data, "a parsed note re-serialises equal");
            Checkpoint::from_bytes(note.text()).ok().inspect(|cp| {
                assert_eq!(cp.to_bytes(), note.text(), "a parsed checkpoint re-serialises equal");
            })
        }
        Err(_) => {
            assert!(verified.is_err(), "a note that does not parse cannot verify");
            None
        }
    };
    if let Ok(v) = verified {
        let cp = body.expect("a verified note has a checkpoint body");
        assert_eq!((v.origin.as_str(), v.size, v.root), (cp.origin(), cp.size(), *cp.hash()));
        let again = signer.sign(&v.origin, v.size, &v.root).expect("sign");
        assert_eq!(verifier.verify(&again), Ok(v));
    }
}
