//! A real server on 127.0.0.1:0 over a fresh database, driven over real HTTP.

use std::sync::{Arc, Mutex, OnceLock};

use cardplane_api::state::AppState;
use cardplane_api::workflows::admin::{ProvisionedTenant, create_tenant};
use cardplane_api::{Application, Config};
use cardplane_domain::api_key::Permission;
use cardplane_domain::vault::Kek;
use cardplane_testkit::{Backend, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Uploaded documents land here, never in the source tree.
    _files: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

impl cardplane_testkit::http::Credentials for Creds {
    fn basic(&self) -> (&str, &str) {
        (&self.id, &self.secret)
    }
}

pub struct TestTenant {
    pub id: String,
    pub sandbox: Creds,
    pub live: Creds,
}

impl From<ProvisionedTenant> for TestTenant {
    fn from(t: ProvisionedTenant) -> Self {
        TestTenant {
            id: t.tenant_id,
            sandbox: Creds {
                id: t.sandbox_key.id,
                secret: t.sandbox_key.secret,
            },
            live: Creds {
                id: t.live_key.id,
                secret: t.live_key.secret,
            },
        }
    }
}

/// Log lines of every server in this test process, for leak scans.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

/// The error lines every server in this test process logged, to explain an unexpected answer.
pub fn logged_errors() -> String {
    captured_logs()
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = BufWriter(buf.clone());
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("trace,hyper=info,hyper_util=info,h2=info,reqwest=info,rustls=info")
            .with_writer(move || writer.clone())
            .try_init();
        buf
    })
}

