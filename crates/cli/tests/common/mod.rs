//! Test support shared by the process-level tests: real `cardplane serve` children and the
//! `cardplane` CLI. Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cardplane_testkit::TestDb;
use cardplane_testkit::http::{post, reveal};
use serde_json::Value;

/// A `cardplane serve` child on port 0 with a fast worker; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(db: &TestDb, dir: &Path) -> Server {
        Self::start_with(&db.url, dir, &[])
    }

    /// Serves `database_url`, with extra environment variables; the key file lives in `dir`. A
    /// `RUST_LOG` override must let the `cardplane` target's `listening` info line through.
    pub fn start_with(database_url: &str, dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::spawn(database_url, dir, env, None)
    }

    /// Like `start_with`, and every log line the server writes is appended to `log` (the lines
    /// are also what tests scan for leaked secrets).
    pub fn start_logged(database_url: &str, dir: &Path, env: &[(&str, &str)], log: &Path) -> Server {
        Self::spawn(database_url, dir, env, Some(log))
    }

    fn spawn(database_url: &str, dir: &Path, env: &[(&str, &str)], log: Option<&Path>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cardplane"));
        command
            .arg("serve")
            .current_dir(dir)
            .env("CARDPLANE_DATABASE_URL", database_url)
            .env("CARDPLANE_KEY_FILE", dir.join("cardplane.keys"))
            .env("CARDPLANE_LISTEN", "127.0.0.1:0")
            .env("CARDPLANE_WEBHOOKS_POLL_INTERVAL_MS", "50")
            .env("CARDPLANE_WEBHOOKS_ATTEMPT_TIMEOUT_MS", "1000")
            .env("CARDPLANE_WEBHOOKS_LEASE_MARGIN_SECS", "1")
            .env("RUST_LOG", "info")
            .env_remove("CARDPLANE_KEK")
            .env_remove("CARDPLANE_API_KEY_PEPPER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("cardplane serve starts");
        let mut sink = log.map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("server log file")
        });
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut record = move |line: &str| {
            if let Some(file) = sink.as_mut() {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
            }
        };
        let address = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            record(&line);
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if log["message"] == "listening" {
                break log["address"].as_str().unwrap().to_owned();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                record(&line);
            }
        });
        Server {
            child,
            base: format!("http://{address}"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cardplane ARGS` against `database_url` with the key file in `dir`; the parsed JSON it
/// printed (or null). Panics if it fails.
pub fn cli(database_url: &str, dir: &Path, args: &[&str]) -> Value {
    let out = cli_output(database_url, dir, args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

pub fn cli_output(database_url: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cardplane"))
        .args(args)
        .current_dir(dir)
        .env("CARDPLANE_DATABASE_URL", database_url)
        .env("CARDPLANE_KEY_FILE", dir.join("cardplane.keys"))
        .env("RUST_LOG", "warn")
        .env_remove("CARDPLANE_KEK")
        .env_remove("CARDPLANE_API_KEY_PEPPER")
        .output()
        .unwrap()
}

/// `cardplane ledger verify` passes.
pub fn assert_ledger_verifies(database_url: &str, dir: &Path) {
    let out = cli_output(database_url, dir, &["ledger", "verify"]);
    assert!(
        out.status.success(),
        "ledger verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Basic-auth credentials: (id, secret).
pub type Creds = (String, String);

/// A tenant (with the `reveal` permission) and a sandbox network credential, made with the CLI.
/// The key's rate limit is lifted: these tests check the books with many reads, not the limiter
/// (the API suite tests that).
pub fn provision(database_url: &str, dir: &Path) -> (Creds, Creds) {
    let args = [
        "tenant",
        "create",
        "--name",
        "T",
        "--json",
        "--permission",
        "reveal",
        "--rate-limit",
        "1000000",
    ];
    let tenant = cli(database_url, dir, &args);
    let key = (
        tenant["sandbox_key"]["id"].as_str().unwrap().to_owned(),
        tenant["sandbox_key"]["secret"].as_str().unwrap().to_owned(),
    );
    let net = cli(
        database_url,
        dir,
        &["network", "create-credential", "--environment", "sandbox", "--json"],
    );
    let net = (
        net["id"].as_str().unwrap().to_owned(),
        net["secret"].as_str().unwrap().to_owned(),
    );
    (key, net)
}

/// A card whose PAN the test has revealed.
pub type TestCard = cardplane_testkit::http::RevealedCard;

/// A card (PAN, expiry) under a funded program `P` (BIN 411111), loaded with `load` minor units.
pub async fn program(http: &reqwest::Client, base: &str, key: &Creds, funding: i64) {
    let (s, body) = post(
        http,
        base,
        key,
        "/programs",
        &serde_json::json!({"program_id": "P", "name": "P", "network": "VISA",
        "bin": "411111", "currency": "USD", "design_keys": ["a"]}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = post(
        http,
        base,
        key,
        "/sandbox/programs/P/fund",
        &serde_json::json!({"amount": funding, "currency": "USD"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

pub async fn card(http: &reqwest::Client, base: &str, key: &Creds, load: i64) -> TestCard {
    let (s, holder) = post(http, base, key, "/cardholders", &serde_json::json!({
        "first_name": "A", "last_name": "B", "email": "a@b.co", "phone_number": "+16505550100", "date_of_birth": "1990-01-01",
        "address": {"street_one": "1 Main St", "locality": "Austin", "region": "TX", "postal_code": "73301", "country": "USA"},
        "document": {"type": "ssn", "value": "123450000"}})).await;
    assert_eq!(s, 200, "{holder}");
    let (s, card) = post(
        http,
        base,
        key,
        &format!("/cardholders/{}/cards", holder["cardholder"]["id"].as_str().unwrap()),
        &serde_json::json!({"program_id": "P", "initial_load": {"currency": "USD", "amount": load}}),
    )
    .await;
    assert_eq!(s, 200, "{card}");
    reveal(http, base, key, card["card"]["id"].as_str().unwrap()).await
}
