//! A `logbook witness` in-process on port 0, on a fresh data directory, for tests of the witness
//! and of logs that use witnesses.

use std::sync::Arc;

use logbook_core::{SeededRandom, SystemClock};
use logbook_integrity::witness_protocol::{AddCheckpointRequest, ADD_CHECKPOINT_PATH};
use logbook_witness::Witness;
use tokio::sync::oneshot;

#[derive(Debug)]
pub struct TestWitness {
    /// `http://127.0.0.1:<port>`: the witness's URL prefix.
    pub base: String,
    /// The witness's cosignature verifier key.
    pub verifier_key: String,
    pub witness: Arc<Witness>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// What a witness answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl TestWitness {
    /// A witness named `witness.test/w<seed>` whose key comes from `seed`, watching no log yet.
    pub async fn spawn(seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let witness = Witness::open(
            dir.path(),
            Some(&format!("witness.test/w{seed}")),
            Arc::new(SystemClock),
            &SeededRandom::new(seed),
        )
        .unwrap();
        let witness = Arc::new(witness);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let served = tokio::spawn(logbook_witness::http::serve(listener, witness.clone(), async move {
            let _ = rx.await;
        }));
        let verifier_key = witness.signer().verifier_key().to_owned();
        Self { base, verifier_key, witness, dir, stop: Some(tx), served: Some(served) }
    }

    /// Registers a log, as `logbook witness add-log` does.
    pub fn add_log(&self, origin: &str, key: &str) {
        self.witness.state().add_log(origin, key, 0).unwrap();
    }

    /// The size and root the witness holds for `origin`.
    pub fn held(&self, origin: &str) -> (u64, Option<logbook_integrity::Hash>) {
        let s = self.witness.state().log(origin).unwrap().unwrap();
        (s.size, s.root)
    }

    /// POSTs a raw body to `/add-checkpoint`.
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> Answer {
        post(&self.base, body).await
    }

    pub async fn send(&self, req: &AddCheckpointRequest) -> Answer {
        self.post(req.to_body()).await
    }

    /// Stops the listener and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.served.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// POSTs `body` to `<base>/add-checkpoint`.
pub async fn post(base: &str, body: impl Into<reqwest::Body>) -> Answer {
    let client = reqwest::Client::builder().timeout(crate::PATIENCE).build().unwrap();
    let r = client.post(format!("{base}{ADD_CHECKPOINT_PATH}")).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let content_type =
        r.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Answer { status, content_type, body: r.text().await.unwrap() }
}