#[derive(Clone)]
struct BufWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
        log_buffer();
        let db = TestDb::create(backend).await?;
        let mut config = Config {
            database_url: db.url.clone(),
            database_max_connections: 8,
            listen: "127.0.0.1:0".parse().unwrap(),
            kek: Some(Kek::generate().encode()),
            api_key_pepper: Some("test-pepper".into()),
            // Tests drive keys hard; the limits tests set a tenant's own rate.
            rate_limit_per_second: 100_000,
            // Bursts of concurrent requests on a starved 2-core machine can wait past the
            // production default of 2 s for a connection; no test here is about that wait (the
            // outage tests close the pool or stop the database, which answers at once).
            database_acquire_timeout_ms: 30_000,
            ..Config::default()
        };
        let files = tempfile::tempdir().expect("a directory for documents");
        config.operators.documents_dir = files.path().to_owned();
        configure(&mut config);
        let app = Application::build(config).await.expect("application builds");
        let base = format!("http://{}", app.address());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Some(TestApp {
            base,
            http: reqwest::Client::new(),
            state,
            db,
            shutdown: Some(tx),
            server: Some(server),
            _files: files,
        })
    }

    /// Sends the server its shutdown signal (as Ctrl-C does for `cardplane serve`).
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to stop after `signal_shutdown`.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        match self.server.take() {
            Some(server) => server.await.expect("the server task does not panic"),
            None => Ok(()),
        }
    }

    pub async fn tenant(&self) -> TestTenant {
        self.tenant_with(&[]).await
    }

    pub async fn tenant_with(&self, permissions: &[Permission]) -> TestTenant {
        self.tenant_limited(permissions, None).await
    }

    pub async fn tenant_limited(&self, permissions: &[Permission], rate_limit: Option<u32>) -> TestTenant {
        create_tenant(
            self.state.tenants.as_ref(),
            &self.state.pepper,
            "Test Tenant",
            permissions,
            rate_limit,
        )
        .await
        .unwrap()
        .into()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str, creds: &Creds) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth(&creds.id, Some(&creds.secret))
    }

    pub async fn get(&self, creds: &Creds, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, path, creds)).await
    }

    pub async fn post(&self, creds: &Creds, path: &str, body: &Value) -> (StatusCode, Value) {
        send(self.request(Method::POST, path, creds).json(body)).await
    }

    pub async fn post_idem(&self, creds: &Creds, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        send(
            self.request(Method::POST, path, creds)
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
    }

    /// Reveals a card's PAN, expiration and CVV with a key that may.
    pub async fn reveal(&self, creds: &Creds, card_id: &str) -> cardplane_testkit::http::RevealedCard {
        cardplane_testkit::http::reveal(&self.http, &self.base, creds, card_id).await
    }

    /// A sandbox network credential: the test plays the card network.
    pub async fn network_key(&self) -> Creds {
        let issued = cardplane_api::workflows::admin::create_network_credential(
            self.state.network.as_ref(),
            &self.state.pepper,
            cardplane_domain::Environment::Sandbox,
            "test network",
        )
        .await
        .expect("network credential");
        Creds {
            id: issued.id,
            secret: issued.secret,
        }
    }

    /// Creates a cardholder and returns its object.
    pub async fn cardholder(&self, creds: &Creds, body: &Value) -> Value {
        let (status, json) = self.post(creds, "/cardholders", body).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["cardholder"].clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = req.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// The seed's sample request, with a chosen SSN and custodian uid.
pub fn seed_cardholder(ssn: &str, uid: Option<&str>) -> Value {
    let mut body = json!({
        "first_name": "Josh",
        "last_name": "Wilson",
        "email": "pat@wilson.com",
        "phone_number": "+16508881111",
        "date_of_birth": "1982-06-20",
        "address": {
            "street_one": "1800 Gates Ave",
            "street_two": "2L",
            "locality": "Ridgewood",
            "region": "NY",
            "postal_code": "11385",
            "country": "USA"
        },
        "document": {"type": "ssn", "value": ssn}
    });
    if let Some(uid) = uid {
        body["custodian_uid"] = json!(uid);
    }
    body
}

pub fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, kind: &str, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// What the fake vendor received: the signed request (none when unsigned) and the JSON body, per
/// request.
pub type Received = Arc<Mutex<Vec<(Option<SignedRequest>, Value)>>>;

/// A request as signed: its headers and the exact bytes the signature covers.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

/// A local stand-in for an identity-verification vendor: answers with a fixed behaviour and
/// records what it received.
pub struct FakeKyc {
    pub url: String,
    pub received: Received,
    _shutdown: oneshot::Sender<()>,
}

#[derive(Clone)]
pub enum KycBehaviour {
    Verdict(Value),
    /// Answers once the test adds a permit to the semaphore.
    Held(Arc<tokio::sync::Semaphore>, Value),
    SlowVerdict(std::time::Duration, Value),
    Status(u16),
    Garbage,
}

impl FakeKyc {
    pub async fn start(behaviour: KycBehaviour) -> FakeKyc {
        use axum::http::HeaderMap;
        let received: Received = Arc::default();
        let log = received.clone();
        let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            let behaviour = behaviour.clone();
            async move {
                let sig = headers.contains_key("webhook-signature").then(|| SignedRequest {
                    headers: headers.clone(),
                    body: body.to_vec(),
                });
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push((sig, json));
                match behaviour {
                    KycBehaviour::Verdict(v) => (axum::http::StatusCode::OK, v.to_string()),
                    KycBehaviour::Held(gate, v) => {
                        let _permit = gate.acquire().await.expect("the gate stays open");
                        (axum::http::StatusCode::OK, v.to_string())
                    }
                    KycBehaviour::SlowVerdict(d, v) => {
                        tokio::time::sleep(d).await;
                        (axum::http::StatusCode::OK, v.to_string())
                    }
                    KycBehaviour::Status(s) => (axum::http::StatusCode::from_u16(s).unwrap(), "{}".to_owned()),
                    KycBehaviour::Garbage => (axum::http::StatusCode::OK, "<html>not json".to_owned()),
                }
            }
        };
        let router = axum::Router::new().route("/verify", axum::routing::post(handler));
        let (base, tx) = serve_local(router).await;
        let url = format!("{base}/verify");
        FakeKyc {
            url,
            received,
            _shutdown: tx,
        }
    }
}

impl TestApp {
    /// Creates a stored-balance program (designs `blue`, `black`) and funds it in sandbox.
    pub async fn program(&self, creds: &Creds, program_id: &str, bin: &str, funding: i64) -> Value {
        let (status, program) = self
            .post(
                creds,
                "/programs",
                &json!({
                    "program_id": program_id, "name": "Test program", "network": "VISA", "bin": bin,
                    "currency": "USD", "design_keys": ["blue", "black"]
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{program} {}", logged_errors());
        if funding > 0 {
            let (status, funded) = self
                .post(
                    creds,
                    &format!("/sandbox/programs/{program_id}/fund"),
                    &json!({"amount": funding, "currency": "USD"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{funded}");
        }
        program["program"].clone()
    }

    /// A KYC-passed cardholder with a virtual card loaded with `load` cents; returns the card.
    pub async fn card_with_balance(&self, creds: &Creds, program_id: &str, load: i64) -> Value {
        let holder = self.cardholder(creds, &seed_cardholder("490940000", None)).await;
        let mut body = json!({"program_id": program_id});
        if load > 0 {
            body["initial_load"] = json!({"currency": "USD", "amount": load});
        }
        let (status, card) = self
            .post(
                creds,
                &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{card}");
        card["card"].clone()
    }
}

impl TestApp {
    /// A second server process on the same database (same secrets), as a scaled-out deployment
    /// runs; stopped with the test. Returns its base URL.
    pub async fn second_server(&self) -> String {
        self.second_app().await.0
    }

    /// A second server on the same database, with its state (its own engine and caches), as
    /// another process would have.
    pub async fn second_app(&self) -> (String, AppState) {
        let mut config = (*self.state.config).clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let app = Application::build(config).await.expect("second server builds");
        let base = format!("http://{}", app.address());
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        (base, state)
    }
}

/// Runs each named `async fn name(app: TestApp)` on both backends, each with a fresh server and
/// database (a backend that is not available here is skipped, as `TestApp::spawn` decides).
/// `app_tests!(spawn = super::f; ...)` starts the app with `f(backend)` instead (a configured
/// server; the path is seen from inside the generated module).
macro_rules! app_tests {
    (spawn = $spawn:path; $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $spawn(cardplane_testkit::Backend::Sqlite).await {
                    super::$name(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $spawn(cardplane_testkit::Backend::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
    )+};
    ($($name:ident),+ $(,)?) => {
        app_tests!(spawn = $crate::support::TestApp::spawn; $($name),+);
    };
}

/// Serves `router` on a free local port until the returned sender is dropped; returns its
/// base URL (`http://127.0.0.1:port`). For fake external parties (webhook receivers...).
pub async fn serve_local(router: axum::Router) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    (base, tx)
}
