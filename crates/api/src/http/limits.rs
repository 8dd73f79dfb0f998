//! Abuse limits: a token bucket per API key (rate configurable per tenant), and a brake on failed
//! authentication per source address. Both answer 429 with `Retry-After` in the error envelope.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::ids::ApiKeyId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::http::error::{ApiError, ErrorType};

/// How long a source that failed authentication too often is refused.
const AUTH_BLOCK: Duration = Duration::from_secs(60);

pub struct Limits {
    default_per_second: u32,
    keys: Mutex<HashMap<ApiKeyId, (u32, Arc<DefaultDirectRateLimiter>)>>,
    auth_failures_per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

pub fn too_many(code: &str, message: &str, retry_after: Duration) -> Response {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, ErrorType::RateLimitError, code, message).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

impl Limits {
    pub fn new(default_per_second: u32, auth_failures_per_minute: u32) -> Self {
        Self {
            default_per_second: default_per_second.max(1),
            keys: Mutex::default(),
            auth_failures_per_minute: auth_failures_per_minute.max(1),
            failures: Mutex::default(),
            blocked: Mutex::default(),
        }
    }

    /// Takes one request from the key's bucket (a burst of one second's worth), or says how long to wait.
    pub fn check_key(&self, key: &ApiKeyId, tenant_rate: Option<u32>) -> Result<(), Duration> {
        let rate = tenant_rate.unwrap_or(self.default_per_second).max(1);
        let limiter = {
            let mut keys = self.keys.lock().expect("limits lock");
            let entry = keys
                .entry(key.clone())
                .or_insert_with(|| (rate, Arc::new(limiter(rate))));
            if entry.0 != rate {
                *entry = (rate, Arc::new(limiter(rate)));
            }
            entry.1.clone()
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Whether this source is refused for failing authentication too often, and for how long.
    pub fn auth_blocked(&self, source: IpAddr) -> Option<Duration> {
        let mut blocked = self.blocked.lock().expect("limits lock");
        match blocked.get(&source) {
            Some(until) if *until > Instant::now() => Some(*until - Instant::now()),
            Some(_) => {
                blocked.remove(&source);
                None
            }
            None => None,
        }
    }

    /// Counts a failed authentication; past the limit within a minute the source is blocked.
    pub fn auth_failed(&self, source: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("limits lock");
        let entry = failures.entry(source).or_insert((0, now));
        if now.duration_since(entry.1) > Duration::from_secs(60) {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 > self.auth_failures_per_minute {
            self.blocked
                .lock()
                .expect("limits lock")
                .insert(source, now + AUTH_BLOCK);
            *entry = (0, now);
        }
    }
}

fn limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(rate))
}
