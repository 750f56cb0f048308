//! Checkpoints, the public key and proofs: open to everyone, since they reveal only hashes.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use logbook_integrity::proof::{ConsistencyProof, InclusionProof};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::resolve_org;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

const TEXT: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgParam {
    /// Organization; the platform's own when absent.
    pub org: Option<String>,
}

/// The latest signed checkpoint (C2SP tlog-checkpoint in a signed note).
#[utoipa::path(get, path = "/api/v1/checkpoint", tag = "integrity", params(OrgParam), responses(
    (status = 200, description = "signed note", body = String, content_type = "text/plain"),
    (status = 404, description = "no such organization, or no checkpoint yet"),
    (status = 503, description = "the store cannot be read right now")))]
pub async fn checkpoint(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OrgParam>,
) -> Result<impl IntoResponse, ApiError> {
    let org = resolve_org(&state, q.org.as_deref()).await?;
    let cp = state
        .log
        .latest_checkpoint(&org)
        .await?
        .ok_or_else(|| ApiError::NotFound("the log has no signed checkpoint yet".into()))?;
    Ok((TEXT, cp.note))
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
}

impl From<InclusionProof> for InclusionProofBody {
    fn from(p: InclusionProof) -> Self {
        use logbook_integrity::to_hex;
        Self {
            seq: p.seq,
            size: p.size,
            leaf_hash: to_hex(&p.leaf_hash),
            hashes: p.hashes.iter().map(to_hex).collect(),
            root: to_hex(&p.root),
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
    Ok(Json(state.log.inclusion_proof(&org, q.seq, q.size).await?.into()))
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
}

impl From<ConsistencyProof> for ConsistencyProofBody {
    fn from(p: ConsistencyProof) -> Self {
        use logbook_integrity::to_hex;
        Self {
            from: p.from,
            to: p.to,
            hashes: p.hashes.iter().map(to_hex).collect(),
            old_root: to_hex(&p.old_root),
            new_root: to_hex(&p.new_root),
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
    Ok(Json(state.log.consistency_proof(&org, q.from, q.to).await?.into()))
}
