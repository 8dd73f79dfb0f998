//! `Application::build(config)` binds (port 0 in tests) and exposes its address; `router(state)`
//! is the whole HTTP surface.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cardplane_domain::Timestamp;
use cardplane_store::{Db, DbOptions, SqlStore};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::http::error::{ApiError, ErrorType};
use crate::http::middleware::{
    access_log, api_version, audit_mutation, authenticate, header_limit, idempotency, request_deadline,
};
use crate::http::people::staff_session;
use crate::http::shutdown::InFlight;
use crate::routes::{
    alerts, api_keys, authorization_rules, cardholder_documents, cardholders, cards, controls, disputes, events,
    network, ops, ops_alerts, ops_audit, ops_auth, ops_cases, ops_chains, ops_disputes, ops_people, programs, sandbox,
    simulate, simulate_disputes, transactions, webhooks,
};
use crate::state::AppState;
use crate::workflows::secrets::{Secrets, card_keys, open_vault};

const IDEMPOTENCY_PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long shutdown waits for the request log's last batches.
const REQUEST_LOG_FLUSH_MAX: Duration = Duration::from_secs(10);

async fn route_not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorType::NotFoundError,
        "route_not_found",
        "No such endpoint",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorType::InvalidRequestError,
        "method_not_allowed",
        "This endpoint does not support this HTTP method",
    )
    .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

