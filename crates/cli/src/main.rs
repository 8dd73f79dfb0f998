//! The `cardplane` binary: one process, several subcommands. Thin: everything real lives in the
//! library crates so tests can drive it.

mod bench;
mod simulate;

use std::path::PathBuf;

use anyhow::Context;
use cardplane_api::config::{Config, LogFormat};
use cardplane_api::workflows::secrets::{Secrets, rotate_kek, store_rotated_kek};
use cardplane_api::{Application, open_state};
use cardplane_domain::Environment;
use cardplane_domain::api_key::Permission;
use cardplane_domain::people::OperatorRole;
use cardplane_domain::vault::Kek;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "cardplane", version, about = "Self-hostable card issuing platform")]
struct Cli {
    /// TOML config file; CARDPLANE_* environment variables override it.
    #[arg(long, global = true, env = "CARDPLANE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants (custodians).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Card network credentials.
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Drive a realistic stream of sandbox card activity against a running server. The sandbox
    /// API key (KEY_ID:SECRET) comes from CARDPLANE_API_KEY or, with --key-stdin, the first line
    /// of standard input, so the secret stays out of the process list and shell history.
    Simulate {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Read the API key (KEY_ID:SECRET) from the first line of standard input.
        #[arg(long)]
        key_stdin: bool,
        /// Deprecated (the secret shows in the process list): use CARDPLANE_API_KEY or --key-stdin.
        #[arg(long, hide = true, conflicts_with = "key_stdin")]
        key: Option<String>,
        /// A funded stored-balance program to issue the simulated cards in.
        #[arg(long, default_value = "Apto_GPR")]
        program: String,
        #[arg(long, default_value_t = 5)]
        cards: usize,
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Minor units loaded onto each card.
        #[arg(long, default_value_t = 20_000)]
        load: i64,
    },
    /// Benchmark: provision, start a server on the configured database, drive load, verify.
    Bench {
        #[arg(value_enum, default_value = "authorize")]
        workload: bench::Workload,
        #[arg(long, default_value_t = 10_000)]
        cards: usize,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// Load sent before the measured run (connections open, caches warm), not counted in the
        /// figures; its approvals are still checked against the books.
        #[arg(long, default_value_t = 3)]
        warmup_secs: u64,
        /// Open loop at this many authorizations per second (default: closed loop).
        #[arg(long)]
        rate: Option<u64>,
        /// Card counts for the growth workload, e.g. 10000,1000000.
        #[arg(long, value_delimiter = ',')]
        growth: Vec<usize>,
        /// Skip the HTTP-ceiling and naive-database baselines.
        #[arg(long)]
        no_baselines: bool,
        /// Active authorization rules on the benchmark program (half conditional, half velocity
        /// limits with distinct counters; none ever declines the benchmark's traffic).
        #[arg(long, default_value_t = 0)]
        rules: usize,
        /// Stored authorizations for the backtest workload.
        #[arg(long, default_value_t = 1_000_000)]
        history: i64,
        /// The api workload: run with the request log on, off, or both (and compare).
        #[arg(long, value_enum, default_value = "both")]
        request_log: bench::api::RequestLogMode,
        /// The api workload with `--request-log both`: pairs of runs, in alternating order (off
        /// then on, on then off...) so a drift of the machine or the growing database weighs on
        /// both; the ratio is of the medians.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Ledger checks.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Webhook tools.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// People who run the platform (the /ops console).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create an operator (bootstraps the first admin). The password comes from
    /// CARDPLANE_OPERATOR_PASSWORD or, with --password-stdin, the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, compliance_officer, operations, support or read_only.
        #[arg(long, default_value = "admin", value_parser = parse_operator_role)]
        role: OperatorRole,
        #[arg(
            long,
            env = "CARDPLANE_OPERATOR_PASSWORD",
            hide_env_values = true,
            required_unless_present = "password_stdin"
        )]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain from the first entry; exits 1 at the first break.
    Verify,
}

