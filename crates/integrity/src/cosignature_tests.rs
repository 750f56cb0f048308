#![allow(clippy::unwrap_used)]

use super::*;
use crate::checkpoint::CheckpointSigner;
use logbook_core::SeededRandom;

const ORIGIN: &str = "logbook.example/default";

fn checkpoint(size: u64) -> (CheckpointSigner, String) {
    let log = CheckpointSigner::generate(&SeededRandom::new(10), "logbook.example").unwrap();
    let note = log.sign(ORIGIN, size, &crate::record_hash(b"root")).unwrap();
    (log, note)
}

fn body(note: &str) -> &str {
    let cut = note.find("\n\n").unwrap();
    &note[..=cut]
}

fn witness(seed: u64) -> CosignatureSigner {
    CosignatureSigner::generate(&SeededRandom::new(seed), "witness.example/w1").unwrap()
}

#[test]
fn a_cosignature_round_trips_through_the_line_and_the_note() {
    let (_, note) = checkpoint(42);
    let w = witness(1);
    let line = w.cosign(body(&note), 1_679_315_147);
    assert!(line.starts_with("\u{2014} witness.example/w1 ") && line.ends_with('\n'), "{line}");
    let v = CosignatureVerifier::new(w.verifier_key()).unwrap();
    assert_eq!(v.name(), "witness.example/w1");
    assert_eq!(v.key_id(), w.key_id());
    assert_eq!(v.verify_line(body(&note), &line).unwrap(), 1_679_315_147);
    assert_eq!(v.verify_line(body(&note), line.trim_end()).unwrap(), 1_679_315_147, "newline optional");
    let cosigned = format!("{note}{line}");
    assert_eq!(v.verify_note(&cosigned).unwrap(), 1_679_315_147);
    assert_eq!(w.verifier().verify_note(&cosigned).unwrap(), 1_679_315_147);
}

#[test]
fn the_log_and_the_witness_are_checked_together_and_neither_key_opens_the_other() {
    let (log, note) = checkpoint(7);
    let w = witness(2);
    let cosigned = format!("{note}{}", w.cosign(body(&note), 100));
    let both: Vec<Box<dyn signed_note::Verifier>> =
        vec![Box::new(signed_note::StandardVerifier::new(log.verifier_key()).unwrap()), Box::new(w.verifier())];
    let parsed = Note::from_bytes(cosigned.as_bytes()).unwrap();
    let (verified, unverified) = parsed.verify(&VerifierList::new(both)).unwrap();
    assert_eq!(verified.len(), 2);
    assert!(unverified.is_empty());
    // The log still verifies its note with the witness line present.
    assert_eq!(log.verifier().verify(&cosigned).unwrap().size, 7);
    // The witness never "verifies" the log's own signature, even from the same seed and name:
    // the key ID and the signed message differ.
    let same_seed = CosignatureSigner::from_secret(log.secret()).unwrap();
    let log_id = u32::from_str_radix(log.verifier_key().split('+').nth(1).unwrap(), 16).unwrap();
    assert_ne!(same_seed.key_id(), log_id);
    assert_eq!(
        same_seed.verifier().verify_note(&note).unwrap_err(),
        CheckpointError::MissingCosignature(same_seed.verifier_key().to_owned())
    );
}

#[test]
fn wrong_key_wrong_body_and_missing_line_are_refused() {
    let (_, note) = checkpoint(42);
    let w = witness(3);
    let line = w.cosign(body(&note), 5);
    let other = witness(4);
    let ov = other.verifier();
    // Same name, other key: the key ID differs.
    assert!(matches!(ov.verify_line(body(&note), &line), Err(CheckpointError::BadCosignature(_))));
    assert!(matches!(ov.verify_note(&format!("{note}{line}")), Err(CheckpointError::MissingCosignature(_))));

    let v = w.verifier();
    let (_, other_note) = checkpoint(43);
    assert!(matches!(v.verify_line(body(&other_note), &line), Err(CheckpointError::BadCosignature(_))));
    let spliced = format!("{other_note}{line}");
    assert!(matches!(v.verify_note(&spliced), Err(CheckpointError::BadCosignature(_))));
    assert!(matches!(v.verify_note(&note), Err(CheckpointError::MissingCosignature(_))));
    assert!(matches!(v.verify_note("garbage"), Err(CheckpointError::MalformedNote)));
}

/// Rewrites the decoded signature bytes of a line.
fn edit_line(line: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let (head, b) = line.trim_end().rsplit_once(' ').unwrap();
    let mut raw = b64().decode(b).unwrap();
    edit(&mut raw);
    format!("{head} {}\n", b64().encode(raw))
}

