//! Shutdown finishes a request in flight and takes no new connection.

use logbook_store::Store;
use logbook_test_support::{on_both_stores, wait_until, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_clean, event, parse_answer, Hostile};

on_both_stores!(fixture = crate::helpers::hostile; shutdown_finishes_a_request_in_flight);

async fn shutdown_finishes_a_request_in_flight(mut app: Hostile) {
    let body = serde_json::to_vec(&event()).unwrap();
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    // `Expect: 100-continue`: the server says when its handler starts reading the body, which is
    // the moment the request is in flight.
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        app.token,
        body.len()
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    within("100 Continue", async {
        while !interim.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(rd.read(&mut byte).await.unwrap(), 1, "the server closed the connection: {interim:?}");
            interim.push(byte[0]);
        }
    })
    .await;
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue"), "{}", String::from_utf8_lossy(&interim));
    wr.write_all(&body[..10]).await.unwrap();
    // Shut down while the body is half sent, and wait until the server takes no new connection
    // (its listener is closed): the request in flight still completes.
    app.begin_shutdown();
    let addr = app.addr;
    wait_until("the listener to close", || async move { TcpStream::connect(addr).await.is_err().then_some(()) }).await;
    wr.write_all(&body[10..]).await.unwrap();
    let mut raw = Vec::new();
    within("the answer", rd.read_to_end(&mut raw)).await.unwrap();
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, Some(201), "{answer:?}");
    let seq = answer.json()["seqs"][0].as_u64().unwrap();
    // No new connection is taken, and the server ends.
    app.stopped().await.unwrap();
    assert!(TcpStream::connect(app.addr).await.is_err());
    let org = app.org().await;
    let cp = app.store.latest_checkpoint(org.id).await.unwrap().unwrap();
    assert_eq!(cp.size, seq + 1, "the final checkpoint covers the last event");
    assert_clean("POST /api/v1/events during shutdown", &answer.head, &answer.body, &app.secrets);
}
