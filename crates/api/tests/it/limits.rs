use std::time::Duration;

use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};

use crate::support::{Creds, TestApp, assert_error, send};

async fn each_api_key_has_its_own_token_bucket(app: TestApp) {
    let limited = app.tenant_limited(&[], Some(5)).await;
    let other = app.tenant().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = app.request(Method::GET, "/cardholders", &limited.sandbox);
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (r.status(), retry_after, r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut limited_count = 0;
    for t in tasks {
        let (status, retry_after, body) = t.await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited_count += 1;
            assert_error(
                status,
                &body,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limited",
            );
            assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert!(
        limited_count >= 10,
        "a burst of 20 on a 5/s key is mostly refused ({limited_count})"
    );
    // Other keys are unaffected, and the bucket refills.
    assert_eq!(app.get(&other.sandbox, "/cardholders").await.0, StatusCode::OK);
    let mut recovered = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if app.get(&limited.sandbox, "/cardholders").await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
    }
    assert!(recovered);
}

async fn repeated_failed_authentication_is_refused_for_a_while(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.auth_failures_per_minute = 5).await else {
        return;
    };
    let t = app.tenant().await;
    let wrong = Creds {
        id: t.sandbox.id.clone(),
        secret: "sk_test_wrong".into(),
    };
    for _ in 0..5 {
        let (status, _) = app.get(&wrong, "/cardholders").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = app.get(&wrong, "/cardholders").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the sixth failure trips the brake");
    let r = app
        .request(Method::GET, "/cardholders", &t.sandbox)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even good credentials wait now"
    );
    assert!(r.headers().get("retry-after").is_some());
    let (status, body) = send(app.request(Method::GET, "/cardholders", &t.sandbox)).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "too_many_failed_authentications",
    );
}

both_backends!(repeated_failed_authentication_is_refused_for_a_while);
app_tests!(each_api_key_has_its_own_token_bucket);

/// A client that sends its body too slowly is cut off with 408 in the envelope.
async fn a_slow_client_gets_408(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = TestApp::spawn_with(b, |c| c.request_timeout_ms = 300).await else {
        return;
    };
    let t = app.tenant().await;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", t.sandbox.id, t.sandbox.secret),
    );
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /cardholders HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"first_"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    assert!(
        read.is_ok(),
        "the server answered and closed instead of waiting forever"
    );
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 0);
}

both_backends!(a_slow_client_gets_408);

/// Heads over `request_header_limit_bytes` (16 KiB) get 431 in the envelope, whether one giant
/// header or many ordinary ones; heads the HTTP layer itself refuses (over ~400 KiB or more than
/// 100 headers) get a bare 431 or a closed connection, never a 5xx or a hang.
async fn oversized_request_headers_are_refused_with_431(app: TestApp) {
    let t = app.tenant().await;
    let ok = app
        .request(Method::GET, "/cardholders", &t.sandbox)
        .header("x-note", "n".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "an 8 KiB header is within the limit");

    let (status, body) = send(
        app.request(Method::GET, "/cardholders", &t.sandbox)
            .header("x-giant", "g".repeat(20 * 1024)),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "invalid_request_error",
        "headers_too_large",
    );

    let mut many = app.request(Method::GET, "/cardholders", &t.sandbox);
    for i in 0..20 {
        many = many.header(format!("x-part-{i}"), "p".repeat(1024));
    }
    let (status, body) = send(many).await;
    assert_error(
        status,
        &body,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "invalid_request_error",
        "headers_too_large",
    );
    // Refused before authentication: bad credentials with a giant head are a 431, not a 401.
    let wrong = Creds {
        id: t.sandbox.id.clone(),
        secret: "sk_test_wrong".into(),
    };
    let (status, _) = send(
        app.request(Method::GET, "/cardholders", &wrong)
            .header("x-giant", "g".repeat(20 * 1024)),
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    let mut crowd = app.request(Method::GET, "/cardholders", &t.sandbox);
    for i in 0..150 {
        crowd = crowd.header(format!("x-h-{i}"), "v");
    }
    let huge = app
        .request(Method::GET, "/cardholders", &t.sandbox)
        .header("x-huge", "h".repeat(1024 * 1024));
    for req in [crowd, huge] {
        match tokio::time::timeout(Duration::from_secs(10), req.send()).await {
            Ok(Ok(r)) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            Ok(Err(_closed)) => {}
            Err(_) => panic!("the server neither answered nor closed the connection"),
        }
    }
    // The server is fine afterwards.
    assert_eq!(app.get(&t.sandbox, "/cardholders").await.0, StatusCode::OK);
}

app_tests!(oversized_request_headers_are_refused_with_431);
