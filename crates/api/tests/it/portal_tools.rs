//! The developer portal's webhooks, events and sandbox simulator pages over real HTTP on both
//! backends: what a viewer and a developer see, refusals, the signing secret shown once, a
//! simulated authorization whose webhook arrives at a local receiver and shows in the delivery
//! log, redelivery, and one tenant's ids answering 404 to another tenant's user.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cardplane_api::workflows::admin::new_user;
use cardplane_domain::Timestamp;
use cardplane_domain::audit::{ActorKind, AuditRecord, Outcome};
use cardplane_domain::ids::{TenantId, UserId};
use cardplane_domain::people::{Person, Role, SignInGuard, TenantRole};
use cardplane_store::audit::AuditFilter;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::oneshot;

use crate::console::{Browser, PASSWORD, between};
use crate::support::{TestApp, TestTenant, serve_local};

/// Generous: the delivery worker polls every 50 ms; a starved CI machine may take seconds.
const POLLS_MAX: usize = 600;

async fn spawn(b: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(b, |c| {
        // Tenant users sign in without a second factor here; the worker delivers at once.
        c.operators.require_mfa = false;
        c.webhooks.worker = true;
        c.webhooks.poll_interval_ms = 50;
    })
    .await
}

/// A user of `tenant` with `role`, signed in to the portal.
pub(crate) async fn portal_user(app: &TestApp, tenant: &TestTenant, email: &str, role: TenantRole) -> Browser {
    let person = Person {
        id: UserId::generate(),
        email: email.to_owned(),
        name: email.to_owned(),
        role: Role::Tenant(role),
        tenant_id: Some(TenantId::parse(&tenant.id).unwrap()),
        disabled: false,
        mfa_enabled: false,
        guard: SignInGuard::default(),
        created_at: Timestamp::now(),
        last_login_at: None,
    };
    let user = new_user(person, PASSWORD.into()).await.unwrap();
    let audit = AuditRecord::new(Timestamp::now(), ActorKind::Cli, None, "user.created", Outcome::Success);
    app.state.people.insert_user(&user, &audit).await.unwrap();
    let mut b = Browser::new(app);
    let signed_in = b
        .post(
            "/portal/login",
            &[("email", email), ("password", PASSWORD), ("code", "")],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.html);
    b
}

/// A local webhook receiver that counts what it gets and answers 204.
struct Receiver {
    url: String,
    got: Arc<AtomicUsize>,
    _shutdown: oneshot::Sender<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got = Arc::new(AtomicUsize::new(0));
        let count = got.clone();
        let router = axum::Router::new().fallback(axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }));
        let (base, stop) = serve_local(router).await;
        let url = format!("{base}/hooks?token=hidden");
        Receiver {
            url,
            got,
            _shutdown: stop,
        }
    }
}

/// A tenant with a funded sandbox program and an active card; returns the card id.
pub(crate) async fn sandbox_card(app: &TestApp, tenant: &TestTenant) -> String {
    app.program(&tenant.sandbox, "prog_portal", "411111", 1_000_000).await;
    let card = app.card_with_balance(&tenant.sandbox, "prog_portal", 50_000).await;
    card["id"].as_str().unwrap().to_owned()
}

