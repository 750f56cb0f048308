//! `logbook witness serve | key | add-log`: a C2SP tlog-witness for other logs (see the
//! `logbook-witness` crate). Its files — `witness.key` and `witness.db` — live in the data
//! directory (`--data-dir`); it never opens a log store.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use logbook_core::{Clock, OsRandom, SystemClock};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_witness::{state::State, Witness};

use crate::cli::WitnessCommand;
use crate::config::Config;

pub async fn run(config: &Config, command: WitnessCommand) -> anyhow::Result<ExitCode> {
    let dir = &config.data_dir;
    match command {
        WitnessCommand::Serve(a) => {
            let shutdown = crate::commands::shutdown_signal("Shutting down: finishing the requests in flight…")?;
            let witness = Witness::open(dir, a.name.name.as_deref(), Arc::new(SystemClock), &OsRandom)?;
            let listener = tokio::net::TcpListener::bind(a.listen)
                .await
                .with_context(|| format!("listening on {}", a.listen))?;
            let addr = listener.local_addr()?;
            let logs = witness.state().logs()?;
            println!("Logbook witness is listening on http://{addr}");
            println!("  verifier key: {}", witness.signer().verifier_key());
            println!("  data: {}", dir.display());
            if logs.is_empty() {
                println!("  no log yet: logbook witness add-log --data-dir {} --origin ORIGIN --key KEY", dir.display());
            }
            for log in &logs {
                println!("  witnessing {} (cosigned size {})", log.origin, log.size);
            }
            logbook_witness::http::serve(listener, Arc::new(witness), shutdown).await.context("serving")?;
            eprintln!("The witness stopped cleanly.");
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Key(a) => {
            let signer = logbook_witness::key::load_or_create(dir, a.name.as_deref(), &OsRandom)?;
            println!("{}", signer.verifier_key());
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::AddLog(a) => {
            let origin = a.origin.trim();
            if origin.is_empty() || origin.chars().any(char::is_control) {
                bail!("the origin must be one line of text, as in the log's checkpoints (e.g. logbook.example/default)");
            }
            let key = CheckpointVerifier::new(&a.key)
                .context("the key must be the log's checkpoint verifier key (name+id+base64), as `logbook serve` prints it")?;
            logbook_integrity::keys::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
            let state = State::open(dir)?;
            if state.add_log(origin, key.key(), SystemClock.now().as_micros())? {
                println!("added {origin}: its checkpoints signed by {} will be cosigned", key.key());
            } else {
                println!("{origin} was already added with this key");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
