//! The binary itself, on both backends: tenant creation, ledger verification (clean and after
//! tampering), and KEK rotation.

use std::process::{Command, Output};

use cardplane_testkit::{Backend, TestDb, both_backends};
use sqlx::Connection;

fn cardplane(db: &TestDb, dir: &std::path::Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardplane"));
    cmd.args(args)
        .current_dir(dir)
        .env("CARDPLANE_DATABASE_URL", &db.url)
        .env("CARDPLANE_KEY_FILE", dir.join("cardplane.keys"))
        .env("RUST_LOG", "warn")
        .env_remove("CARDPLANE_KEK")
        .env_remove("CARDPLANE_API_KEY_PEPPER");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("cardplane runs")
}

async fn tamper(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn tenant_create_prints_keys_and_ledger_verify_catches_tampering(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = cardplane(&db, dir.path(), &["tenant", "create", "--name", "Acme", "--json"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tenant: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(tenant["tenant_id"].as_str().unwrap().starts_with("corp_"));
    assert!(
        tenant["sandbox_key"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("sk_test_")
    );
    assert!(tenant["live_key"]["secret"].as_str().unwrap().starts_with("sk_live_"));

    let out = cardplane(&db, dir.path(), &["ledger", "verify"], &[]);
    assert!(
        out.status.success(),
        "an empty ledger is clean: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Books with money in them: a program account credited by a journal.
    let tenant_id = tenant["tenant_id"].as_str().unwrap();
    tamper(&db, &format!(
        "INSERT INTO programs (id, tenant_id, environment, program_id, name, network, bin, currency, card_lifetime_years, \
         form_factors, design_keys, funding_model, spend_controls, minimum_cardholder_age, kyc_required, status, created_at, updated_at) \
         VALUES ('prog_00000000000000000000000000000001', '{tenant_id}', 'sandbox', 'P', 'P', 'VISA', '411111', 'USD', 3, \
         'virtual', '[\"a\"]', 'stored_balance', '[]', 18, 1, 'active', 0, 0)"
    )).await;
    for (id, kind) in [
        ("acct_00000000000000000000000000000001", "program_funding"),
        ("acct_00000000000000000000000000000002", "program_external"),
    ] {
        tamper(&db, &format!(
            "INSERT INTO accounts (id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at) \
             VALUES ('{id}', '{tenant_id}', 'sandbox', 'prog_00000000000000000000000000000001', '{kind}', 'USD', NULL, 0, 0, 0)"
        )).await;
    }
    let out = cardplane(&db, dir.path(), &["ledger", "verify"], &[]);
    assert!(out.status.success());
    // A balance that no entry explains.
    tamper(
        &db,
        "UPDATE accounts SET balance = 500 WHERE id = 'acct_00000000000000000000000000000001'",
    )
    .await;
    let out = cardplane(&db, dir.path(), &["ledger", "verify"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stores balance 500 but its entries sum to 0"), "{text}");
    assert!(text.contains("sum to 500 instead of 0"), "{text}");
}

async fn kek_rotation_updates_the_key_file_and_keeps_the_vault_open(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    assert!(cardplane(&db, dir.path(), &["migrate"], &[]).status.success());
    let before = std::fs::read_to_string(dir.path().join("cardplane.keys")).unwrap();
    let out = cardplane(&db, dir.path(), &["keys", "rotate-kek", "--generate"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "a KEK kept in the key file is not printed");
    let after = std::fs::read_to_string(dir.path().join("cardplane.keys")).unwrap();
    assert_ne!(before, after);
    // The next start opens the vault with the rotated key.
    let out = cardplane(&db, dir.path(), &["ledger", "verify"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // With the KEK in the environment, the new one is printed once and must then be configured.
    let old_kek = after
        .lines()
        .find(|l| l.starts_with("kek"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_owned();
    let out = cardplane(
        &db,
        dir.path(),
        &["keys", "rotate-kek", "--generate"],
        &[("CARDPLANE_KEK", &old_kek)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_kek = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = cardplane(&db, dir.path(), &["ledger", "verify"], &[("CARDPLANE_KEK", &old_kek)]);
    assert!(!out.status.success(), "the old KEK no longer opens the vault");
    let out = cardplane(&db, dir.path(), &["ledger", "verify"], &[("CARDPLANE_KEK", &new_kek)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn operator_bootstrap_and_audit_verify_catch_an_edited_entry(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let create = |email: &str, password: &str| {
        cardplane(
            &db,
            dir.path(),
            &[
                "operator", "create", "--email", email, "--name", "Ada", "--role", "admin", "--json",
            ],
            &[("CARDPLANE_OPERATOR_PASSWORD", password)],
        )
    };
    let out = create("ada@example.com", "elevenchars");
    assert!(!out.status.success(), "an 11-character password is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 characters"));
    let out = create("Ada@Example.com", "a long enough password");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["role"], "admin");
    assert_eq!(made["email"], "ada@example.com");
    assert!(
        !create("ada@example.com", "a long enough password").status.success(),
        "one account per email"
    );
    let out = create("grace@example.com", "another long password");
    assert!(out.status.success());
    // Other administrative commands are audited too.
    let out = cardplane(&db, dir.path(), &["tenant", "create", "--name", "Acme", "--json"], &[]);
    assert!(out.status.success());
    let out = cardplane(&db, dir.path(), &["audit", "verify"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("clean (3 entries"));

    let unguard = match b {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER",
    };
    tamper(&db, unguard).await;
    tamper(
        &db,
        "UPDATE audit_log SET details = '{\"role\":\"read_only\"}' WHERE seq = 1",
    )
    .await;
    let out = cardplane(&db, dir.path(), &["audit", "verify"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("entry 1 was altered"), "{text}");
}

both_backends!(
    tenant_create_prints_keys_and_ledger_verify_catches_tampering,
    kek_rotation_updates_the_key_file_and_keeps_the_vault_open,
    operator_bootstrap_and_audit_verify_catch_an_edited_entry,
);

/// The benchmark harness end to end, small: it provisions, starts a server, drives load, and
/// verifies the ledger (exit status 1 on any discrepancy).
async fn the_benchmark_harness_runs_and_checks_the_books(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = cardplane(
        &db,
        dir.path(),
        &[
            "bench",
            "lifecycle",
            "--cards",
            "50",
            "--connections",
            "4",
            "--duration-secs",
            "1",
            "--warmup-secs",
            "1",
            "--no-baselines",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["cards"], 50);
    assert_eq!(run["warmup_s"], 1.0);
    assert!(run["authorizations"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(run["ledger_clean"], true);
    assert_eq!(run["money_conserved"], true);
    assert_eq!(run["errors"], 0, "{report}");
}

both_backends!(the_benchmark_harness_runs_and_checks_the_books);
/// `cardplane webhooks listen` prints verified events and refuses forged ones.
#[test]
fn webhooks_listen_prints_verified_events_and_refuses_forgeries() {
    use std::io::{BufRead, BufReader, Read, Write};

    use cardplane_domain::Timestamp;
    use cardplane_domain::webhook::WebhookSecret;

    let secret = WebhookSecret::generate();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardplane"))
        .args(["webhooks", "listen", "--port", "0", "--secret", &secret.expose()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cardplane runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    let addr = banner
        .trim()
        .strip_prefix("listening for webhooks on http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected banner: {banner}"))
        .to_owned();

    let post = |body: &str, signature: &str| -> String {
        let ts = Timestamp::now().unix_seconds();
        let signature = if signature.is_empty() {
            secret.sign("evt_1", ts, body.as_bytes())
        } else {
            signature.to_owned()
        };
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nwebhook-id: evt_1\r\n\
             webhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_owned()
    };
    let event = r#"{"id":"evt_1","type":"card.created"}"#;
    assert!(post(event, "").contains("204"));
    let forged = WebhookSecret::generate().sign("evt_1", Timestamp::now().unix_seconds(), event.as_bytes());
    assert!(post(event, &forged).contains("400"));

    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["type"], "card.created");
    let mut rejected = String::new();
    stderr.read_line(&mut rejected).unwrap();
    assert!(rejected.contains("rejected evt_1"), "{rejected}");
    child.kill().unwrap();
    let _ = child.wait();
}
