use std::collections::HashSet;

use reqwest::StatusCode;

use crate::support::{Creds, TestApp, assert_error, seed_cardholder};

async fn create_many(app: &TestApp, creds: &Creds, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for _ in chunk {
            let req = app
                .request(reqwest::Method::POST, "/cardholders", creds)
                .json(&seed_cardholder("490940000", None));
            tasks.push(tokio::spawn(async move {
                req.send().await.unwrap().json::<serde_json::Value>().await.unwrap()
            }));
        }
        for t in tasks {
            ids.push(t.await.unwrap()["cardholder"]["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

fn ids_of(page: &serde_json::Value) -> Vec<String> {
    page["cardholders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cardholder"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn pagination_walks_120_cardholders_both_ways_while_others_are_inserted(app: TestApp) {
    let t = app.tenant().await;
    let initial: HashSet<String> = create_many(&app, &t.sandbox, 120).await.into_iter().collect();
    assert_eq!(initial.len(), 120);

    let writer = {
        let req_app_base = app.base.clone();
        let creds = t.sandbox.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..30 {
                http.post(format!("{req_app_base}/cardholders"))
                    .basic_auth(&creds.id, Some(&creds.secret))
                    .json(&seed_cardholder("490940000", None))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };

    // Forwards (newest to oldest) with starting_after.
    let mut forward = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/cardholders?limit=50".to_owned(),
            Some(c) => format!("/cardholders?limit=50&starting_after={c}"),
        };
        let (status, page) = app.get(&t.sandbox, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids = ids_of(&page);
        forward.extend(ids.iter().cloned());
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        cursor = ids.last().cloned();
    }
    let unique: HashSet<&String> = forward.iter().collect();
    assert_eq!(unique.len(), forward.len(), "no duplicates going forwards");
    assert!(initial.iter().all(|id| unique.contains(id)), "no gaps going forwards");
    assert!(forward.windows(2).all(|w| w[0] > w[1]), "newest first");

    // Backwards (oldest to newest) with ending_before, from the oldest.
    let oldest = forward.last().unwrap().clone();
    let mut backward = vec![oldest.clone()];
    let mut cursor = oldest;
    loop {
        let (status, page) = app
            .get(&t.sandbox, &format!("/cardholders?limit=50&ending_before={cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let ids = ids_of(&page);
        if ids.is_empty() {
            break;
        }
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "each page is still newest first");
        backward.extend(ids.iter().rev().cloned());
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        cursor = ids.first().unwrap().clone();
    }
    let unique_back: HashSet<&String> = backward.iter().collect();
    assert_eq!(unique_back.len(), backward.len(), "no duplicates going backwards");
    assert!(
        initial.iter().all(|id| unique_back.contains(id)),
        "no gaps going backwards"
    );
    assert!(backward.windows(2).all(|w| w[0] < w[1]));
    writer.await.unwrap();

    let (_, all) = app.get(&t.sandbox, "/cardholders?limit=1").await;
    assert_eq!(all["total"], 150);
}

async fn page_parameters_are_validated(app: TestApp) {
    let t = app.tenant().await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=51", "limit"),
        ("limit=ten", "limit"),
        ("starting_after=nope", "starting_after"),
        ("ending_before=evt_0000000000000000000000000000abcd", "ending_before"),
        (
            "starting_after=crdhldr_0000000000000000000000000000abcd&ending_before=crdhldr_0000000000000000000000000000abce",
            "ending_before",
        ),
    ] {
        let (status, err) = app.get(&t.sandbox, &format!("/cardholders?{query}")).await;
        assert_error(
            status,
            &err,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_invalid",
        );
        assert_eq!(err["error"]["param"], param, "{query}");
    }
    let (status, err) = app.get(&t.sandbox, "/cardholders?page=2").await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_unknown",
    );
    let (status, page) = app.get(&t.sandbox, "/cardholders?limit=50").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["has_more"], false);
    assert_eq!(page["total"], 0);
}

app_tests!(
    pagination_walks_120_cardholders_both_ways_while_others_are_inserted,
    page_parameters_are_validated
);
