//! One configuration for every subcommand, through the real binary: a set-up given only by
//! environment variables, or only by a TOML file, is seen the same way by `serve`, `verify`,
//! `export`, `admin`, `demo` and `migrate-store` (same signing key, origin and store), and
//! `logbook config` says where each value came from without showing a secret.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use logbook_core::OsRandom;
use logbook_integrity::keys::{SigningKeyFile, KEY_FILE};

/// `logbook` with no `LOGBOOK_*` variable from the environment of the test run, then `env`.
fn logbook(env: &[(&str, String)]) -> Command {
    let mut c = bin();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOGBOOK_") && k != "LOGBOOK_LOG") {
        c.env_remove(k);
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: {:?}\n{}{}", o.status, stdout(&o), stderr(&o));
    o
}

/// A signing key outside the data directory, as an operator would keep it; returns its file and
/// its verifier key.
fn outside_key(dir: &Path, prefix: &str) -> (PathBuf, String) {
    let keys = dir.join("keys");
    let key = SigningKeyFile::resolve(None, &keys, prefix).load_or_create(&OsRandom).unwrap();
    (keys.join(KEY_FILE), key.verifier_key().to_owned())
}

/// Every stored checkpoint's note, oldest first, read from the SQLite file.
fn stored_notes(data_dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(db_path(data_dir)).unwrap();
    let mut q = db.prepare("SELECT note FROM checkpoints ORDER BY size").unwrap();
    let notes = q.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
    notes
}

/// Every stored checkpoint names `origin` and is signed by `verifier_key`.
fn assert_checkpoints(data_dir: &Path, origin: &str, verifier_key: &str) {
    let verifier = logbook_integrity::checkpoint::CheckpointVerifier::new(verifier_key).unwrap();
    let notes = stored_notes(data_dir);
    assert!(!notes.is_empty());
    for note in notes {
        let v = verifier.verify(&note).unwrap_or_else(|e| panic!("not signed with the configured key ({e}):\n{note}"));
        assert_eq!(v.origin, origin);
    }
}

/// `/metrics` once the first self-check has run (it runs when the server starts; this waits for
/// its counter, not for a time).
async fn first_self_check(base: &str) -> String {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l.starts_with("logbook_self_check_runs_total ") && !l.ends_with(" 0")) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "no self-check ran:\n{text}");
        tokio::task::yield_now().await;
    }
}

