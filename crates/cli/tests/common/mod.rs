//! Shared by the binary's tests: building real stores, running `logbook`; the workspace's test
//! harness (`logbook_test_support`) for PostgreSQL, skips and waiting.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use logbook_core::{Action, Actor, ActorKind, NewEvent, OrgSlug, OsRandom, Outcome, Source, SystemClock};
use logbook_log::{LogConfig, LogService};
use logbook_server::{keys, Settings};
use logbook_store_sqlite::SqliteStore;
// Each test binary uses some of these.
#[allow(unused_imports)]
pub use logbook_test_support::{fresh_database, skip, wait_until, within, Needs};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logbook"));
    c.env("LOGBOOK_LOG", "warn").env_remove("LOGBOOK_DATA_DIR").env_remove("LOGBOOK_DATABASE_URL");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run logbook")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn event(i: u64) -> NewEvent {
    let actions = [
        Action::LoginSuccess,
        Action::LoginFailed,
        Action::Logout,
        Action::UserRoleUpdated,
        Action::ProtectedUserAdded,
    ];
    let action = actions[(i % actions.len() as u64) as usize];
    NewEvent {
        action: action.into(),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("u{}", i % 13),
            email: Some(format!("user{}@example.com", i % 13)),
        },
        target: i.is_multiple_of(3).then(|| logbook_core::Target {
            kind: "management_user".into(),
            id: format!("t{i}"),
            display: format!("t{i}@example.com"),
        }),
        details: format!("event number {i}"),
        fields: [("n".to_string(), i.to_string())].into(),
        outcome: if action == Action::LoginFailed { Outcome::Failure } else { Outcome::Success },
        source: Source {
            via: None,
            ip: Some([203, 0, 113, (i % 250) as u8].into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
        },
        recorded_by: "test".into(),
    }
}

async fn service(dir: &Path) -> (Arc<LogService>, logbook_store::Org) {
    let settings = Settings::new(dir.to_owned());
    let signer = keys::load_or_create(&settings, &OsRandom).unwrap();
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let log = LogService::new(store, Arc::new(SystemClock), Arc::new(OsRandom), Arc::new(signer), LogConfig::default());
    let org = log.org(&OrgSlug::default_org()).await.unwrap();
    (log, org)
}

/// Appends events `range` in batches through the real append path, then shuts down (which
/// signs a checkpoint of exactly the final size) and returns that checkpoint.
pub async fn append_range(dir: &Path, range: std::ops::Range<u64>, batch: u64) -> String {
    let (log, org) = service(dir).await;
    let mut i = range.start;
    while i < range.end {
        let k = batch.min(range.end - i);
        log.append(&org, (i..i + k).map(event).collect(), None).await.unwrap();
        i += k;
    }
    log.shutdown().await;
    log.latest_checkpoint(&org).await.unwrap().unwrap().note
}

/// Appends these events, then shuts down (signing a checkpoint).
pub async fn append_events(dir: &Path, events: Vec<NewEvent>) {
    let (log, org) = service(dir).await;
    log.append(&org, events, None).await.unwrap();
    log.shutdown().await;
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("logbook.db")
}

/// Opens the database file directly, as an attacker with the file would, and removes the
/// append-only triggers.
pub fn attacker(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db_path(dir)).unwrap();
    for t in ["events", "tiles", "checkpoints"] {
        for op in ["update", "delete"] {
            c.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}_append_only_{op}")).unwrap();
        }
    }
    c
}

pub struct Server {
    pub child: Child,
    pub base: String,
    _out: BufReader<std::process::ChildStdout>,
}

/// Starts `logbook serve --listen 127.0.0.1:0 ARGS` and waits until it listens.
pub fn start(args: &[&str]) -> Server {
    start_with_env(args, &[])
}

/// [`start`] with extra environment variables.
pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args).envs(env.iter().copied());
    spawn_listening(cmd, "Logbook is listening on ")
}

/// Starts `logbook witness serve --listen 127.0.0.1:0 --data-dir DIR` and waits until it listens.
pub fn start_witness(dir: &Path) -> Server {
    let mut cmd = bin();
    cmd.args(["witness", "serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir);
    spawn_listening(cmd, "Logbook witness is listening on ")
}

/// Spawns `cmd` and waits for the stdout line `<announce><base URL>`.
#[allow(clippy::zombie_processes)] // the caller kills and waits
fn spawn_listening(mut cmd: Command, announce: &str) -> Server {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "exited before listening ({announce:?})");
        if let Some(addr) = line.trim().strip_prefix(announce) {
            return Server { child, base: addr.to_owned(), _out: out };
        }
    }
}

/// Stops a server with SIGTERM and waits for its clean exit.
pub fn terminate(server: Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut child = server.child;
    assert!(child.wait().unwrap().success(), "graceful shutdown exits 0");
}

/// What the clients of a load were told.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Every event acknowledged with 201: its unique details and its seq.
    pub acked: std::sync::Mutex<Vec<(String, u64)>>,
    /// Every event refused with an answer that says nothing was stored.
    pub refused: std::sync::Mutex<Vec<String>>,
    /// The identifier typed at every sign-in answered 401 (its Login Failed event was stored).
    pub failed_sign_ins: std::sync::Mutex<Vec<String>>,
}

pub type Acked = std::sync::Arc<Outcomes>;