/// Polls `path` until `done` holds for its HTML (a bounded number of times).
pub(crate) async fn poll_until(b: &mut Browser, path: &str, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..POLLS_MAX {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        if done(&page.html) {
            return page.html;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never showed what was awaited");
}

pub(crate) fn rows(html: &str, table: &str) -> usize {
    between(html, &format!("<table id=\"{table}\">"), "</table>")
        .unwrap_or_default()
        .matches("<tr>")
        .count()
        .saturating_sub(1)
}

/// The forms that change something; the header's sign-out form is on every page.
const ACTION_FORMS: &[&str] = &[
    "id=\"create-endpoint\"",
    "id=\"rotate-secret\"",
    "id=\"replay\"",
    "id=\"redeliver\"",
    "id=\"simulate-authorize\"",
    "id=\"simulate-clear\"",
    "class=\"simulate-card\"",
    "/disable\"",
];

async fn a_viewer_reads_the_tools_without_forms_and_a_forged_post_is_refused(app: TestApp) {
    let tenant = app.tenant().await;
    sandbox_card(&app, &tenant).await;
    let (status, created) = app
        .post(
            &tenant.sandbox,
            "/webhook_endpoints",
            &json!({"url": "http://127.0.0.1:9/hooks"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let endpoint = created["webhook_endpoint"]["id"].as_str().unwrap().to_owned();
    let (_, events) = app.get(&tenant.sandbox, "/events?limit=1").await;
    let event = events["events"][0]["event"]["id"].as_str().unwrap().to_owned();
    let pages = [
        "/portal".to_owned(),
        "/portal/sandbox/webhooks".to_owned(),
        format!("/portal/sandbox/webhooks/{endpoint}"),
        format!("/portal/sandbox/webhooks/{endpoint}/events/{event}"),
        "/portal/sandbox/events".to_owned(),
        format!("/portal/sandbox/events/{event}"),
        "/portal/sandbox/simulator".to_owned(),
    ];

    let mut viewer = portal_user(&app, &tenant, "vera@example.com", TenantRole::Viewer).await;
    for path in &pages {
        let page = viewer.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        for form in ACTION_FORMS {
            assert!(!page.html.contains(form), "{path} shows a viewer {form}");
        }
    }
    let mut developer = portal_user(&app, &tenant, "dev@example.com", TenantRole::Developer).await;
    let mut seen = Vec::new();
    for path in &pages {
        let page = developer.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        seen.extend(ACTION_FORMS.iter().filter(|f| page.html.contains(**f)));
    }
    for form in ACTION_FORMS {
        assert!(seen.contains(&form), "a developer sees {form} somewhere");
    }

    // A viewer's forged POSTs, with a valid CSRF token, are refused and audited.
    let csrf = viewer.get("/portal/sandbox/webhooks").await.csrf();
    let forged = [
        (
            "/portal/sandbox/webhooks".to_owned(),
            vec![("url", "http://127.0.0.1:9/x")],
        ),
        (format!("/portal/sandbox/webhooks/{endpoint}/rotate_secret"), vec![]),
        (format!("/portal/sandbox/webhooks/{endpoint}/delete"), vec![]),
        (
            "/portal/sandbox/simulator/authorize".to_owned(),
            vec![("amount", "1000")],
        ),
    ];
    for (path, fields) in &forged {
        let mut form = fields.clone();
        form.push(("csrf_token", &csrf));
        let refused = viewer.post(path, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {}", refused.html);
    }
    let audited = app
        .state
        .audit
        .list_audit(
            &AuditFilter {
                action: Some("POST /portal/{environment}/webhooks/{endpoint_id}/rotate_secret".into()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].record.status, Some(403));
    assert_eq!(audited[0].record.object_id.as_deref(), Some(endpoint.as_str()));

    // A developer's POST without the form's CSRF token is refused too; nothing changed.
    let no_token = developer
        .post(&format!("/portal/sandbox/webhooks/{endpoint}/delete"), &[])
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{}", no_token.html);
    let (status, _) = app
        .get(&tenant.sandbox, &format!("/webhook_endpoints/{endpoint}"))
        .await;
    assert_eq!(status, StatusCode::OK, "the endpoint is still there");
}

async fn an_endpoint_is_created_with_its_secret_shown_once_then_rotated_paused_and_deleted(app: TestApp) {
    let tenant = app.tenant().await;
    let mut dev = portal_user(&app, &tenant, "dev@example.com", TenantRole::Developer).await;
    let list = dev.get("/portal/sandbox/webhooks").await;
    let csrf = list.csrf();

    // A url that is no url is refused on the page, which keeps what was typed.
    let bad = dev
        .post(
            "/portal/sandbox/webhooks",
            &[("csrf_token", &csrf), ("url", "not a url")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.html);
    assert!(bad.html.contains("id=\"create-error\""), "{}", bad.html);

    let created = dev
        .post(
            "/portal/sandbox/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", "http://127.0.0.1:9/hooks?token=hidden"),
                ("description", "Backend"),
                ("event", "transaction.created"),
                ("event", "transaction.updated"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    let secret = between(&created.html, "<code id=\"new-endpoint-secret\">", "<").unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(created.html.contains("data-copy=\"new-endpoint-secret\""));
    let id = between(
        &created.html,
        "<a class=\"mono\" href=\"/portal/sandbox/webhooks/",
        "\"",
    )
    .unwrap();

    // Listed without the secret and without the url's query string.
    let list = dev.get("/portal/sandbox/webhooks").await;
    assert!(!list.html.contains(&secret));
    assert!(!list.html.contains("token=hidden"));
    assert!(
        list.html.contains("transaction.created, transaction.updated"),
        "{}",
        list.html
    );

    // Rotation shows a new secret, once; the API signs with both during the overlap.
    let rotated = dev
        .post(
            &format!("/portal/sandbox/webhooks/{id}/rotate_secret"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.html);
    let new_secret = between(&rotated.html, "<code id=\"rotated-secret\">", "<").unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let again = dev.get(&format!("/portal/sandbox/webhooks/{id}")).await;
    assert!(!again.html.contains(&new_secret) && !again.html.contains(&secret));
    let endpoint = app
        .state
        .webhooks
        .get_endpoint(&scope(&tenant), &parse(&id))
        .await
        .unwrap();
    assert!(endpoint.rotation_active(Timestamp::now()));

    // Pause, resume, delete: each audited as the person who did it.
    for action in ["disable", "enable", "delete"] {
        let done = dev
            .post(
                &format!("/portal/sandbox/webhooks/{id}/{action}"),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{action}: {}", done.html);
    }
    let (status, _) = app.get(&tenant.sandbox, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audited = app
        .state
        .audit
        .list_audit(
            &AuditFilter {
                object_id: Some(id.clone()),
                ..AuditFilter::default()
            },
            20,
        )
        .await
        .unwrap();
    let mut actions: Vec<&str> = audited.iter().map(|e| e.record.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "webhook_endpoint.create",
            "webhook_endpoint.delete",
            "webhook_endpoint.disable",
            "webhook_endpoint.enable",
            "webhook_endpoint.rotate_secret"
        ]
    );
}

fn scope(tenant: &TestTenant) -> cardplane_store::Scope {
    cardplane_store::Scope {
        tenant_id: TenantId::parse(&tenant.id).unwrap(),
        environment: cardplane_domain::Environment::Sandbox,
    }
}

fn parse(id: &str) -> cardplane_domain::ids::WebhookEndpointId {
    cardplane_domain::ids::WebhookEndpointId::parse(id).unwrap()
}

async fn a_simulated_authorization_is_approved_and_its_webhook_is_logged_and_redelivered(app: TestApp) {
    let tenant = app.tenant().await;
    let card = sandbox_card(&app, &tenant).await;
    let receiver = Receiver::start().await;
    let mut dev = portal_user(&app, &tenant, "dev@example.com", TenantRole::Developer).await;
    let csrf = dev.get("/portal/sandbox/webhooks").await.csrf();
    let created = dev
        .post(
            "/portal/sandbox/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", &receiver.url),
                ("event", "transaction.created"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    let endpoint = between(
        &created.html,
        "<a class=\"mono\" href=\"/portal/sandbox/webhooks/",
        "\"",
    )
    .unwrap();

    // The overview's one-click form: an authorization of 10.00 on the active card.
    let home = dev.get("/portal").await;
    assert!(
        home.html.contains(&format!("name=\"card_id\" value=\"{card}\"")),
        "{}",
        home.html
    );
    let answered = dev
        .post(
            "/portal/sandbox/simulator/authorize",
            &[("csrf_token", &csrf), ("card_id", &card), ("amount", "1000")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.html);
    assert_eq!(
        between(&answered.html, "<span id=\"decision\">", "<").as_deref(),
        Some("approved")
    );
    assert!(answered.html.contains("id=\"decision-trace\""), "{}", answered.html);
    let txn = between(&answered.html, "<code id=\"transaction-id\">", "<").unwrap();
    let (status, t) = app.get(&tenant.sandbox, &format!("/transactions/{txn}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["transaction"]["authorized_amount"], 1000, "{t}");

    // Cleared from the follow-up form, which offers the authorization just made.
    let cleared = dev
        .post(
            "/portal/sandbox/simulator/clear",
            &[("csrf_token", &csrf), ("authorization_id", &txn), ("amount", "")],
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.html);
    assert_eq!(
        between(&cleared.html, "<span id=\"decision\">", "<").as_deref(),
        Some("approved"),
        "{}",
        cleared.html
    );

    // The worker delivers transaction.created to the receiver; the delivery log shows it.
    let log_path = format!("/portal/sandbox/webhooks/{endpoint}");
    let log = poll_until(&mut dev, &log_path, |html| html.contains(">delivered<")).await;
    let event = between(
        &log,
        &format!("href=\"/portal/sandbox/webhooks/{endpoint}/events/"),
        "\"",
    )
    .unwrap();
    assert!(log.contains("transaction.created"));
    assert!(receiver.got.load(Ordering::SeqCst) >= 1);
    let delivery_path = format!("/portal/sandbox/webhooks/{endpoint}/events/{event}");
    let delivery = dev.get(&delivery_path).await;
    assert_eq!(rows(&delivery.html, "attempts"), 1, "{}", delivery.html);
    assert!(delivery.html.contains("HTTP 204"), "{}", delivery.html);

    // Redeliver: a second attempt of the same delivery.
    let redelivered = dev
        .post(&format!("{delivery_path}/redeliver"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(redelivered.status, StatusCode::SEE_OTHER, "{}", redelivered.html);
    poll_until(&mut dev, &delivery_path, |html| rows(html, "attempts") == 2).await;

    // The events browser: filtered by type, and the event with its delivery.
    let events = dev.get("/portal/sandbox/events?type=transaction.created").await;
    assert!(events.html.contains(&event), "{}", events.html);
    assert!(!events.html.contains("<code>card.created</code>"), "{}", events.html);
    let shown = dev.get(&format!("/portal/sandbox/events/{event}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.html.contains(&txn), "the JSON carries the transaction");
    assert_eq!(rows(&shown.html, "event-deliveries"), 1, "{}", shown.html);

    // A declined one: more than the card holds, with its reason shown.
    let declined = dev
        .post(
            "/portal/sandbox/simulator/authorize",
            &[
                ("csrf_token", &csrf),
                ("card_id", &card),
                ("amount", "60000"),
                ("merchant_name", "Big Store"),
            ],
        )
        .await;
    assert_eq!(
        between(&declined.html, "<span id=\"decision\">", "<").as_deref(),
        Some("declined"),
        "{}",
        declined.html
    );
    assert!(declined.html.contains("id=\"decline-reason\""), "{}", declined.html);

    // Replay since an instant: every subscribed event after it is scheduled again; an instant
    // that is not RFC 3339 is refused on the page.
    let replay = format!("{log_path}/replay");
    let bad = dev
        .post(&replay, &[("csrf_token", &csrf), ("since", "yesterday")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.html);
    assert!(bad.html.contains("id=\"replay-error\""), "{}", bad.html);
    let replayed = dev
        .post(&replay, &[("csrf_token", &csrf), ("since", "2000-01-01T00:00:00Z")])
        .await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER, "{}", replayed.html);
    let location = replayed.location.unwrap();
    let scheduled: u64 = location.rsplit("scheduled=").next().unwrap().parse().unwrap();
    assert!(scheduled >= 1, "{location}");
    let notice = dev.get(&location).await;
    assert!(
        notice.html.contains(&format!("{scheduled} deliveries scheduled")),
        "{}",
        notice.html
    );
}

async fn another_tenants_endpoints_and_events_are_not_found(app: TestApp) {
    let a = app.tenant().await;
    let b = app.tenant().await;
    let (_, created) = app
        .post(
            &b.sandbox,
            "/webhook_endpoints",
            &json!({"url": "http://127.0.0.1:9/hooks"}),
        )
        .await;
    let endpoint = created["webhook_endpoint"]["id"].as_str().unwrap().to_owned();
    let (_, events) = app.get(&b.sandbox, "/events?limit=1").await;
    let event = events["events"][0]["event"]["id"].as_str().unwrap().to_owned();
    let mut dev = portal_user(&app, &a, "dev@example.com", TenantRole::Developer).await;
    for path in [
        format!("/portal/sandbox/webhooks/{endpoint}"),
        format!("/portal/sandbox/webhooks/{endpoint}/events/{event}"),
        format!("/portal/sandbox/events/{event}"),
        "/portal/sandbox/events/evt_nonsense".to_owned(),
        "/portal/live/simulator".to_owned(),
    ] {
        assert_eq!(dev.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let csrf = dev.get("/portal/sandbox/webhooks").await.csrf();
    for action in ["rotate_secret", "delete", "disable"] {
        let refused = dev
            .post(
                &format!("/portal/sandbox/webhooks/{endpoint}/{action}"),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{action}");
    }
    // B's card is not A's to simulate with.
    let card = sandbox_card(&app, &b).await;
    let refused = dev
        .post(
            "/portal/sandbox/simulator/authorize",
            &[("csrf_token", &csrf), ("card_id", &card), ("amount", "1000")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(refused.html.contains("no such card"), "{}", refused.html);
    let (status, _) = app.get(&b.sandbox, &format!("/webhook_endpoints/{endpoint}")).await;
    assert_eq!(status, StatusCode::OK, "B's endpoint is untouched");
}

app_tests!(
    spawn = super::spawn;
    a_viewer_reads_the_tools_without_forms_and_a_forged_post_is_refused,
    an_endpoint_is_created_with_its_secret_shown_once_then_rotated_paused_and_deleted,
    a_simulated_authorization_is_approved_and_its_webhook_is_logged_and_redelivered,
    another_tenants_endpoints_and_events_are_not_found,
);
