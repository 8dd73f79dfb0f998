//! Shutdown (Ctrl-C): requests in flight finish with their full answer; connections with no
//! request in flight (idle keep-alive, or a request head only partly sent) do not keep the server
//! waiting.

use std::sync::Arc;

use cardplane_api::config::KycProviderKind;
use cardplane_testkit::{Backend, both_backends};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{FakeKyc, KycBehaviour, TestApp, seed_cardholder, send};

async fn shutdown_finishes_requests_in_flight_and_does_not_wait_for_idle_connections(b: Backend) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let vendor = FakeKyc::start(KycBehaviour::Held(gate.clone(), json!({"status": "PASSED"}))).await;
    let url = vendor.url.clone();
    let Some(mut app) = TestApp::spawn_with(b, move |c| {
        c.kyc.sandbox_provider = KycProviderKind::Http;
        c.kyc.http_url = Some(url);
        // Longer than the test could take: the vendor answers when the test lets it.
        c.kyc.http_timeout_ms = 600_000;
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let address = app.base.trim_start_matches("http://").to_owned();

    // An idle keep-alive connection, and one that sent only part of a request head.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let mut half = TcpStream::connect(&address).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();

    // A request in flight: creating a cardholder waits on the KYC vendor.
    let create = app
        .request(reqwest::Method::POST, "/cardholders", &t.sandbox)
        .json(&seed_cardholder("490940000", None));
    let in_flight = tokio::spawn(send(create));
    while vendor.received.lock().unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    app.signal_shutdown();
    gate.add_permits(1);
    let (status, created) = in_flight.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the request in flight is answered in full: {created}"
    );
    assert_eq!(created["cardholder"]["kyc_status"], "PASSED");

    // The server stops while both other connections are still open on the client's side.
    app.stopped().await.unwrap();
    assert!(TcpStream::connect(&address).await.is_err(), "the listener is closed");
    drop((idle, half));
}

both_backends!(shutdown_finishes_requests_in_flight_and_does_not_wait_for_idle_connections);
