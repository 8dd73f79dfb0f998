//! The operations console in a real browser: a real server on 127.0.0.1 (in-process, over a fresh
//! SQLite database) and headless Chromium driven over the DevTools protocol. Screenshots of each
//! page land in `target/browser-screenshots/` (not committed).

use std::path::PathBuf;
use std::time::Duration;

use cardplane_api::state::AppState;
use cardplane_api::workflows::admin::{ProvisionedTenant, create_operator, create_tenant};
use cardplane_api::{Application, Config};
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::Permission;
use cardplane_domain::people::OperatorRole;
use cardplane_domain::totp::{STEP_SECS, TotpSecret};
use cardplane_domain::vault::Kek;
use cardplane_testkit::http::RevealedCard;
use cardplane_testkit::{Backend, TestDb};
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How many times a condition is looked at (each look after a short pause) before a test gives up.
const LOOKS_MAX: usize = 200;

/// A server on 127.0.0.1:0 over a fresh SQLite database, stopped when dropped.
pub struct Server {
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    _db: TestDb,
    _files: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    /// A server with the portal open to sign-ups, mailing into `mail_dir()`. The request log's
    /// writer and the webhook worker look often, so a test's polls are short.
    pub async fn start_portal() -> Server {
        Server::start_with(|c| {
            c.portal.self_signup = true;
            c.request_log.flush_interval_ms = 20;
            c.webhooks.poll_interval_ms = 50;
        })
        .await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Server {
        let db = TestDb::create(Backend::Sqlite)
            .await
            .expect("SQLite is always available");
        let files = tempfile::tempdir().unwrap();
        let mut config = Config {
            database_url: db.url.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            kek: Some(Kek::generate().encode()),
            api_key_pepper: Some("browser-test-pepper".into()),
            rate_limit_per_second: 100_000,
            ..Config::default()
        };
        config.operators.documents_dir = files.path().to_owned();
        // Plain HTTP on loopback: a Secure cookie would never be sent back.
        config.operators.cookie_secure = false;
        config.portal.mail_dir = Some(files.path().join("mail"));
        configure(&mut config);
        let app = Application::build(config).await.expect("the application builds");
        let base = format!("http://{}", app.address());
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            state,
            http: reqwest::Client::new(),
            _db: db,
            _files: files,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The link token in the newest mail to `to` (the local mail adapter writes files).
    pub fn mailed_token(&self, to: &str) -> String {
        let dir = self
            .state
            .config
            .portal
            .mail_dir
            .clone()
            .expect("the test server mails into a directory");
        let mut mails: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        mails.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        mails.sort();
        let text = mails
            .iter()
            .rev()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .find(|t| t.starts_with(&format!("To: {to}\r\n")))
            .unwrap_or_else(|| panic!("no mail to {to}"));
        let from = text.find("/portal/accept?token=").expect("a link") + "/portal/accept?token=".len();
        text[from..].split_whitespace().next().unwrap().to_owned()
    }

    pub async fn operator(&self, email: &str, role: OperatorRole) {
        create_operator(&self.state, email, email, role, PASSWORD.into())
            .await
            .expect("operator created");
    }

    /// A tenant whose keys may reveal PANs, a funded program `GPR`, and a network credential.
    pub async fn network(&self) -> Network {
        let tenant = create_tenant(
            self.state.tenants.as_ref(),
            &self.state.pepper,
            "Browser Tenant",
            &[Permission::Reveal],
            None,
        )
        .await
        .unwrap();
        let credential = cardplane_api::workflows::admin::create_network_credential(
            self.state.network.as_ref(),
            &self.state.pepper,
            cardplane_domain::Environment::Sandbox,
            "browser test network",
        )
        .await
        .unwrap();
        let net = Network {
            key: (tenant.sandbox_key.id.clone(), tenant.sandbox_key.secret.clone()),
            credential: (credential.id, credential.secret),
            tenant,
        };
        let program = json!({"program_id": "GPR", "name": "GPR", "network": "VISA", "bin": "411111",
                              "currency": "USD", "design_keys": ["blue"]});
        self.api(&net.key, "/programs", &program).await;
        self.api(
            &net.key,
            "/sandbox/programs/GPR/fund",
            &json!({"amount": 1_000_000, "currency": "USD"}),
        )
        .await;
        net
    }

    /// POSTs as `creds` and insists on 200.
    pub async fn api(&self, creds: &(String, String), path: &str, body: &Value) -> Value {
        let (status, answer) = cardplane_testkit::http::post(&self.http, &self.base, creds, path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }

    /// A KYC-passed cardholder with a card of `GPR` loaded with `load` cents, PAN revealed.
    pub async fn card(&self, net: &Network, load: i64) -> RevealedCard {
        let holder = self
            .api(
                &net.key,
                "/cardholders",
                &json!({"first_name": "Josh", "last_name": "Wilson", "email": "pat@wilson.com",
                        "phone_number": "+16508881111", "date_of_birth": "1982-06-20",
                        "address": {"street_one": "1800 Gates Ave", "locality": "Ridgewood", "region": "NY",
                                    "postal_code": "11385", "country": "USA"},
                        "document": {"type": "ssn", "value": "490940000"}}),
            )
            .await;
        let id = holder["cardholder"]["id"].as_str().unwrap().to_owned();
        let card = self
            .api(
                &net.key,
                &format!("/cardholders/{id}/cards"),
                &json!({"program_id": "GPR", "initial_load": {"currency": "USD", "amount": load}}),
            )
            .await;
        cardplane_testkit::http::reveal(&self.http, &self.base, &net.key, card["card"]["id"].as_str().unwrap()).await
    }

    /// A cardholder whose sandbox KYC answers UNDER_REVIEW with a watchlist match (SSN ...0012),
    /// which opens a `watchlist_match` case; returns the cardholder id.
    pub async fn watchlist_cardholder(&self, net: &Network) -> String {
        let holder = self
            .api(
                &net.key,
                "/cardholders",
                &json!({"first_name": "Wanda", "last_name": "Listed", "email": "wanda@example.com",
                        "phone_number": "+16508881112", "date_of_birth": "1980-01-02",
                        "address": {"street_one": "1 Main St", "locality": "Austin", "region": "TX",
                                    "postal_code": "73301", "country": "USA"},
                        "document": {"type": "ssn", "value": "123450012"}}),
            )
            .await;
        holder["cardholder"]["id"].as_str().unwrap().to_owned()
    }

    /// Sends an authorization as the network; returns its answer.
    pub async fn authorize(&self, net: &Network, card: &RevealedCard, amount: i64) -> Value {
        let msg = cardplane_testkit::net::NetMessage::authorization(card, amount);
        let (status, answer) =
            cardplane_testkit::http::post(&self.http, &self.base, &net.credential, msg.path(), &msg.into_json()).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

pub struct Network {
    pub tenant: ProvisionedTenant,
    pub key: (String, String),
    pub credential: (String, String),
}

/// Headless Chromium with a fresh profile, closed (and its process reaped) when dropped.
pub struct Chromium {
    pub browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub async fn launch() -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .args([
                "--headless",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .build()
            .expect("browser config");
        let (browser, mut handler) = Browser::launch(config)
            .await
            .expect("Chromium starts (apt-get install chromium)");
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Chromium {
            browser,
            handler,
            _profile: profile,
        }
    }

    pub async fn page(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.expect("page opens");
        page.wait_for_navigation().await.expect("page loads");
        page
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Where screenshots go: `target/browser-screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

pub async fn screenshot(page: &Page, name: &str) {
    let path = screenshot_dir().join(format!("{name}.png"));
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
        .await
        .expect("screenshot saved");
}

/// The text of the first element matching `selector`, trimmed.
pub async fn text(page: &Page, selector: &str) -> String {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .inner_text()
        .await
        .unwrap()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

pub async fn exists(page: &Page, selector: &str) -> bool {
    page.find_elements(selector)
        .await
        .map(|v| !v.is_empty())
        .unwrap_or(false)
}

/// Types into the field labelled by `selector`.
pub async fn fill(page: &Page, selector: &str, value: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap()
        .type_str(value)
        .await
        .unwrap();
}

/// Clicks and waits for the page the click leads to.
pub async fn click_and_wait(page: &Page, selector: &str) {
    mark_stale(page).await;
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap();
    wait_for_new_document(page).await;
}

/// Marks the current document, so a wait can tell when another has replaced it.
pub async fn mark_stale(page: &Page) {
    page.evaluate("window.__cardplaneStale = true").await.unwrap();
}

/// Waits (by looking up to `LOOKS_MAX` times) until a new, fully loaded document is showing.
pub async fn wait_for_new_document(page: &Page) {
    for _ in 0..LOOKS_MAX {
        let fresh = page
            .evaluate("window.__cardplaneStale !== true && document.readyState === 'complete'")
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if fresh {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new page loaded; at {}", path_of(page).await);
}

pub async fn path_of(page: &Page) -> String {
    let url = page.url().await.unwrap().unwrap_or_default();
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_default()
}

/// Waits (by looking up to `LOOKS_MAX` times) until the page is at a path starting with `prefix`.
pub async fn wait_for_path(page: &Page, prefix: &str) {
    for _ in 0..LOOKS_MAX {
        if path_of(page).await.starts_with(prefix) && exists(page, "body").await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never reached {prefix}; at {}", path_of(page).await);
}

/// The TOTP code for `steps_ahead` steps from now.
pub fn code(secret: &TotpSecret, steps_ahead: i64) -> String {
    secret.code_at(Timestamp::now().unix_seconds() + steps_ahead * STEP_SECS)
}

/// Signs in on the page with the keyboard (Enter in the last field submits).
pub async fn sign_in(page: &Page, email: &str, code: &str) {
    fill(page, "#email", email).await;
    fill(page, "#password", PASSWORD).await;
    fill(page, "#code", code).await;
    mark_stale(page).await;
    page.find_element("#code")
        .await
        .unwrap()
        .press_key("Enter")
        .await
        .unwrap();
    wait_for_new_document(page).await;
}

/// Enrols TOTP from the second-factor page the console sends a new operator to.
pub async fn enrol(page: &Page) -> TotpSecret {
    wait_for_path(page, "/console/mfa").await;
    click_and_wait(page, "form[action='/console/mfa/begin'] button").await;
    assert!(
        exists(page, "#totp-qr svg").await,
        "the QR code is rendered as SVG: at {} {}",
        path_of(page).await,
        page.content().await.unwrap_or_default()
    );
    let secret = TotpSecret::from_base32(&text(page, "#totp-secret").await).unwrap();
    fill(page, "#code", &code(&secret, 0)).await;
    click_and_wait(page, "form[action='/console/mfa/confirm'] button").await;
    assert!(
        exists(page, "#recovery-codes li").await,
        "recovery codes are shown once"
    );
    secret
}

/// An operator signed in through the pages, TOTP enrolled on the way.
pub async fn signed_in(server: &Server, chromium: &Chromium, email: &str, role: OperatorRole) -> (Page, TotpSecret) {
    server.operator(email, role).await;
    let page = chromium.page(&server.url("/console/login")).await;
    sign_in(&page, email, "").await;
    let secret = enrol(&page).await;
    (page, secret)
}

/// Whether the JavaScript expression `condition` holds on the page.
pub async fn holds(page: &Page, condition: &str) -> bool {
    page.evaluate(condition)
        .await
        .ok()
        .and_then(|v| v.into_value::<bool>().ok())
        .unwrap_or(false)
}

/// Loads `url` again (up to `LOOKS_MAX` times, a short pause between) until the JavaScript
/// expression `condition` holds on it: for what a background worker writes a moment later.
pub async fn reload_until(page: &Page, url: &str, condition: &str) {
    for _ in 0..LOOKS_MAX {
        visit(page, url).await;
        if holds(page, condition).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{url} never came to show `{condition}`: {}",
        page.content().await.unwrap_or_default()
    );
}

/// How many elements match `selector`.
pub async fn count(page: &Page, selector: &str) -> usize {
    page.find_elements(selector).await.map(|v| v.len()).unwrap_or(0)
}

/// The attribute `name` of the first element matching `selector`.
pub async fn attribute(page: &Page, selector: &str, name: &str) -> Option<String> {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .attribute(name)
        .await
        .unwrap()
}

/// The cells' texts of the row of table `table` whose first cell reads `first` (empty when none).
pub async fn row_cells(page: &Page, table: &str, first: &str) -> Vec<String> {
    let script = format!(
        "Array.from(document.querySelectorAll({} + ' tbody tr')).map(r => Array.from(r.cells).map(c => c.innerText.trim())).find(c => c[0] === {}) || []",
        json!(table),
        json!(first)
    );
    page.evaluate(script).await.unwrap().into_value().unwrap()
}

/// Picks `value` in the select `selector`, as a click on its option would.
pub async fn choose(page: &Page, selector: &str, value: &str) {
    let script = format!(
        "(function(){{var s=document.querySelector({});s.value={};s.dispatchEvent(new Event('change',{{bubbles:true}}));return s.value;}})()",
        json!(selector),
        json!(value)
    );
    let chosen: String = page.evaluate(script).await.unwrap().into_value().unwrap();
    assert_eq!(chosen, value, "{selector} offers {value}");
}

/// Empties the field `selector`, then types `value` into it.
pub async fn replace(page: &Page, selector: &str, value: &str) {
    page.evaluate(format!("document.querySelector({}).value = ''", json!(selector)))
        .await
        .unwrap();
    fill(page, selector, value).await;
}

/// Navigates and waits.
pub async fn visit(page: &Page, url: &str) {
    mark_stale(page).await;
    page.goto(url).await.unwrap();
    wait_for_new_document(page).await;
}

/// Submits a hand-made form from inside the page (what a forged or stale form would do).
pub async fn submit_forged_form(page: &Page, action: &str, fields: &[(&str, &str)]) {
    let inputs: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "var i=document.createElement('input');i.type='hidden';i.name={};i.value={};f.appendChild(i);",
                json!(k),
                json!(v)
            )
        })
        .collect();
    let script = format!(
        "(function(){{var f=document.createElement('form');f.method='post';f.action={};{}document.body.appendChild(f);f.submit();return true;}})()",
        json!(action),
        inputs.join("")
    );
    mark_stale(page).await;
    page.evaluate(script).await.unwrap();
    wait_for_new_document(page).await;
}
