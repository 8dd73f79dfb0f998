//! `cardplane simulate` against a real `cardplane serve`: the API key comes from
//! CARDPLANE_API_KEY or standard input, never needs the command line, and the old `--key` flag
//! still works but warns.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use cardplane_testkit::{Backend, TestDb, both_backends};
use serde_json::json;

mod common;
use common::{Server, cli};

fn simulate(base: &str, args: &[&str], env_key: Option<&str>, stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cardplane"));
    command
        .args([
            "simulate", "--url", base, "--cards", "1", "--count", "3", "--load", "5000",
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("CARDPLANE_API_KEY")
        .env_remove("CARDPLANE_SIMULATE_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = env_key {
        command.env("CARDPLANE_API_KEY", key);
    }
    let mut child = command.spawn().expect("cardplane simulate starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn simulate_takes_its_key_from_the_environment_or_stdin(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let tenant = cli(&db.url, dir.path(), &["tenant", "create", "--name", "Sim", "--json"]);
    let key = format!(
        "{}:{}",
        tenant["sandbox_key"]["id"].as_str().unwrap(),
        tenant["sandbox_key"]["secret"].as_str().unwrap()
    );
    let (id, secret) = key.split_once(':').unwrap();
    let server = Server::start(&db, dir.path());
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/programs",
            json!({"program_id": "Apto_GPR", "name": "GPR", "network": "VISA", "bin": "411111", "currency": "USD",
                   "design_keys": ["blue"]}),
        ),
        (
            "/sandbox/programs/Apto_GPR/fund",
            json!({"amount": 1_000_000, "currency": "USD"}),
        ),
    ] {
        let r = http
            .post(format!("{}{path}", server.base))
            .basic_auth(id, Some(secret))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    let from_env = simulate(&server.base, &[], Some(&key), None);
    assert!(from_env.status.success(), "{}", text(&from_env.stderr));
    assert!(
        text(&from_env.stdout).contains("3 authorizations"),
        "{}",
        text(&from_env.stdout)
    );
    assert!(
        !text(&from_env.stderr).contains("warning"),
        "{}",
        text(&from_env.stderr)
    );

    let from_stdin = simulate(&server.base, &["--key-stdin"], None, Some(&format!("{key}\n")));
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
    assert!(text(&from_stdin.stdout).contains("3 authorizations"));

    // The old flag still works, and says why it should not be used.
    let from_flag = simulate(&server.base, &["--key", &key], None, None);
    assert!(from_flag.status.success(), "{}", text(&from_flag.stderr));
    let warning = text(&from_flag.stderr);
    assert!(
        warning.contains("warning") && warning.contains("process list") && warning.contains("CARDPLANE_API_KEY"),
        "{warning}"
    );

    let without = simulate(&server.base, &[], None, None);
    assert!(!without.status.success());
    assert!(
        text(&without.stderr).contains("CARDPLANE_API_KEY"),
        "{}",
        text(&without.stderr)
    );
    // A wrong key is refused by the server, not silently ignored.
    let wrong = simulate(&server.base, &[], Some(&format!("{id}:sk_test_wrong")), None);
    assert!(!wrong.status.success());

    // The help offers the safe ways only.
    let help = Command::new(env!("CARGO_BIN_EXE_cardplane"))
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    let help = text(&help.stdout);
    assert!(
        help.contains("--key-stdin") && help.contains("CARDPLANE_API_KEY"),
        "{help}"
    );
    assert!(!help.contains("--key <"), "{help}");
    let (_, cards) = cardplane_testkit::http::get(&http, &server.base, &(id, secret), "/cards").await;
    assert_eq!(cards["total"], 3, "one card per successful run: {cards}");
}

both_backends!(simulate_takes_its_key_from_the_environment_or_stdin);