/// The tenant API (API-key credentials). A route table, one entry per endpoint: it is longer than a
/// function should be because the API's whole surface is meant to read top to bottom in one place.
fn tenant_api(state: &AppState) -> Router<AppState> {
    let api = Router::new()
        .route(
            "/cardholders",
            get(cardholders::list_cardholders).post(cardholders::create_cardholder),
        )
        .route(
            "/cardholders/{cardholder_id}",
            get(cardholders::get_cardholder).post(cardholders::update_cardholder),
        )
        .route(
            "/cardholders/{cardholder_id}/kyc_checks",
            get(cardholders::list_kyc_checks),
        )
        .route(
            "/cardholders/{cardholder_id}/card_orders",
            get(cardholders::list_card_orders),
        )
        .route(
            "/cardholders/{cardholder_id}/documents",
            get(cardholder_documents::list_documents)
                .post(cardholder_documents::upload_document)
                .layer(DefaultBodyLimit::max(state.document_body_limit())),
        )
        .route("/api_keys", get(api_keys::list_api_keys).post(api_keys::create_api_key))
        .route("/api_keys/{api_key_id}", get(api_keys::get_api_key))
        .route("/api_keys/{api_key_id}/revoke", post(api_keys::revoke_api_key))
        .route(
            "/cardholders/{cardholder_id}/cards",
            get(cards::list_cardholder_cards).post(cards::create_card),
        )
        .route("/programs", get(programs::list_programs).post(programs::create_program))
        .route(
            "/programs/{program_id}",
            get(programs::get_program).post(programs::update_program),
        )
        .route("/programs/{program_id}/funding", get(programs::get_program_funding))
        .route("/cards", get(cards::list_cards))
        .route("/cards/{card_id}", get(cards::get_card))
        .route("/cards/{card_id}/activate", post(cards::activate_card))
        .route("/cards/{card_id}/freeze", post(cards::freeze_card))
        .route("/cards/{card_id}/unfreeze", post(cards::unfreeze_card))
        .route("/cards/{card_id}/close", post(cards::close_card))
        .route("/cards/{card_id}/replace", post(cards::replace_card))
        .route("/cards/{card_id}/reveal", post(cards::reveal_card))
        .route("/cards/{card_id}/balance", get(cards::get_balance))
        .route(
            "/cards/{card_id}/balance_adjustments",
            post(cards::create_balance_adjustment),
        )
        .route("/cards/{card_id}/ledger_entries", get(cards::list_ledger_entries))
        .route(
            "/sandbox/cards/{card_id}/advance_shipping",
            post(sandbox::advance_shipping),
        )
        .route("/sandbox/programs/{program_id}/fund", post(sandbox::fund_program))
        .route(
            "/cards/{card_id}/transactions",
            get(transactions::list_card_transactions),
        )
        .route("/cards/{card_id}/spend_controls", get(controls::card_spend_controls))
        .route(
            "/cardholders/{cardholder_id}/transactions",
            get(transactions::list_cardholder_transactions),
        )
        .route("/transactions", get(transactions::list_transactions))
        .route("/transactions/{transaction_id}", get(transactions::get_transaction))
        .route(
            "/spend_controls",
            get(controls::list_spend_controls).post(controls::create_spend_control),
        )
        .route("/spend_controls/{spend_control_id}", get(controls::get_spend_control))
        .route(
            "/spend_controls/{spend_control_id}/disable",
            post(controls::disable_spend_control),
        )
        .route("/simulate/authorizations", post(simulate::simulate_authorization))
        .route("/simulate/clearings", post(simulate::simulate_clearing))
        .route("/simulate/reversals", post(simulate::simulate_reversal))
        .route("/simulate/refunds", post(simulate::simulate_refund))
        .route("/events", get(events::list_events))
        .route("/events/{event_id}", get(events::get_event))
        .route(
            "/webhook_endpoints",
            get(webhooks::list_endpoints).post(webhooks::create_endpoint),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}",
            get(webhooks::get_endpoint)
                .post(webhooks::update_endpoint)
                .delete(webhooks::delete_endpoint),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}/rotate_secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route("/webhook_endpoints/{endpoint_id}/replay", post(webhooks::replay))
        .route("/events/{event_id}/redeliver", post(webhooks::redeliver_event))
        .route("/transactions/{transaction_id}/disputes", post(disputes::file_dispute))
        .route("/disputes", get(disputes::list_disputes))
        .route("/disputes/{dispute_id}", get(disputes::get_dispute))
        .route(
            "/disputes/{dispute_id}/evidence",
            get(disputes::list_evidence)
                .post(disputes::add_evidence)
                .layer(DefaultBodyLimit::max(state.document_body_limit())),
        )
        .route("/disputes/{dispute_id}/withdraw", post(disputes::withdraw_dispute))
        .route(
            "/programs/{program_id}/dispute_policy",
            get(disputes::get_policy).put(disputes::put_policy),
        )
        .route(
            "/simulate/disputes/{dispute_id}/network",
            post(simulate_disputes::simulate_network),
        )
        .route(
            "/simulate/disputes/{dispute_id}/representment",
            post(simulate_disputes::simulate_representment).layer(DefaultBodyLimit::max(state.document_body_limit())),
        )
        .route(
            "/authorization_rules",
            get(authorization_rules::list_rules).post(authorization_rules::create_rule),
        )
        .route("/authorization_rules/{rule_id}", get(authorization_rules::get_rule))
        .route(
            "/authorization_rules/{rule_id}/versions",
            get(authorization_rules::list_versions).post(authorization_rules::new_version),
        )
        .route(
            "/authorization_rules/{rule_id}/promote",
            post(authorization_rules::promote_rule),
        )
        .route(
            "/authorization_rules/{rule_id}/disable",
            post(authorization_rules::disable_rule),
        )
        .route(
            "/authorization_rules/{rule_id}/backtests",
            post(authorization_rules::start_backtest),
        )
        .route(
            "/authorization_rules/{rule_id}/backtests/{backtest_id}",
            get(authorization_rules::get_backtest),
        )
        .route("/alerts", get(alerts::list_alerts))
        .route("/alerts/{alert_id}", get(alerts::get_alert))
        // Layers run bottom-up: authenticate, then the request log's capture (when enabled), the
        // audit entry, idempotency, and the handler.
        .route_layer(from_fn_with_state(state.clone(), idempotency))
        .route_layer(from_fn_with_state(state.clone(), audit_mutation));
    let api = if state.config.request_log.enabled {
        api.route_layer(from_fn_with_state(state.clone(), crate::http::request_log::capture))
    } else {
        api
    };
    api.route_layer(from_fn_with_state(state.clone(), authenticate))
}

