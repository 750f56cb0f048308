//! The verified mark means what it says: an entry whose stored bytes were edited in the database
//! (append-only trigger dropped, the leaf changed, the stored leaf hash left as it was) is shown
//! as altered on its record page, in the list and in the API, and never as verified.

use logbook_core::leaf;
use logbook_store::{Org, Store};
use logbook_test_support::{on_both_stores, Session, TestApp};
use serde_json::Value;

use crate::helpers::{ADMIN, PASSWORD};

on_both_stores!(fixture = crate::helpers::admin; an_entry_edited_in_the_database_is_shown_altered_never_verified);

async fn page(app: &TestApp, s: &Session, path: &str) -> String {
    let resp = app.http.get(app.url(path)).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// The `<tr>` of entry `seq` in the Audit Log table.
fn row_of(html: &str, seq: u64) -> &str {
    let start = html.find(&format!("data-seq=\"{seq}\"")).unwrap_or_else(|| panic!("no row for seq {seq}: {html}"));
    let end = html[start..].find("</tr>").map_or(html.len(), |e| start + e);
    // Back to the row's opening tag, for its class.
    let open = html[..start].rfind("<tr").unwrap_or(start);
    &html[open..end]
}

/// As someone with write access to the database: the entry's leaf gets another source IP, its
/// stored leaf hash is left as it was.
async fn forge_source_ip(app: &TestApp, org: &Org, seq: u64, ip: &str) {
    let row = app.store.events(org.id, seq..seq + 1).await.unwrap().remove(0);
    let mut e = leaf::decode(&row.leaf).unwrap();
    e.body.source.ip = Some(ip.parse().unwrap());
    let forged = leaf::encode(&e);
    match &app.database_url {
        None => {
            let db = rusqlite::Connection::open(app.dir().join(logbook_store_sqlite::FILE_NAME)).unwrap();
            db.execute_batch("DROP TRIGGER events_append_only_update").unwrap();
            let n = db
                .execute(
                    "UPDATE events SET leaf = ?1 WHERE org = ?2 AND seq = ?3",
                    rusqlite::params![forged, org.id.0, seq as i64],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        Some(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            c.batch_execute("ALTER TABLE events DISABLE TRIGGER events_append_only").await.unwrap();
            let n = c
                .execute(
                    "UPDATE events SET leaf = $1 WHERE org = $2 AND seq = $3",
                    &[&forged, &org.id.0, &(seq as i64)],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
    }
    let stored = app.store.events(org.id, seq..seq + 1).await.unwrap().remove(0);
    assert_eq!((stored.leaf, stored.leaf_hash), (forged, row.leaf_hash), "the leaf changed, its stored hash did not");
}

async fn an_entry_edited_in_the_database_is_shown_altered_never_verified(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let org = app.org().await;
    let events = app.events().await;
    let target = events
        .iter()
        .rev()
        .find(|e| e.body.action.code() == "login.success" && e.body.source.ip.is_some())
        .expect("the admin's sign-in, with its source address");
    let seq = target.seq;
    let other = events.iter().find(|e| e.seq != seq).expect("another entry").seq;
    let size = app.size().await;
    app.checkpoint_covering(&org, size).await;

    // Before: verified everywhere.
    let record = page(&app, &admin, &format!("/audit-log/events/{seq}")).await;
    assert!(record.contains("✓ Verified") && !record.contains("Altered"), "{record}");
    assert!(record.contains("nobody can change it"), "the page says what verified guarantees: {record}");
    let list = page(&app, &admin, "/audit-log?limit=100").await;
    assert!(row_of(&list, seq).contains("✓ Verified"), "{}", row_of(&list, seq));

    forge_source_ip(&app, &org, seq, "203.0.113.66").await;

    // The record page shows the forged content, and says it is altered.
    let record = page(&app, &admin, &format!("/audit-log/events/{seq}")).await;
    assert!(record.contains("203.0.113.66"), "the page shows what is stored: {record}");
    assert!(record.contains("✗ Altered") && !record.contains("✓ Verified"), "{record}");
    assert!(record.contains("role=\"alert\"") && record.contains("logbook verify"), "what to do: {record}");
    assert!(record.contains("do not trust"), "{record}");

    // The list: that row altered (red), the others still verified.
    let list = page(&app, &admin, "/audit-log?limit=100").await;
    let row = row_of(&list, seq);
    assert!(row.contains("Altered") && !row.contains("✓ Verified"), "{row}");
    assert!(row.starts_with("<tr") && row[..row.find('>').unwrap()].contains("altered"), "the row is marked: {row}");
    let other_row = row_of(&list, other);
    assert!(other_row.contains("✓ Verified") && !other_row.contains("Altered"), "{other_row}");

    // The API says the same, computed from the same bytes.
    let resp = app.http.get(app.url("/api/v1/events?limit=100")).header("cookie", &admin.cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let listed = body["events"].as_array().unwrap();
    let entry = listed.iter().find(|e| e["seq"] == seq).unwrap();
    assert_eq!(entry["integrity"], "altered", "{entry}");
    assert_eq!(entry["source"]["ip"], "203.0.113.66");
    for e in listed.iter().filter(|e| e["seq"] != seq && e["seq"].as_u64().unwrap() < size) {
        assert_eq!(e["integrity"], "verified", "{e}");
    }
}
