//! Test support shared by the process-level tests: real `cardplane serve` children.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use cardplane_testkit::TestDb;
use serde_json::Value;

/// A `cardplane serve` child on port 0 with a fast worker; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(db: &TestDb, dir: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cardplane"))
            .arg("serve")
            .current_dir(dir)
            .env("CARDPLANE_DATABASE_URL", &db.url)
            .env("CARDPLANE_KEY_FILE", dir.join("cardplane.keys"))
            .env("CARDPLANE_LISTEN", "127.0.0.1:0")
            .env("CARDPLANE_WEBHOOKS_POLL_INTERVAL_MS", "50")
            .env("CARDPLANE_WEBHOOKS_ATTEMPT_TIMEOUT_MS", "1000")
            .env("CARDPLANE_WEBHOOKS_LEASE_MARGIN_SECS", "1")
            .env("RUST_LOG", "info")
            .env_remove("CARDPLANE_KEK")
            .env_remove("CARDPLANE_API_KEY_PEPPER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cardplane serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if log["message"] == "listening" {
                break log["address"].as_str().unwrap().to_owned();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
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
