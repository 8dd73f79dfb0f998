//! Custodian balance authority: ask the custodian's endpoint whether a card may spend, and answer
//! the network by the program's deadline whatever the custodian does. Timeouts, errors, garbage
//! and an open circuit breaker all fall back to the program's stand-in policy; late answers are
//! ignored.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cardplane_domain::Timestamp;
use cardplane_domain::authorization::CustodianVerdict;
use cardplane_domain::network::CustodianOutcome;
use cardplane_domain::program::StandInPolicy;
use serde::Deserialize;

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
}

/// One circuit breaker per program, in this process: `failures_max` consecutive failures open it
/// for `open_for`; then one probe may go through.
pub struct Breakers {
    states: Mutex<HashMap<String, BreakerState>>,
    failures_max: u32,
    open_for: Duration,
}

impl Breakers {
    pub fn new(failures_max: u32, open_for: Duration) -> Self {
        Self {
            states: Mutex::default(),
            failures_max,
            open_for,
        }
    }

    /// Whether a call may go out now. An open breaker lets one probe through once its time is up.
    fn allow(&self, key: &str) -> bool {
        let mut map = self.states.lock().expect("breaker lock");
        let state = map.entry(key.to_owned()).or_default();
        match state.open_until {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half-open: this caller probes; others wait for its result.
                state.open_until = Some(Instant::now() + self.open_for);
                true
            }
            None => true,
        }
    }

    fn record(&self, key: &str, ok: bool) {
        let mut map = self.states.lock().expect("breaker lock");
        let state = map.entry(key.to_owned()).or_default();
        if ok {
            *state = BreakerState::default();
        } else {
            state.failures += 1;
            if state.failures >= self.failures_max {
                state.open_until = Some(Instant::now() + self.open_for);
            }
        }
    }

    pub fn is_open(&self, key: &str) -> bool {
        let map = self.states.lock().expect("breaker lock");
        map.get(key)
            .and_then(|s| s.open_until)
            .is_some_and(|u| Instant::now() < u)
    }
}

#[derive(Deserialize)]
struct CustodianAnswer {
    approved: bool,
    /// Minor units approved; default: the amount asked.
    amount: Option<i64>,
}

pub struct CustodianCall<'a> {
    pub breaker_key: &'a str,
    pub url: &'a str,
    pub secret: &'a [u8],
    pub deadline: Duration,
    pub stand_in: StandInPolicy,
    pub amount: i64,
    pub body: serde_json::Value,
}

fn stand_in(policy: StandInPolicy) -> CustodianVerdict {
    match policy {
        StandInPolicy::Decline => CustodianVerdict::StandIn { approve_up_to: None },
        StandInPolicy::ApproveUpTo(n) => CustodianVerdict::StandIn { approve_up_to: Some(n) },
    }
}

pub async fn ask(client: &reqwest::Client, breakers: &Breakers, call: CustodianCall<'_>) -> CustodianOutcome {
    if !breakers.allow(call.breaker_key) {
        return CustodianOutcome {
            verdict: stand_in(call.stand_in),
            sent_at: None,
            answered_at: None,
        };
    }
    let sent_at = Timestamp::now();
    let result = tokio::time::timeout(call.deadline, request(client, &call)).await;
    let verdict = match result {
        Ok(Ok(v)) => Some(v),
        Ok(Err(reason)) => {
            tracing::warn!(
                program = call.breaker_key,
                reason,
                "custodian answer unusable; stand-in decides"
            );
            None
        }
        Err(_) => {
            tracing::warn!(
                program = call.breaker_key,
                "custodian missed the deadline; stand-in decides"
            );
            None
        }
    };
    breakers.record(call.breaker_key, verdict.is_some());
    match verdict {
        Some(v) => CustodianOutcome {
            verdict: v,
            sent_at: Some(sent_at),
            answered_at: Some(Timestamp::now()),
        },
        None => CustodianOutcome {
            verdict: stand_in(call.stand_in),
            sent_at: Some(sent_at),
            answered_at: None,
        },
    }
}

async fn request(client: &reqwest::Client, call: &CustodianCall<'_>) -> Result<CustodianVerdict, String> {
    let body = serde_json::to_vec(&call.body).map_err(|e| e.to_string())?;
    let raw = crate::outbound::post_signed_json(client, call.url, Some(call.secret), body, "custodian").await?;
    let answer: CustodianAnswer = serde_json::from_slice(&raw).map_err(|e| format!("malformed answer: {e}"))?;
    if !answer.approved {
        return Ok(CustodianVerdict::Declined);
    }
    let amount = answer.amount.unwrap_or(call.amount);
    if amount <= 0 || amount > call.amount {
        return Err(format!("approved amount {amount} outside 1..={}", call.amount));
    }
    Ok(CustodianVerdict::Approved { amount })
}