#[test]
fn a_changed_timestamp_a_tampered_signature_or_another_key_id_is_refused() {
    let (_, note) = checkpoint(42);
    let w = witness(5);
    let v = w.verifier();
    let line = w.cosign(body(&note), 1_000);
    let bad = |l: &str| matches!(v.verify_line(body(&note), l), Err(CheckpointError::BadCosignature(_)));

    let later = edit_line(&line, |raw| raw[4..12].copy_from_slice(&1_001u64.to_be_bytes()));
    assert!(bad(&later), "timestamp is signed");
    let flipped = edit_line(&line, |raw| raw[40] ^= 1);
    assert!(bad(&flipped), "signature bit");
    let id = edit_line(&line, |raw| raw[0] ^= 1);
    assert!(bad(&id), "key ID mismatch");
    let short = edit_line(&line, |raw| {
        raw.pop();
    });
    assert!(bad(&short), "length");
    let huge = edit_line(&line, |raw| raw[4..12].copy_from_slice(&u64::MAX.to_be_bytes()));
    assert!(bad(&huge), "timestamp over 2^63 - 1");
    assert!(bad(&line.replace("w1", "w2")), "name");
    assert!(bad("\u{2014} witness.example/w1 !!!"), "base64");
    assert!(bad("witness.example/w1 AAAA"), "no dash");
    // A tampered line inside a note is an error, not ignored.
    assert!(matches!(v.verify_note(&format!("{note}{flipped}")), Err(CheckpointError::BadCosignature(_))));
    // The untouched line still verifies.
    assert_eq!(v.verify_line(body(&note), &line).unwrap(), 1_000);
}

#[test]
fn the_signed_message_is_the_two_header_lines_then_the_note_text() {
    let (_, note) = checkpoint(20_852_163);
    let msg = signed_message(body(&note).as_bytes(), 1_679_315_147);
    let text = String::from_utf8(msg).unwrap();
    assert_eq!(text, format!("cosignature/v1\ntime 1679315147\n{}", body(&note)));
    assert!(text.ends_with("\n") && !text.contains("\n\n"), "no blank line, no signatures: {text}");

    // The line carries key ID, timestamp and signature in that order.
    let w = witness(6);
    let line = w.cosign(body(&note), 1_679_315_147);
    let raw = b64().decode(line.trim_end().rsplit_once(' ').unwrap().1).unwrap();
    assert_eq!(raw.len(), 76);
    assert_eq!(raw[..4], w.key_id().to_be_bytes());
    assert_eq!(raw[4..12], 1_679_315_147u64.to_be_bytes());
    let ed = ed25519_dalek::Signature::from_bytes(&raw[12..].try_into().unwrap());
    w.verifier().public.verify_strict(&signed_message(body(&note).as_bytes(), 1_679_315_147), &ed).unwrap();
}

#[test]
fn published_keys_and_lines_parse_as_the_format_says() {
    // A cosigner's verifier key as published by its operator (type 0x04): the key ID checks.
    let v = CosignatureVerifier::new("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2").unwrap();
    assert_eq!(v.key_id(), 0xda77_ade7);
    assert_eq!(v.name(), "remora.n621.de");
    // The same bytes with another key ID, or an ordinary note key (type 0x01), are not cosigner keys.
    assert_eq!(
        CosignatureVerifier::new("remora.n621.de+da77ade8+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2").unwrap_err(),
        CheckpointError::BadVerifierKey
    );
    let log = CheckpointSigner::generate(&SeededRandom::new(1), "log.example").unwrap();
    assert_eq!(CosignatureVerifier::new(log.verifier_key()).unwrap_err(), CheckpointError::BadVerifierKey);
    assert!(CosignatureVerifier::new("a+b").is_err());
    assert!(CosignatureVerifier::new("a b+00000000+BOvN").is_err());

    // The example cosignature line of C2SP tlog-cosignature: its timestamp is the one of the
    // example's "time" line.
    let sig = Signature::from_bytes(
        "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(timestamp_of(sig.signature()), Some(1_679_315_147));
}

#[test]
fn the_key_round_trips_through_its_secret_and_debug_hides_it() {
    let w = witness(7);
    assert!(w.secret().starts_with("PRIVATE+KEY+witness.example/w1+"));
    let again = CosignatureSigner::from_secret(&format!("{}\n", w.secret())).unwrap();
    assert_eq!(again.verifier_key(), w.verifier_key());
    assert_eq!(again.key_id(), w.key_id());
    assert!(w.verifier_key().starts_with(&format!("witness.example/w1+{:08x}+", w.key_id())));
    let dbg = format!("{w:?}");
    assert!(!dbg.contains(w.secret()) && !dbg.contains("PRIVATE"), "{dbg}");

    // An ordinary signed-note Ed25519 secret (type 0x01) is taken too; its cosigner key ID is over 0x04.
    let note_key = CheckpointSigner::generate(&SeededRandom::new(8), "w.example").unwrap();
    let as_cosigner = CosignatureSigner::from_secret(note_key.secret()).unwrap();
    assert_ne!(as_cosigner.verifier_key(), note_key.verifier_key());
    assert_eq!(
        as_cosigner.verifier_key().splitn(3, '+').nth(2),
        Some(&*{
            let mut k = b64().decode(note_key.verifier_key().splitn(3, '+').nth(2).unwrap()).unwrap();
            k[0] = 4;
            b64().encode(k)
        })
    );

    let bad_id = w.secret().replace(&format!("+{:08x}+", w.key_id()), "+00000000+");
    assert_eq!(CosignatureSigner::from_secret(&bad_id).unwrap_err(), CheckpointError::BadSigningKey);
    assert_eq!(CosignatureSigner::from_secret("PRIVATE+KEY+x+00+AAAA").unwrap_err(), CheckpointError::BadSigningKey);
    assert_eq!(CosignatureSigner::from_secret("garbage").unwrap_err(), CheckpointError::BadSigningKey);
    assert_eq!(CosignatureSigner::generate(&SeededRandom::new(3), "a b").unwrap_err(), CheckpointError::BadKeyName);
    assert_eq!(CosignatureSigner::generate(&SeededRandom::new(3), "a+b").unwrap_err(), CheckpointError::BadKeyName);
}