#[test]
fn admin_create_token_uses_the_signing_key_file_from_the_environment() {
    // The reproduction: with LOGBOOK_SIGNING_KEY_FILE set, `admin create-token` generated a stray
    // key in the data directory and signed with it; the server's self-check then saw damage.
    let t = tempfile::tempdir().unwrap();
    let (key, verifier_key) = outside_key(t.path(), "logbook.local");
    let data = t.path().join("data");
    let env =
        [("LOGBOOK_SIGNING_KEY_FILE", key.display().to_string()), ("LOGBOOK_DATA_DIR", data.display().to_string())];
    let o = ok(logbook(&env).args(["admin", "create-token", "--name", "svc"]).output().unwrap(), "create-token");
    assert!(stdout(&o).trim().starts_with("lbk_"), "{}", stdout(&o));
    assert!(!data.join(KEY_FILE).exists(), "no stray key in the data directory");
    assert_checkpoints(&data, "logbook.local/default", &verifier_key);

    let o = ok(logbook(&env).arg("verify").output().unwrap(), "verify");
    assert!(stdout(&o).contains("default: intact — 1 events, 1 checkpoint(s) checked"), "{}", stdout(&o));
    // And against the verifier key alone, as an outside auditor would check.
    let o = ok(logbook(&env).args(["verify", "--public-key", &verifier_key]).output().unwrap(), "verify --public-key");
    assert!(stdout(&o).contains("intact"), "{}", stdout(&o));

    // The server, given the same environment, finds its log intact in its first self-check
    // (run at start).
    let server = start_with_env(&[], &env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let metrics = tokio::runtime::Runtime::new().unwrap().block_on(first_self_check(&server.base));
    terminate(server);
    assert!(metrics.lines().any(|l| l == "logbook_self_check_ok 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "logbook_self_check_failures_total 0"), "{metrics}");

    // A configured key that is missing is an error, never a reason to make one.
    let env = [("LOGBOOK_SIGNING_KEY_FILE", t.path().join("nope.key").display().to_string()), env[1].clone()];
    let o = logbook(&env).args(["admin", "create-token", "--name", "other"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope.key"), "{}", stderr(&o));
    assert!(!data.join(KEY_FILE).exists());
}

/// Runs every subcommand on one set-up (`env` and `args` before the subcommand) and checks that
/// each used the same store, key and origin.
fn every_subcommand_agrees(t: &Path, env: &[(&str, String)], global: &[&str], origin_prefix: &str, verifier_key: &str) {
    let data = t.join("data");
    let run = |args: &[&str], what: &str| {
        let mut all: Vec<&str> = global.to_vec();
        all.extend_from_slice(args);
        ok(logbook(env).args(&all).output().unwrap(), what)
    };
    run(&["demo", "--events", "500", "--days", "3"], "demo");
    let token = stdout(&run(&["admin", "create-token", "--name", "svc", "--actions", "logout"], "create-token"))
        .trim()
        .to_owned();
    let o = run(&["admin", "list-tokens"], "list-tokens");
    assert!(stdout(&o).starts_with("svc\t"), "{}", stdout(&o));
    let mut admin = logbook(env);
    admin.args(global).args(["admin", "create", "--email", "ops@example.com", "--password-stdin"]);
    let o = {
        use std::io::Write;
        let mut child = admin
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"a long enough passphrase 7\n").unwrap();
        child.wait_with_output().unwrap()
    };
    ok(o, "admin create");
    let out = t.join("export.csv");
    let o = run(&["export", "--output", out.to_str().unwrap()], "export");
    assert!(stderr(&o).contains("exported 503 events to"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 504, "a header and every event");

    // The server: the same key, the same store (it continues the same log).
    let server = start_with_env(global, &env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let key = http.get(format!("{}/api/v1/public-key", server.base)).send().await.unwrap().text().await.unwrap();
        assert_eq!(key.trim(), verifier_key);
        let resp = http
            .post(format!("{}/api/v1/events", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"action": "logout", "actor": {"type": "user", "id": "u"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        // 500 demo events and the run's record, the token, the user, the export's own record:
        // the server continues the same log.
        assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["seqs"], serde_json::json!([504]));
    });
    terminate(server);

    // migrate-store checks both copies' checkpoints with the configured key and origin.
    let copy = t.join("copy.db");
    let o = run(
        &[
            "migrate-store",
            "--from",
            &format!("sqlite://{}", db_path(&data).display()),
            "--to",
            &format!("sqlite://{}", copy.display()),
        ],
        "migrate-store",
    );
    assert!(stdout(&o).contains("default: 505 events") && stdout(&o).contains("roots match"), "{}", stdout(&o));

    let o = run(&["verify"], "verify");
    assert!(stdout(&o).contains("default: intact — 505 events"), "{}", stdout(&o));
    assert!(!data.join(KEY_FILE).exists(), "no command made a key of its own");
    assert_checkpoints(&data, &format!("{origin_prefix}/default"), verifier_key);
}

#[test]
fn an_environment_only_set_up_is_the_same_for_every_subcommand() {
    let t = tempfile::tempdir().unwrap();
    let (key, verifier_key) = outside_key(t.path(), "env.example");
    let env = [
        ("LOGBOOK_DATA_DIR", t.path().join("data").display().to_string()),
        ("LOGBOOK_SIGNING_KEY_FILE", key.display().to_string()),
        ("LOGBOOK_ORIGIN_PREFIX", "env.example".to_owned()),
    ];
    every_subcommand_agrees(t.path(), &env, &[], "env.example", &verifier_key);
}

#[test]
fn a_toml_only_set_up_is_the_same_for_every_subcommand() {
    let t = tempfile::tempdir().unwrap();
    let (key, verifier_key) = outside_key(t.path(), "toml.example");
    let file = t.path().join("logbook.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nsigning_key_file = {:?}\norigin_prefix = \"toml.example\"\n",
            t.path().join("data").display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    every_subcommand_agrees(t.path(), &[], &["--config", file.to_str().unwrap()], "toml.example", &verifier_key);
}

#[test]
fn a_postgres_url_from_a_secret_file_serves_every_one_shot_command() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(pg) = rt.block_on(common::fresh_database()) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (key, verifier_key) = outside_key(t.path(), "pg.example");
    std::fs::write(t.path().join("db.url"), format!("{pg}\n")).unwrap();
    let env = [
        ("LOGBOOK_DATABASE_URL_FILE", t.path().join("db.url").display().to_string()),
        ("LOGBOOK_SIGNING_KEY_FILE", key.display().to_string()),
        ("LOGBOOK_ORIGIN_PREFIX", "pg.example".to_owned()),
        ("LOGBOOK_DATA_DIR", t.path().join("data").display().to_string()),
    ];
    ok(logbook(&env).args(["demo", "--events", "100"]).output().unwrap(), "demo");
    ok(logbook(&env).args(["admin", "create-token", "--name", "svc"]).output().unwrap(), "create-token");
    let o = ok(logbook(&env).args(["verify", "--public-key", &verifier_key]).output().unwrap(), "verify");
    assert!(stdout(&o).contains("default: intact — 102 events"), "{}", stdout(&o));
    assert!(!t.path().join("data").exists(), "the data directory is not used with a database URL and a key file");
    let o = ok(logbook(&env).arg("config").output().unwrap(), "config");
    assert!(
        stdout(&o).contains("# environment variable LOGBOOK_DATABASE_URL_FILE"),
        "the URL's source is named: {}",
        stdout(&o)
    );
}

#[test]
fn config_names_every_source_and_never_a_secret() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("logbook.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\nsmtp_host = \"mail.example\"\nwitness_dir = \"/srv/witness\"\n",
    )
    .unwrap();
    std::fs::write(t.path().join("smtp.secret"), "hunter2-from-file\n").unwrap();
    let env = [
        ("LOGBOOK_CONFIG", file.display().to_string()),
        ("LOGBOOK_DATABASE_URL", "postgres://app:pg-s3cret@db.internal:5432/logbook".to_owned()),
        ("LOGBOOK_SMTP_PASSWORD_FILE", t.path().join("smtp.secret").display().to_string()),
        ("LOGBOOK_WITNESS_DIR", "/srv/witness-env".to_owned()),
    ];
    let o = ok(logbook(&env).args(["config", "--origin-prefix", "flag.example"]).output().unwrap(), "config");
    let out = stdout(&o);
    for secret in ["pg-s3cret", "hunter2"] {
        assert!(!out.contains(secret) && !stderr(&o).contains(secret), "{out}");
    }
    let expect = [
        "data_dir = \"logbook-data\"  # default".to_owned(),
        "database_url = \"postgres://app:<redacted>@db.internal:5432/logbook\"  # environment variable LOGBOOK_DATABASE_URL"
            .to_owned(),
        "origin_prefix = \"flag.example\"  # flag --origin-prefix".to_owned(),
        format!("listen = \"127.0.0.1:9999\"  # file {}", file.display()),
        format!("smtp_host = \"mail.example\"  # file {}", file.display()),
        "witness_dir = \"/srv/witness-env\"  # environment variable LOGBOOK_WITNESS_DIR".to_owned(),
        "smtp_password = \"<redacted>\"  # environment variable LOGBOOK_SMTP_PASSWORD_FILE".to_owned(),
        "self_check_interval = 300  # default".to_owned(),
        "# signing key in use: logbook-data/checkpoint-signing.key".to_owned(),
    ];
    for line in expect {
        assert!(out.lines().any(|l| l.starts_with(&line)), "missing {line:?} in:\n{out}");
    }
    // A flag of `serve` given to `config` shows what that `serve` would use.
    let o = ok(logbook(&env).args(["config", "--listen", "127.0.0.1:7777"]).output().unwrap(), "config --listen");
    assert!(stdout(&o).contains("listen = \"127.0.0.1:7777\"  # flag --listen"), "{}", stdout(&o));

    // An unknown key in the file is an error that names it and the file.
    std::fs::write(&file, "listen = \"127.0.0.1:9999\"\nsigning_key = \"x\"\n").unwrap();
    let o = logbook(&env).arg("config").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("signing_key") && stderr(&o).contains("logbook.toml"), "{}", stderr(&o));
}

#[test]
fn one_shot_commands_print_their_result_not_the_servers_log_lines() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let mut quiet = logbook(&[]);
    quiet.env_remove("LOGBOOK_LOG");
    let o = ok(quiet.args(["admin", "create-token", "--name", "svc", "--data-dir"]).arg(&d).output().unwrap(), "quiet");
    assert_eq!(
        stderr(&o),
        "Created API token \"svc\" for default, allowed to record: *. It is shown only now; store it as a secret.\n",
        "only the result, no INFO lines (migrations, key generation)"
    );
    // Asked for with LOGBOOK_LOG, the log lines are there.
    let d2 = t.path().join("data2");
    let o = ok(
        logbook(&[("LOGBOOK_LOG", "info".to_owned())])
            .args(["admin", "create-token", "--name", "svc", "--data-dir"])
            .arg(&d2)
            .output()
            .unwrap(),
        "LOGBOOK_LOG=info",
    );
    assert!(stderr(&o).contains("generated a checkpoint signing key"), "{}", stderr(&o));

    // Not on a terminal: no progress bar, only the closing line.
    let mut quiet = logbook(&[]);
    quiet.env_remove("LOGBOOK_LOG");
    let o = ok(quiet.args(["demo", "--events", "2000", "--data-dir"]).arg(&d).output().unwrap(), "demo");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("added 2000 demo events to default in "), "{err:?}");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "no terminal control characters: {err:?}");
}
