//! The witness's cosignatures, checked by code that is not ours: `tests/go/cosigcheck`, which
//! opens the note with Go's golang.org/x/mod/sumdb/note and checks each cosignature/v1 line with
//! a verifier written in Go from the C2SP text. Skipped (loudly) without Go, unless
//! `LOGBOOK_REQUIRE_GO=1`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use logbook_test_support::{skip, Needs, TestWitness, ToyLog};

const ORIGIN: &str = "log.test/default";

fn program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/go/cosigcheck/main.go")
}

/// Builds the checker once per test binary, or says why it cannot.
fn build(out: &Path) -> Result<PathBuf, String> {
    let gopath = std::env::var("LOGBOOK_GOPATH").unwrap_or_else(|_| "/usr/share/gocode".into());
    let exe = out.join("cosigcheck");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(program())
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOCACHE", out.join("gocache"))
        .env("GOFLAGS", "")
        .output()
        .map_err(|e| format!("no Go toolchain (`go`): {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "`go build` of tests/go/cosigcheck failed (is golang.org/x/mod in GOPATH {gopath}?): {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(exe)
}

/// Runs the checker on `note`; its exit status and what it printed.
fn check(exe: &Path, log_key: &str, witness_keys: &[&str], note: &str) -> (bool, String) {
    let mut cmd = Command::new(exe);
    cmd.args(["-log", log_key]);
    for k in witness_keys {
        cmd.args(["-witness", k]);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(note.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn go_accepts_the_witness_cosignatures_and_refuses_forged_ones() {
    let tmp = tempfile::tempdir().unwrap();

    let exe = match build(tmp.path()) {
        Ok(exe) => exe,
        Err(why) => return skip(Needs::Go, &why),
    };

    let w1 = TestWitness::spawn(11).await;
    let w2 = TestWitness::spawn(12).await;
    let mut log = ToyLog::new(ORIGIN, 5);
    w1.add_log(ORIGIN, log.verifier_key());
    w2.add_log(ORIGIN, log.verifier_key());
    let mut note = String::new();
    let mut lines = Vec::new();
    for (grow, old) in [(3u64, 0u64), (250, 3), (17, 253)] {
        log.grow(grow);
        let req = log.request(old);
        let (a1, a2) = (w1.send(&req).await, w2.send(&req).await);
        assert_eq!((a1.status, a2.status), (200, 200), "{a1:?} {a2:?}");
        note = format!("{}{}{}", req.checkpoint, a1.body, a2.body);
        lines = vec![a1.body, a2.body];
        let (ok, out) = check(&exe, log.verifier_key(), &[&w1.verifier_key, &w2.verifier_key], &note);
        assert!(ok, "Go refused our cosigned checkpoint of size {}:\n{note}\n{out}", log.size());
        assert!(out.contains("cosigned by witness.test/w11 at ") && out.contains("cosigned by witness.test/w12 at "), "{out}");
    }

    // Negative controls: Go must refuse each of these.
    let checkpoint = log.checkpoint();
    let refused = |what: &str, keys: &[&str], note: &str| {
        let (ok, out) = check(&exe, log.verifier_key(), keys, note);
        assert!(!ok, "Go accepted {what}:\n{note}\n{out}");
    };
    // A cosignature line whose signature bytes were changed.
    let (head, b64) = lines[0].trim_end().rsplit_once(' ').unwrap();
    let mut raw = base64_decode(b64);
    raw[20] ^= 0x01;
    refused("a tampered signature", &[&w1.verifier_key], &format!("{checkpoint}{head} {}\n", base64_encode(&raw)));
    // The timestamp changed (the signature covers it).
    let mut raw = base64_decode(b64);
    raw[11] ^= 0x01;
    refused("a changed timestamp", &[&w1.verifier_key], &format!("{checkpoint}{head} {}\n", base64_encode(&raw)));
    // A valid line moved onto another checkpoint of the same log.
    let mut other = log.fork(log.size(), "other");
    other.grow(1);
    refused("a line spliced onto another checkpoint", &[&w1.verifier_key], &format!("{}{}", other.checkpoint(), lines[0]));
    // A witness whose line is missing.
    refused("a missing cosignature", &[&w1.verifier_key, &w2.verifier_key], &format!("{checkpoint}{}", lines[0]));
    // Our line checked as if w2 had made it: the key ID does not match, so it is not w2's.
    refused("w1's line for w2", &[&w2.verifier_key], &format!("{checkpoint}{}", lines[0]));
    // The log's own signature cannot pass for a cosignature.
    let same_key = logbook_integrity::cosignature::CosignatureSigner::from_secret(log.secret()).unwrap();
    refused("the log's signature as a cosignature by its own key", &[same_key.verifier_key()], &checkpoint);
    // And the control of the controls: the untouched note still passes.
    assert!(check(&exe, log.verifier_key(), &[&w1.verifier_key, &w2.verifier_key], &note).0);
    w1.stop().await;
    w2.stop().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
