//! The API contract: the OpenAPI document the server serves is the checked-in
//! `docs/openapi.json`, every `/api/` route the server answers is in it (and nothing in it is
//! missing from the server), and every operation says what it takes and answers.

use logbook_test_support::{Backend, Session, TestApp};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The application on a fresh SQLite store (the routes do not depend on the backend), with an
/// admin signed in.
struct Server {
    app: TestApp,
    /// An admin's session: `Cookie` and `X-CSRF-Token`.
    admin: Session,
}

impl Server {
    async fn start() -> Self {
        let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite is always available");
        let password = "correct horse battery staple";
        app.set_up_admin("admin@example.com", password).await;
        let admin = app.sign_in("admin@example.com", password).await;
        Self { app, admin }
    }

    async fn stop(self) {
        self.app.stop().await;
    }

    async fn document(&self) -> String {
        let resp = self.app.http.get(format!("{}/api/v1/openapi.json", self.app.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        resp.text().await.unwrap()
    }

    /// Whether the server has a route for `method` on `path`: anything but the router's own
    /// refusals (405 for a known path with another method, the fallback's 404 "no such
    /// endpoint"). The request carries no credentials and an empty body, so no handler changes
    /// anything: each is refused by its extractors (401, 400) or answers a read.
    async fn serves(&self, method: &str, path: &str) -> bool {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = self.app.http.request(method, format!("{}{path}", self.app.base)).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        !(status == 405 || (status == 404 && body["error"]["message"] == "no such endpoint"))
    }
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let server = Server::start().await;
    let served = server.document().await;
    server.stop().await;
    assert_eq!(served, logbook_server::openapi::document());
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    let v: Value = serde_json::from_str(&served).unwrap();
    for p in [
        "/api/v1/events",
        "/api/v1/checkpoint",
        "/api/v1/public-key",
        "/api/v1/proof/inclusion",
        "/api/v1/proof/consistency",
    ] {
        assert!(v["paths"][p].is_object(), "{p} is documented");
    }
    assert!(
        checked_in == served,
        "docs/openapi.json is not what the server serves: run `UPDATE_OPENAPI=1 cargo test -p logbook-server --test api openapi` and commit it"
    );
}

/// Every string literal of the server's source that starts with `/api/`: every path a route
/// could be registered under, however it is registered.
fn api_paths_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for literal in text.split("\"/api/").skip(1) {
                    let end = literal.find(['"', '?']).unwrap_or(literal.len());
                    found.insert(format!("/api/{}", &literal[..end]));
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
    found
}

/// `{id}`-style segments filled in, as a client would.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') && seg.ends_with('}') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_served_api_route_is_documented_and_every_documented_one_served() {
    let doc: Value = serde_json::from_str(&logbook_server::openapi::document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let server = Server::start().await;
    let mut candidates = api_paths_in_source();
    candidates.extend(paths.keys().cloned());
    assert!(candidates.len() > 20, "{candidates:?}");
    let mut undocumented = Vec::new();
    let mut unserved = Vec::new();
    for path in &candidates {
        for method in METHODS {
            let documented = doc["paths"][path.as_str()][method].is_object();
            let served = server.serves(method, &concrete(path)).await;
            if served && !documented {
                undocumented.push(format!("{} {path}", method.to_uppercase()));
            }
            if documented && !served {
                unserved.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    server.stop().await;
    assert!(undocumented.is_empty(), "served but not in the OpenAPI document: {undocumented:?}");
    assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
}

/// Every operation that reads a JSON body documents it: sent as an admin with a body that is
/// not JSON, an operation whose answer says so (`bad_json`, `malformed_json`) must have a JSON
/// `requestBody` in the document. (Signing out is left out: it would end the session.)
#[tokio::test]
async fn every_operation_that_reads_json_documents_its_request_body() {
    let doc: Value = serde_json::from_str(&logbook_server::openapi::document()).unwrap();
    let server = Server::start().await;
    let (cookie, csrf) = (server.admin.cookie.clone(), server.admin.csrf.clone());
    let mut missing = Vec::new();
    let mut reads_json = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "get" || (method == "delete" && path == "/api/v1/session") {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = server
                .app
                .http
                .request(m, format!("{}{}", server.app.base, concrete(path)))
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 400 && matches!(body["error"]["code"].as_str(), Some("bad_json" | "malformed_json")) {
                reads_json += 1;
                if !op["requestBody"]["content"]["application/json"]["schema"].is_object() {
                    missing.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    server.stop().await;
    assert!(reads_json >= 10, "only {reads_json} operations read JSON");
    assert!(missing.is_empty(), "read a JSON body the document does not describe: {missing:?}");
}

/// A schema, or a `$ref` to one that exists.
fn check_schema(doc: &Value, schema: &Value, at: &str) {
    assert!(schema.is_object(), "{at}: no schema");
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{at}: {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{at}: {r} is not defined");
    }
}

#[test]
fn every_operation_documents_its_request_and_responses() {
    let doc: Value = serde_json::from_str(&logbook_server::openapi::document()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{} {path}", method.to_uppercase());
            assert!(op["operationId"].is_string() && op["tags"].is_array(), "{at}");
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().unwrap_or_else(|| panic!("{at}: request without content"));
                for (media, c) in content {
                    check_schema(&doc, &c["schema"], &format!("{at} request {media}"));
                }
            }
            // A state-changing call with a session needs the CSRF token with it.
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let session = security.iter().any(|s| s.get("session").is_some());
            if session && method != "get" {
                assert!(security.iter().any(|s| s.get("csrf").is_some()), "{at}: session without csrf");
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{at}: no success answer");
            if op.get("requestBody").is_some() || op.get("parameters").is_some() {
                assert!(responses.contains_key("400"), "{at}: a bad request is not documented");
            }
            if session {
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{at}: {status}");
                }
            }
            for (status, resp) in responses {
                let content = resp["content"].as_object();
                if status.starts_with('4') || status.starts_with('5') {
                    let schema =
                        &content.unwrap_or_else(|| panic!("{at} {status}: no body"))["application/json"]["schema"];
                    assert_eq!(schema["$ref"], "#/components/schemas/ErrorBody", "{at} {status}");
                } else if status != "204" {
                    let content = content.unwrap_or_else(|| panic!("{at} {status}: no body"));
                    for (media, c) in content {
                        check_schema(&doc, &c["schema"], &format!("{at} {status} {media}"));
                    }
                }
            }
        }
    }
    assert!(operations >= 34, "{operations} operations");
    // The real view types, not objects without properties (the document itself aside).
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if schema["type"] == "object" {
            assert!(schema["properties"].is_object(), "{name} is an object without properties");
        }
    }
}
