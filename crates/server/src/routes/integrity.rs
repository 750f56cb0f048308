//! Checkpoints, the public key and proofs: open to everyone, since they reveal only hashes; and
//! the witnesses' status, for admins.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use logbook_integrity::proof::{ConsistencyProof, InclusionProof};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use logbook_accounts::permission::ManageSettings;
use logbook_log::cosigning::CheckpointWitnessing;

use super::resolve_org;
use crate::auth::Auth;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

const TEXT: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgParam {
    /// Organization; the platform's own when absent.
    pub org: Option<String>,
}

/// The latest signed checkpoint (C2SP tlog-checkpoint in a signed note), with the stored
/// cosignatures of the configured witnesses appended as further signature lines (C2SP
/// tlog-cosignature): one note that the log's key and each witness's key verify. The headers
/// say whether it reached the witness quorum.
#[utoipa::path(get, path = "/api/v1/checkpoint", tag = "integrity", params(OrgParam), responses(
    (status = 200, description = "signed note, with the witnesses' cosignature lines", body = String, content_type = "text/plain",
        headers(
            ("Logbook-Cosignatures" = u64, description = "how many configured witnesses' cosignatures the note carries"),
            ("Logbook-Witness-Quorum" = String, description = "`reached` or `not-reached`, then `; quorum=K` (K is 0 without witnesses)"),
        )),
    (status = 404, description = "no such organization, or no checkpoint yet"),
    (status = 503, description = "the store cannot be read right now")))]
pub async fn checkpoint(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OrgParam>,
) -> Result<impl IntoResponse, ApiError> {
    let org = resolve_org(&state, q.org.as_deref()).await?;
    let (cp, witnessing) = state
        .log
        .cosigned_checkpoint(&org)
        .await?
        .ok_or_else(|| ApiError::NotFound("the log has no signed checkpoint yet".into()))?;
    let quorum =
        format!("{}; quorum={}", if witnessing.quorum_reached { "reached" } else { "not-reached" }, witnessing.quorum);
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
        (header::HeaderName::from_static("logbook-cosignatures"), witnessing.cosigned_by.len().to_string()),
        (header::HeaderName::from_static("logbook-witness-quorum"), quorum),
    ];
    Ok((headers, cp.note))
}

/// Where each configured witness stands with each log (admins only: the URLs and errors can name
/// hosts of the internal network; the cosignatures themselves are public in `/api/v1/checkpoint`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WitnessesBody {
    /// How many cosignatures a checkpoint needs to count as witnessed (0 without witnesses).
    pub quorum: usize,
    pub witnesses: Vec<logbook_log::cosigning::WitnessStatus>,
    /// Integrity alarms raised since start (a witness refusing a checkpoint as inconsistent).
    pub alarms: Vec<logbook_log::cosigning::IntegrityAlarm>,
}

#[utoipa::path(get, path = "/api/v1/witnesses", tag = "integrity", security(("session" = [])),
    responses((status = 200, body = WitnessesBody)))]
pub async fn witnesses(
    State(state): State<AppState>,
    Auth(_auth): Auth<ManageSettings>,
) -> Result<Json<WitnessesBody>, ApiError> {
    Ok(Json(WitnessesBody {
        quorum: state.log.witness_quorum(),
        witnesses: state.log.witness_status(),
        alarms: state.log.integrity_alarms(),
    }))
}

/// The note verifier key that checks every checkpoint: `name+keyid+base64key`.
#[utoipa::path(get, path = "/api/v1/public-key", tag = "integrity", responses((status = 200, description = "verifier key", body = String, content_type = "text/plain")))]
pub async fn public_key(State(state): State<AppState>) -> impl IntoResponse {
    (TEXT, format!("{}\n", state.log.signer().verifier_key()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionParams {
    /// The event's position in its log.
    pub seq: u64,
    /// Tree size to prove against; the latest checkpoint's when absent.
    pub size: Option<u64>,
    pub org: Option<String>,
}

/// RFC 9162 §2.1.3 inclusion proof; hashes leaf to root, lowercase hex.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProofBody {
    pub seq: u64,
    pub size: u64,
    pub leaf_hash: String,
    pub hashes: Vec<String>,
    pub root: String,
    /// The checkpoint the proof is against (of tree size `size`): which witnesses cosigned it.
    pub checkpoint: CheckpointWitnessing,
}

impl InclusionProofBody {
    fn new(p: InclusionProof, checkpoint: CheckpointWitnessing) -> Self {
        use logbook_integrity::to_hex;
        Self {
            seq: p.seq,
            size: p.size,
            leaf_hash: to_hex(&p.leaf_hash),
            hashes: p.hashes.iter().map(to_hex).collect(),
            root: to_hex(&p.root),
            checkpoint,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/proof/inclusion", tag = "integrity", params(InclusionParams), responses(
    (status = 200, body = InclusionProofBody),
    (status = 400, description = "seq or size out of range"),
    (status = 404, description = "no such organization, or no checkpoint yet"),
    (status = 503, description = "the store cannot be read right now")))]
pub async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<InclusionParams>,
) -> Result<Json<InclusionProofBody>, ApiError> {
    let org = resolve_org(&state, q.org.as_deref()).await?;
    let proof = state.log.inclusion_proof(&org, q.seq, q.size).await?;
    let witnessing = state.log.witnessing(&org, proof.size).await?;
    Ok(Json(InclusionProofBody::new(proof, witnessing)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// The older tree size (at least 1).
    pub from: u64,
    /// The newer tree size; the latest checkpoint's when absent.
    pub to: Option<u64>,
    pub org: Option<String>,
}

/// RFC 9162 §2.1.4 consistency proof, lowercase hex.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProofBody {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<String>,
    pub old_root: String,
    pub new_root: String,
    /// The checkpoint of size `to` the proof leads to: which witnesses cosigned it.
    pub checkpoint: CheckpointWitnessing,
}

impl ConsistencyProofBody {
    fn new(p: ConsistencyProof, checkpoint: CheckpointWitnessing) -> Self {
        use logbook_integrity::to_hex;
        Self {
            from: p.from,
            to: p.to,
            hashes: p.hashes.iter().map(to_hex).collect(),
            old_root: to_hex(&p.old_root),
            new_root: to_hex(&p.new_root),
            checkpoint,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/proof/consistency", tag = "integrity", params(ConsistencyParams), responses(
    (status = 200, body = ConsistencyProofBody),
    (status = 400, description = "sizes out of range"),
    (status = 404, description = "no such organization, or no checkpoint yet"),
    (status = 503, description = "the store cannot be read right now")))]
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsistencyParams>,
) -> Result<Json<ConsistencyProofBody>, ApiError> {
    let org = resolve_org(&state, q.org.as_deref()).await?;
    let proof = state.log.consistency_proof(&org, q.from, q.to).await?;
    let witnessing = state.log.witnessing(&org, proof.to).await?;
    Ok(Json(ConsistencyProofBody::new(proof, witnessing)))
}