/// Eight clients appending to the given servers in turn (singly and in batches of five), each
/// event with unique details, recording what they are told, until `stop`.
pub fn load(
    bases: Vec<String>,
    token: &str,
    acked: &Acked,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    tag: &str,
) -> Vec<tokio::task::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    // A request to a killed server fails at once; the bound is only against a hang.
    let client = reqwest::Client::builder().timeout(logbook_test_support::PATIENCE).build().unwrap();
    (0..8)
        .map(|c| {
            let (client, bases, token, acked, stop, tag) =
                (client.clone(), bases.clone(), token.to_owned(), acked.clone(), stop.clone(), tag.to_owned());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let base = &bases[(c + i) % bases.len()];
                    let n = if c % 2 == 0 { 1 } else { 5 };
                    let names: Vec<String> = (0..n).map(|k| format!("c{c}-{tag}-{i}-{k}")).collect();
                    let body: Vec<serde_json::Value> = names
                        .iter()
                        .map(|d| serde_json::json!({"action": "login.success", "actor": {"type": "user", "id": d}, "details": d}))
                        .collect();
                    i += 1;
                    let Ok(resp) = client.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&body).send().await else {
                        // No answer (the server died): the events may or may not be stored.
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let Ok(v) = resp.json::<serde_json::Value>().await else { continue };
                    if status == 201 {
                        let seqs: Vec<u64> = serde_json::from_value(v["seqs"].clone()).unwrap();
                        assert_eq!(seqs.len(), names.len());
                        acked.acked.lock().unwrap().extend(names.into_iter().zip(seqs));
                    } else if v["error"]["message"].as_str().is_some_and(|m| m.contains("nothing was stored")) {
                        acked.refused.lock().unwrap().extend(names);
                    }
                }
            })
        })
        .collect()
}

/// Two clients signing in with a wrong password through the given servers in turn, each with
/// a unique typed identifier, recording those answered 401, until `stop`. (Run the servers with
/// `--sign-in-max-failures 0`, or they answer 429 after a while.)
pub fn sign_in_load(
    bases: Vec<String>,
    outcomes: &Acked,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    tag: &str,
) -> Vec<tokio::task::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    // A request to a killed server fails at once; the bound is only against a hang.
    let client = reqwest::Client::builder().timeout(logbook_test_support::PATIENCE).build().unwrap();
    (0..2)
        .map(|c| {
            let (client, bases, outcomes, stop, tag) =
                (client.clone(), bases.clone(), outcomes.clone(), stop.clone(), tag.to_owned());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let typed = format!("ghost-{tag}-{c}-{i}@example.com");
                    i += 1;
                    let body = serde_json::json!({"email": typed, "password": "not the password"});
                    let Ok(resp) =
                        client.post(format!("{}/api/v1/session", bases[i % bases.len()])).json(&body).send().await
                    else {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    };
                    if resp.status() == 401 {
                        outcomes.failed_sign_ins.lock().unwrap().push(typed);
                    }
                }
            })
        })
        .collect()
}

/// What the store holds against what the clients were told: the default log is gapless, every
/// acknowledged event is there exactly once at its seq, no refused event is there, no event is
/// there twice, and every sign-in answered 401 has its Login Failed event. Returns the log size,
/// or every violation found.
pub async fn check_outcomes(store: &dyn logbook_store::Store, outcomes: &Outcomes) -> Result<u64, Vec<String>> {
    let org = store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let size = store.log_head(org.id).await.unwrap().size;
    let rows = store.events(org.id, 0..size).await.unwrap();
    let mut problems = Vec::new();
    if rows.len() as u64 != size {
        problems.push(format!("not gapless: {} rows for size {size}", rows.len()));
    }
    let mut found: std::collections::HashMap<String, Vec<u64>> = std::collections::HashMap::new();
    let mut failed_sign_ins = std::collections::HashSet::new();
    for r in &rows {
        let e = logbook_core::leaf::decode(&r.leaf).unwrap();
        if e.body.action == logbook_core::Action::LoginFailed {
            failed_sign_ins.insert(e.body.actor.id.clone());
        } else if e.body.action == logbook_core::Action::LoginSuccess && e.body.actor.id == e.body.details {
            // One of the load's events (its actor id is its unique details).
            found.entry(e.body.details.clone()).or_default().push(r.seq);
        }
    }
    for (name, seq) in outcomes.acked.lock().unwrap().iter() {
        if found.get(name) != Some(&vec![*seq]) {
            problems.push(format!("acknowledged {name} at seq {seq}, but the store has it at {:?}", found.get(name)));
        }
    }
    for name in outcomes.refused.lock().unwrap().iter() {
        if let Some(seqs) = found.get(name) {
            problems.push(format!("{name} was refused (nothing stored), but the store has it at {seqs:?}"));
        }
    }
    for (name, seqs) in &found {
        if seqs.len() > 1 {
            problems.push(format!("{name} is stored {} times, at {seqs:?}", seqs.len()));
        }
    }
    for typed in outcomes.failed_sign_ins.lock().unwrap().iter() {
        if !failed_sign_ins.contains(typed) {
            problems.push(format!("the failed sign-in of {typed} was answered 401 but is not in the log"));
        }
    }
    if problems.is_empty() {
        Ok(size)
    } else {
        Err(problems)
    }
}

/// [`check_outcomes`], asserting there is no violation.
pub async fn check_acknowledged(store: &dyn logbook_store::Store, outcomes: &Outcomes) -> u64 {
    match check_outcomes(store, outcomes).await {
        Ok(size) => size,
        Err(problems) => {
            panic!("{} violation(s), first ones: {:#?}", problems.len(), &problems[..problems.len().min(10)])
        }
    }
}
