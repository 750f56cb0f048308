//! The checked-in API document is the generated one.

use serde_json::Value;

#[test]
fn openapi_document_is_checked_in() {
    let generated = logbook_server::openapi::document();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p logbook-server --test api openapi` and commit it"
    );
    let v: Value = serde_json::from_str(&generated).unwrap();
    for p in [
        "/api/v1/events",
        "/api/v1/checkpoint",
        "/api/v1/public-key",
        "/api/v1/proof/inclusion",
        "/api/v1/proof/consistency",
    ] {
        assert!(v["paths"][p].is_object(), "{p} is documented");
    }
}