fn parse_operator_role(raw: &str) -> Result<OperatorRole, String> {
    OperatorRole::parse(raw).ok_or_else(|| {
        let all: Vec<&str> = OperatorRole::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role `{raw}`; one of {}", all.join(", "))
    })
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Run a local receiver that verifies each delivery's signature and prints the event.
    Listen {
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// The endpoint's signing secret (`whsec_...`).
        #[arg(long, env = "CARDPLANE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every data key under a new key-encryption key. The current KEK comes from the
    /// configuration as usual; afterwards configure the new one (CARDPLANE_KEK).
    RotateKek {
        /// The new KEK: 32 bytes, base64 or hex. Omit with --generate.
        #[arg(
            long,
            env = "CARDPLANE_NEW_KEK",
            hide_env_values = true,
            required_unless_present = "generate"
        )]
        new_kek: Option<String>,
        /// Generate the new KEK and print it (once).
        #[arg(long)]
        generate: bool,
    },
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Create a credential the card network (or a network simulator) uses for /network/*.
    CreateCredential {
        /// sandbox or live.
        #[arg(long, default_value = "sandbox")]
        environment: String,
        #[arg(long, default_value = "card network")]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Recompute every balance from its entries and check every journal balances; exits 1 on any
    /// discrepancy.
    Verify,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant with one sandbox and one live API key; prints the secrets once.
    Create {
        #[arg(long)]
        name: String,
        /// Print JSON: {"tenant_id", "sandbox_key": {"id", "secret"}, "live_key": {...}}.
        #[arg(long)]
        json: bool,
        /// Extra permissions for both keys (e.g. `reveal`).
        #[arg(long = "permission", value_parser = parse_permission)]
        permissions: Vec<Permission>,
        /// Requests per second each of the tenant's API keys may make (default: the server's).
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// Invite a person into a tenant's developer portal (e.g. its owner): the link is mailed
    /// (see `[portal] mail_dir`) and printed.
    Invite {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// owner, developer or viewer.
        #[arg(long, default_value = "owner")]
        role: String,
    },
}

fn parse_permission(raw: &str) -> Result<Permission, String> {
    Permission::parse(raw).ok_or_else(|| format!("unknown permission `{raw}`"))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

#[tokio::main]
// Long: one match arm per subcommand, so the whole CLI reads in one place.
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    init_logging(config.log_format);
    match cli.command {
        Command::Serve => {
            tracing::info!(config = ?config, "starting");
            let app = Application::build(config).await?;
            tracing::info!(address = %app.address(), backend = app.state().backend().name(), "listening");
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let state = open_state(config).await?;
            tracing::info!(backend = state.backend().name(), "migrations applied");
            state.close_db().await;
        }
        Command::Tenant {
            command: TenantCommand::Invite { tenant, email, role },
        } => {
            let state = open_state(config).await?;
            let tenant = cardplane_domain::ids::TenantId::parse(&tenant)
                .map_err(|_| anyhow::anyhow!("--tenant is not a tenant id"))?;
            let sent = cardplane_api::workflows::invitations::invite_teammate(
                &state,
                cardplane_api::workflows::invitations::Inviter::Cli,
                &tenant,
                &email,
                &role,
            )
            .await
            .map_err(|e| anyhow::anyhow!(e.body.message))?;
            state.close_db().await;
            println!(
                "invited  {} as {}",
                sent.invitation.email,
                sent.invitation.role.as_str()
            );
            println!("link     {}", sent.link);
            println!("The link works once; it was also mailed.");
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    json,
                    permissions,
                    rate_limit,
                },
        } => {
            let state = open_state(config).await?;
            let tenant = cardplane_api::workflows::admin::create_tenant(
                state.tenants.as_ref(),
                &state.pepper,
                &name,
                &permissions,
                rate_limit,
            )
            .await?;
            let permission_names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
            cardplane_api::workflows::admin::audit_cli(
                &state,
                "cardplane tenant create",
                "tenant.created",
                ("tenant", &tenant.tenant_id),
                serde_json::json!({
                    "name": tenant.name,
                    "api_keys": [tenant.sandbox_key.id, tenant.live_key.id],
                    "permissions": permission_names,
                }),
            )
            .await?;
            state.close_db().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenant)?);
            } else {
                println!("tenant   {} ({})", tenant.tenant_id, tenant.name);
                println!("sandbox  {}:{}", tenant.sandbox_key.id, tenant.sandbox_key.secret);
                println!("live     {}:{}", tenant.live_key.id, tenant.live_key.secret);
                println!(
                    "The secrets are shown once. Use them as HTTP basic auth (key id as user, secret as password)."
                );
            }
        }
        Command::Keys {
            command: KeysCommand::RotateKek { new_kek, generate },
        } => {
            let old = Secrets::load(&config)?.kek;
            let new = match (new_kek, generate) {
                (Some(raw), _) => Kek::parse(&raw).context("--new-kek")?,
                (None, _) => Kek::generate(),
            };
            let state = open_state(config).await?;
            let n = rotate_kek(&state.sql_store(), &old, &new).await?;
            cardplane_api::workflows::admin::audit_cli(
                &state,
                "cardplane keys rotate-kek",
                "kek.rotated",
                ("kek", new.id()),
                serde_json::json!({ "from": old.id(), "data_keys": n }),
            )
            .await?;
            state.close_db().await;
            if store_rotated_kek(&state.config, &new)? {
                eprintln!(
                    "re-wrapped {n} data key(s) from {} to {}; the key file now holds the new KEK",
                    old.id(),
                    new.id()
                );
            } else {
                eprintln!(
                    "re-wrapped {n} data key(s) from {} to {}; set CARDPLANE_KEK to the new KEK before the next start",
                    old.id(),
                    new.id()
                );
            }
            if generate && state.config.kek.is_some() {
                println!("{}", new.encode());
            }
        }
        Command::Network {
            command:
                NetworkCommand::CreateCredential {
                    environment,
                    name,
                    json,
                },
        } => {
            let environment = Environment::parse(&environment).context("--environment must be sandbox or live")?;
            let state = open_state(config).await?;
            let issued = cardplane_api::workflows::admin::create_network_credential(
                state.network.as_ref(),
                &state.pepper,
                environment,
                &name,
            )
            .await?;
            cardplane_api::workflows::admin::audit_cli(
                &state,
                "cardplane network create-credential",
                "network_credential.created",
                ("network_credential", &issued.id),
                serde_json::json!({ "environment": environment.as_str(), "name": name }),
            )
            .await?;
            state.close_db().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                println!(
                    "network credential {}:{} ({})",
                    issued.id, issued.secret, issued.environment
                );
            }
        }
        Command::Simulate {
            url,
            key_stdin,
            key,
            program,
            cards,
            count,
            load,
        } => {
            let source = match (key_stdin, key) {
                (true, _) => simulate::KeySource::Stdin,
                (false, Some(flag)) => simulate::KeySource::Flag(flag),
                (false, None) => simulate::KeySource::Environment,
            };
            let key = simulate::api_key(
                source,
                |name| std::env::var(name).ok(),
                || {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map(|_| line)
                },
            )?;
            simulate::run(simulate::Options {
                url,
                key,
                program,
                cards: cards.max(1),
                count,
                load,
            })
            .await?;
        }
        Command::Bench {
            workload,
            cards,
            connections,
            duration_secs,
            warmup_secs,
            rate,
            growth,
            no_baselines,
            rules,
            history,
            request_log,
            rounds,
            json,
        } => {
            let state = open_state(config).await?;
            if workload == bench::Workload::Api {
                let duration = std::time::Duration::from_secs(duration_secs.max(1));
                let warmup = std::time::Duration::from_secs(warmup_secs);
                let runs = bench::api::run(
                    state.clone(),
                    request_log,
                    rounds.max(1),
                    connections.max(1),
                    duration,
                    warmup,
                )
                .await;
                state.close_db().await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&runs?)?);
                    return Ok(());
                }
                return runs.map(|_| ());
            }
            if workload == bench::Workload::Backtest {
                let outcome = bench::backtest::run(state.clone(), history, rules).await;
                state.close_db().await;
                return outcome;
            }
            let options = bench::Options {
                workload,
                cards: cards.max(1),
                connections: connections.max(1),
                duration: std::time::Duration::from_secs(duration_secs.max(1)),
                warmup: std::time::Duration::from_secs(warmup_secs),
                rate,
                growth,
                baselines: !no_baselines,
                rules,
            };
            let report = bench::run(state.clone(), options).await?;
            state.close_db().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                bench::print(&report);
            }
            if report.runs.iter().any(|r| !r.ledger_clean || !r.money_conserved) {
                std::process::exit(1);
            }
        }
        Command::Ledger {
            command: LedgerCommand::Verify,
        } => {
            let state = open_state(config).await?;
            let report = state.ledger.verify_ledger().await?;
            state.close_db().await;
            println!(
                "{} accounts, {} journals, {} entries checked",
                report.accounts, report.journals, report.entries
            );
            if !report.problems.is_empty() {
                for p in &report.problems {
                    println!("PROBLEM: {p}");
                }
                println!("ledger verify: {} problem(s)", report.problems.len());
                std::process::exit(1);
            }
            println!("ledger verify: clean");
        }
        Command::Operator {
            command:
                OperatorCommand::Create {
                    email,
                    name,
                    role,
                    password,
                    password_stdin,
                    json,
                },
        } => {
            let password = match (password, password_stdin) {
                (_, true) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
                (Some(p), false) => p,
                (None, false) => anyhow::bail!("give a password (CARDPLANE_OPERATOR_PASSWORD or --password-stdin)"),
            };
            let state = open_state(config).await?;
            let person = cardplane_api::workflows::admin::create_operator(&state, &email, &name, role, password).await;
            state.close_db().await;
            let person = person?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": person.id, "email": person.email, "role": person.role.as_str() })
                );
            } else {
                println!(
                    "operator {} <{}> created with role {}; sign in at /console (or POST /ops/login) and enrol TOTP",
                    person.id,
                    person.email,
                    person.role.as_str()
                );
            }
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let state = open_state(config).await?;
            let result = state.audit.verify_audit().await;
            state.close_db().await;
            match result? {
                Ok((entries, head)) => {
                    println!("audit verify: clean ({entries} entries, head {head})");
                }
                Err(broken) => {
                    println!("audit verify: BROKEN: {broken}");
                    std::process::exit(1);
                }
            }
        }
        Command::Webhooks {
            command: WebhooksCommand::Listen { port, secret },
        } => {
            let secret = cardplane_domain::webhook::WebhookSecret::parse(&secret).context("--secret")?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            cardplane_api::webhook_listen::listen(addr, secret, shutdown_signal()).await?;
        }
    }
    Ok(())
}