/// The operations console's API (staff sessions; only sign-in is outside the session layer).
fn ops_api(state: &AppState) -> Router<AppState> {
    let document_limit = state.document_body_limit();
    Router::new()
        .route("/ops/session", get(ops_auth::get_session))
        .route("/ops/logout", post(ops_auth::logout))
        .route("/ops/mfa/totp", post(ops_auth::begin_totp))
        .route("/ops/mfa/totp/confirm", post(ops_auth::confirm_totp))
        .route("/ops/password", post(ops_auth::change_password))
        .route(
            "/ops/operators",
            get(ops_people::list_operators).post(ops_people::create_operator),
        )
        .route("/ops/operators/{user_id}", post(ops_people::update_operator))
        .route("/ops/operators/{user_id}/reset", post(ops_people::reset_operator))
        .route("/ops/tenants", get(ops_people::list_tenants))
        .route("/ops/tenants/{tenant_id}", get(ops_people::get_tenant))
        .route(
            "/ops/tenants/{tenant_id}/users",
            get(ops_people::list_tenant_users).post(ops_people::create_tenant_user),
        )
        .route(
            "/ops/tenants/{tenant_id}/users/{user_id}",
            post(ops_people::update_tenant_user),
        )
        .route(
            "/ops/tenants/{tenant_id}/api_keys",
            get(ops_people::list_tenant_api_keys),
        )
        .route(
            "/ops/tenants/{tenant_id}/api_keys/{api_key_id}/revoke",
            post(ops_people::revoke_tenant_api_key),
        )
        .route("/ops/cases", get(ops_cases::list_cases).post(ops_cases::open_case))
        .route("/ops/cases/{case_id}", get(ops_cases::get_case))
        .route("/ops/cases/{case_id}/assign", post(ops_cases::assign_case))
        .route("/ops/cases/{case_id}/notes", post(ops_cases::add_note))
        .route(
            "/ops/cases/{case_id}/documents",
            post(ops_cases::upload_document).layer(DefaultBodyLimit::max(document_limit)),
        )
        .route(
            "/ops/cases/{case_id}/request_documents",
            post(ops_cases::request_documents),
        )
        .route("/ops/cases/{case_id}/decisions", post(ops_cases::decide_case))
        .route(
            "/ops/documents/{document_id}/content",
            get(ops_cases::download_document),
        )
        .route(
            "/ops/programs/{program_id}/approval_chains",
            get(ops_chains::list_chains),
        )
        .route(
            "/ops/programs/{program_id}/approval_chains/{trigger}",
            put(ops_chains::put_chain),
        )
        .route("/ops/disputes", get(ops_disputes::list_disputes))
        .route("/ops/disputes/{dispute_id}", get(ops_disputes::get_dispute))
        .route("/ops/disputes/{dispute_id}/assign", post(ops_disputes::assign_dispute))
        .route("/ops/disputes/{dispute_id}/notes", post(ops_disputes::add_note))
        .route("/ops/disputes/{dispute_id}/actions", post(ops_disputes::act_on_dispute))
        .route("/ops/reports/disputes", get(ops_disputes::dispute_report))
        .route("/ops/alerts", get(ops_alerts::list_alerts))
        .route("/ops/alerts/{alert_id}/assign", post(ops_alerts::assign_alert))
        .route("/ops/alerts/{alert_id}/resolve", post(ops_alerts::resolve_alert))
        .route("/ops/audit", get(ops_audit::list_audit))
        .route("/ops/audit/export", get(ops_audit::export_audit))
        .route_layer(from_fn_with_state(state.clone(), staff_session))
        .route("/ops/login", post(ops_auth::login))
}

/// The card network's interface (network credentials).
fn network_api(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/network/authorizations", post(network::network_authorization))
        .route("/network/reversals", post(network::network_reversal))
        .route("/network/clearings", post(network::network_clearing))
        .route("/network/refunds", post(network::network_refund))
        .route_layer(from_fn_with_state(state.clone(), network::authenticate_network))
}

