//! A PostgreSQL cluster that belongs to one test: initialised in a temporary directory, listening
//! on a free loopback port, stopped and removed when dropped. Tests that take the database away
//! (outages) use it so the shared server on 5432 is never touched.
//!
//! PostgreSQL refuses to run as root, so when the test runs as root the cluster is initialised
//! and run as the `postgres` OS user (through `runuser`). The binaries come from
//! `CARDPLANE_TEST_PG_BIN`, else `pg_config --bindir`, else `/usr/lib/postgresql/*/bin`. If they
//! are missing the test is skipped loudly, unless `CARDPLANE_REQUIRE_POSTGRES=1`.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::postgres_required;

pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// `Some(user)` when commands run as another OS user (we are root).
    run_as: Option<String>,
    pub port: u16,
    running: bool,
}

fn find_bin_dir() -> Option<PathBuf> {
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("CARDPLANE_TEST_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| has_initdb(d));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&dir) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has_initdb(d))
        .collect();
    candidates.sort();
    candidates.pop()
}

/// uid and gid of an OS user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

fn skip_or_fail(reason: &str) -> Option<PgCluster> {
    if postgres_required() {
        panic!("CARDPLANE_REQUIRE_POSTGRES is set but a test-owned PostgreSQL cluster cannot be started: {reason}");
    }
    let banner = format!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!  Cannot start a test-owned PostgreSQL cluster ({reason}).\n\
         !!  THIS TEST WAS SKIPPED. Set CARDPLANE_REQUIRE_POSTGRES=1 to make it a failure.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgCluster {
    /// Initialises and starts a cluster, or `None` (after a loud banner) when PostgreSQL's
    /// binaries are not installed and PostgreSQL is not required.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = find_bin_dir() else {
            return skip_or_fail("initdb/pg_ctl not found; set CARDPLANE_TEST_PG_BIN");
        };
        let dir = tempfile::Builder::new()
            .prefix("cardplane-pg-")
            .tempdir()
            .expect("temp dir");
        let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let run_as = if is_root {
            let Some((uid, gid)) = user_ids("postgres") else {
                return skip_or_fail("running as root and there is no `postgres` OS user to run PostgreSQL as");
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster directory");
            Some("postgres".to_owned())
        } else {
            None
        };
        let mut cluster = PgCluster {
            bin,
            dir,
            run_as,
            port: free_port(),
            running: false,
        };
        let data = cluster.data_dir();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start_server();
        Some(cluster)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start_server(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=100 -c shared_buffers=32MB",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server at once, the way a crash or a pulled cable would look to clients
    /// (`pg_ctl stop -m immediate`: no checkpoint, connections cut).
    pub fn stop_immediate(&mut self) {
        let out = self.run("pg_ctl", &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    /// Runs a binary of the cluster's installation (e.g. `pg_dump`) as the cluster's user.
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        self.run(program, args)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.run("pg_ctl", &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"]);
        }
        // The TempDir removes the directory (root may remove what `postgres` wrote).
    }
}
