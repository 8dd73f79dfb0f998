//! `cardplane bench backtest`: a program with `rules` active rules and a history of `history`
//! stored authorizations over the last 30 days (bulk-written, as the engine stores them), one
//! more rule with a draft, and a backtest of the whole window run by the same runner the server's
//! job uses; prints how long it took and what it found.

use std::time::Instant;

use cardplane_api::state::AppState;
use cardplane_domain::Timestamp;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_engine::rules::{Mode, NewRule, RuleScope, Submitted};
use serde_json::json;

use super::provisioning::{bench_rules, books, provision};

const WINDOW_SECS: i64 = 30 * 86_400;

pub async fn run(state: AppState, history: i64, rules: usize) -> anyhow::Result<()> {
    let books = books(&state).await?;
    let store = state.sql_store();
    eprintln!("provisioning 1000 cards, {rules} active rules");
    provision(&state, &books, 1_000).await?;
    store
        .install_bench_rules(&books.scope, &books.program.id, &bench_rules(rules))
        .await?;
    let now = Timestamp::now();
    let from = now.plus_secs(-WINDOW_SECS);
    eprintln!("writing {history} stored authorizations over 30 days");
    let started = Instant::now();
    let written = store
        .insert_bench_history(&books.scope, &books.program.id, history, from, WINDOW_SECS - 60)
        .await?;
    store.settle_after_provisioning().await?;
    eprintln!("wrote {written} in {:.1} s", started.elapsed().as_secs_f64());
    let submitted = Submitted {
        name: Some(json!("Foreign card-not-present over 400.00")),
        priority: None,
        kind: Some(json!("conditional_action")),
        parameters: Some(
            json!({"match": "all", "action": "decline", "response_code": "59", "conditions": [
            {"attribute": "entry_mode", "operation": "is_one_of", "value": ["ecommerce"]},
            {"attribute": "merchant_country", "operation": "is_not_one_of", "value": ["USA"]},
            {"attribute": "amount", "operation": "greater_than", "value": 40_000}]}),
        ),
    };
    let no_records = |_: u16, _: &str| None;
    let created = state
        .rules
        .create(
            &books.scope,
            NewRule {
                scope: RuleScope {
                    kind: ControlScopeKind::Program,
                    id: books.program.id.to_string(),
                    shown: books.program.program_id.clone(),
                },
                submitted: &submitted,
                mode: Mode::Shadow,
                by: "bench",
            },
            &no_records,
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the rule: {e:?}"))?;
    let rule = created.rule.rule.id.clone();
    let (queued, _) = state
        .rules
        .start_backtest(
            &books.scope,
            &rule,
            (from, Timestamp::now()),
            &no_records,
            Timestamp::now(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the backtest: {e:?}"))?;
    let runner = state.backtest_runner();
    let started = Instant::now();
    let ran = runner.run_once(Timestamp::now()).await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(ran.as_ref() == Some(&queued.id), "the runner did not take the backtest");
    let done = state
        .rules
        .backtests()
        .get_backtest(&books.scope, &rule, &queued.id)
        .await?;
    println!(
        "backtest on {} | {} stored authorizations, {} active rules + 1 draft | {} replayed in {elapsed:.1} s ({:.0}/s) | status {}",
        state.backend().name(),
        written,
        rules,
        done.processed,
        done.processed as f64 / elapsed.max(1e-9),
        done.status.as_str(),
    );
    if let Some(result) = &done.result {
        let summary = json!({
            "active": result.get("active"),
            "draft": result.get("draft"),
            "changed": result.get("changed"),
        });
        println!("{summary}");
    }
    Ok(())
}