pub fn router(state: AppState) -> Router {
    let swagger = SwaggerUi::new("/docs")
        .url("/openapi.json", crate::openapi::document())
        .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none"));
    let request_id = HeaderName::from_static("request-id");
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(swagger)
        .merge(tenant_api(&state))
        .merge(network_api(&state))
        .merge(ops_api(&state))
        .merge(crate::console::router(&state))
        .merge(crate::portal::router(&state))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn(api_version))
        .layer(from_fn_with_state(state.clone(), request_deadline))
        .layer(from_fn_with_state(state.clone(), header_limit))
        .layer(from_fn(access_log))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(state.config.request_body_limit_bytes))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// One Prometheus recorder per process (tests run several servers in one process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("cardplane_engine_batch_size".into()),
                        &[
                            1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 192.0,
                            256.0, 384.0, 512.0,
                        ],
                    )
                })
                .expect("static buckets are valid")
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// Connects, migrates and opens the vault: what `serve` and the CLI commands share.
pub async fn open_state(config: Config) -> anyhow::Result<AppState> {
    let mut options = DbOptions::new(config.database_url.clone());
    options.max_connections = config.database_max_connections;
    options.acquire_timeout = Duration::from_millis(config.database_acquire_timeout_ms.max(1));
    config
        .webhooks
        .allowlist()
        .map_err(|e| anyhow::anyhow!("webhooks.live_allowed_networks: {e}"))?;
    let db = Db::connect(&options).await?;
    db.migrate().await?;
    let secrets = Secrets::load(&config)?;
    let store = SqlStore::new(db.clone());
    let vault = open_vault(&store, &secrets.kek).await?;
    let card_keys = card_keys(&store, &vault).await?;
    Ok(AppState::new(
        config,
        db,
        vault,
        card_keys,
        secrets.pepper,
        metrics_handle(),
    )?)
}

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listen = config.listen;
        let state = open_state(config).await?;
        let listener = TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            address,
            state,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight (not idle or
    /// half-sent connections: see `shutdown`), stops the background jobs and closes the pools.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let purge = tokio::spawn(purge_idempotency_keys(state.clone()));
        let expiry = tokio::spawn(expire_holds_periodically(state.clone()));
        let checkpoints = tokio::spawn(checkpoint_periodically(state.clone()));
        let dispute_clock = tokio::spawn(run_dispute_deadlines(state.clone()));
        let backtests = tokio::spawn(run_backtests(state.clone()));
        let rollups = tokio::spawn(roll_up_health(state.clone()));
        let (stop_log, log_stopped) = tokio::sync::oneshot::channel::<()>();
        let request_log = state.request_log_queue.take_receiver().map(|queue| {
            let stopped = async move {
                let _ = log_stopped.await;
            };
            tokio::spawn(crate::workflows::request_log::write_until(
                state.clone(),
                queue,
                stopped,
            ))
        });
        let webhooks = state.config.webhooks.worker.then(|| {
            let poll = Duration::from_millis(state.config.webhooks.poll_interval_ms);
            tokio::spawn(cardplane_engine::delivery::run(state.deliverer(), poll))
        });
        let in_flight = InFlight::default();
        let app = router(state.clone()).layer(from_fn_with_state(in_flight.clone(), crate::http::shutdown::track));
        // The signal, with the moment it came, for both the server and the drain below.
        let (stop, stopped) = tokio::sync::watch::channel(None::<std::time::Instant>);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(Some(std::time::Instant::now()));
        });
        let signalled = |mut stopped: tokio::sync::watch::Receiver<Option<std::time::Instant>>| async move {
            let _ = stopped.wait_for(Option::is_some).await;
        };
        let serve = axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signalled(stopped.clone()));
        let drained = async {
            signalled(stopped.clone()).await;
            tracing::info!(
                in_flight = in_flight.count(),
                "shutdown: finishing the requests in flight"
            );
            in_flight.idle().await;
        };
        // Whichever comes first: every connection closed, or no request left in flight (then the
        // connections still open are idle or half-sent, and are dropped with the server).
        let served = tokio::select! {
            served = serve.into_future() => served,
            () = drained => Ok(()),
        };
        purge.abort();
        expiry.abort();
        checkpoints.abort();
        dispute_clock.abort();
        backtests.abort();
        rollups.abort();
        if let Some(w) = webhooks {
            w.abort();
        }
        // The requests answered are all queued by now: the writer stores them before the pools close.
        let _ = stop_log.send(());
        if let Some(writer) = request_log
            && tokio::time::timeout(REQUEST_LOG_FLUSH_MAX, writer).await.is_err()
        {
            tracing::warn!("shutdown: the request log writer did not finish in time");
        }
        state.close_db().await;
        let signalled_at = *stopped.borrow();
        let shutdown_ms = signalled_at.map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
        tracing::info!(shutdown_ms, "stopped");
        served
    }
}

async fn run_dispute_deadlines(state: AppState) {
    let every = Duration::from_millis(state.config.dispute_deadlines_interval_ms.max(10));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match state.disputes.run_deadlines(Timestamp::now()).await {
            Ok(run) if run == cardplane_engine::disputes::DeadlineRun::default() => {}
            Ok(run) => tracing::info!(?run, "dispute deadlines"),
            Err(e) => tracing::warn!(error = %e, "dispute deadline run failed"),
        }
    }
}

/// Runs queued rule backtests one at a time; a process that dies mid-run loses its lease and
/// another (or it, restarted) runs the backtest again.
async fn run_backtests(state: AppState) {
    let every = Duration::from_millis(state.config.backtest_poll_interval_ms.max(10));
    let runner = state.backtest_runner();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        loop {
            match runner.run_once(Timestamp::now()).await {
                Ok(Some(id)) => tracing::info!(backtest.id = %id, "backtest finished"),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "backtest run failed");
                    break;
                }
            }
        }
    }
}

/// Rows younger than this are left for the next pass: a transaction still committing may hold a
/// smaller id than one already committed.
const HEALTH_ROLLUP_LAG: Duration = Duration::from_secs(2);
const HEALTH_ROLLUP_BATCH_MAX: u32 = 5_000;

/// Keeps the console's program-health aggregates current: each pass drains what is new (in
/// batches, so a backlog after downtime is caught up without one huge transaction).
async fn roll_up_health(state: AppState) {
    let every = Duration::from_millis(state.config.health_rollup_interval_ms.max(10));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        loop {
            let lag = i64::try_from(HEALTH_ROLLUP_LAG.as_micros()).unwrap_or(i64::MAX);
            let until = Timestamp::from_micros(Timestamp::now().as_micros() - lag);
            match state.health.roll_up(until, HEALTH_ROLLUP_BATCH_MAX).await {
                Ok(run) if run.total() == 0 => break,
                Ok(run) => tracing::debug!(?run, "health roll-up"),
                Err(e) => {
                    tracing::warn!(error = %e, "health roll-up failed");
                    break;
                }
            }
        }
    }
}

const HOLD_EXPIRY_EVERY: Duration = Duration::from_secs(60);

async fn expire_holds_periodically(state: AppState) {
    let mut tick = tokio::time::interval(HOLD_EXPIRY_EVERY);
    loop {
        tick.tick().await;
        match state.engine.expire_holds(Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired authorization holds released"),
            Err(e) => tracing::warn!(error = %e, "hold expiry failed"),
        }
    }
}

/// How often SQLite's write-ahead log is checkpointed beside the writer (see `Db::checkpoint`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

async fn checkpoint_periodically(state: AppState) {
    if state.backend() != cardplane_store::Backend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = state.checkpoint_db().await {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
}

async fn purge_idempotency_keys(state: AppState) {
    let mut tick = tokio::time::interval(IDEMPOTENCY_PURGE_EVERY);
    loop {
        tick.tick().await;
        match state.idempotency.purge_expired(Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency keys removed"),
            Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
        }
        let counters: &dyn cardplane_store::network_batch::NetworkBatchStore = &state.sql_store();
        match counters.prune_velocity_counters(Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "velocity counter buckets past every window removed"),
            Err(e) => tracing::warn!(error = %e, "velocity counter pruning failed"),
        }
        crate::workflows::request_log::purge_expired(&state, Timestamp::now()).await;
    }
}
