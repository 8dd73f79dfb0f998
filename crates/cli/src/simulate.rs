//! `cardplane simulate`: a realistic stream of card activity against a running server's sandbox,
//! through the same simulator endpoints (and so the same pipeline) as network traffic.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde_json::{Value, json};

/// Where `cardplane simulate` takes its API key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `CARDPLANE_API_KEY` (the default).
    Environment,
    /// `--key-stdin`: the first line of standard input.
    Stdin,
    /// `--key KEY_ID:SECRET`: deprecated, since the secret shows in the process list.
    Flag(String),
}

/// The environment variable the API key is read from.
pub const API_KEY_ENV: &str = "CARDPLANE_API_KEY";

/// Resolves the API key (`KEY_ID:SECRET`). The deprecated flag still works, with a warning on
/// standard error; `env` and `stdin` are injected so the rules can be tested.
pub fn api_key(
    source: KeySource,
    env: impl Fn(&str) -> Option<String>,
    stdin: impl FnOnce() -> std::io::Result<String>,
) -> anyhow::Result<String> {
    let key = match source {
        KeySource::Flag(key) => {
            eprintln!(
                "warning: --key puts the API secret in the process list and shell history; \
                 set {API_KEY_ENV} or use --key-stdin instead (--key will be removed)"
            );
            key
        }
        KeySource::Stdin => stdin().context("reading the API key from standard input")?,
        // CARDPLANE_SIMULATE_KEY is the name this variable had before; still read.
        KeySource::Environment => env(API_KEY_ENV)
            .or_else(|| env("CARDPLANE_SIMULATE_KEY"))
            .with_context(|| {
                format!(
                    "give the sandbox API key (KEY_ID:SECRET) in {API_KEY_ENV} or on standard input with --key-stdin"
                )
            })?,
    };
    let key = key.trim_end_matches(['\r', '\n']).to_owned();
    match key.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(key),
        _ => bail!("the API key must look like KEY_ID:SECRET"),
    }
}

pub struct Options {
    pub url: String,
    pub key: String,
    pub program: String,
    pub cards: usize,
    pub count: usize,
    pub load: i64,
}

struct Client {
    http: reqwest::Client,
    base: String,
    user: String,
    secret: String,
}

impl Client {
    /// POSTs, waiting out the key's rate limit (429 + Retry-After) when the stream outpaces it.
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        loop {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .basic_auth(&self.user, Some(&self.secret))
                .json(&body)
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = r.status().as_u16();
            if status == 429 {
                let secs = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1u64);
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                continue;
            }
            return Ok((status, r.json().await.unwrap_or(Value::Null)));
        }
    }
}

const MERCHANTS: &[(&str, &str, &str)] = &[
    ("5411", "Corner Grocery", "New York"),
    ("5812", "Luigi's Trattoria", "Boston"),
    ("5541", "Gas & Go", "Austin"),
    ("7011", "Harbor Hotel", "San Diego"),
    ("5732", "Volt Electronics", "Seattle"),
];

#[derive(Default)]
struct Tally {
    approved: u64,
    declined: u64,
    cleared: u64,
    reversed: u64,
    refunded: u64,
}

// Long: the simulation's script (issue the cards, then authorize and follow each answer up
// with a clearing, reversal or refund), each part a few lines over the same client and tally.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let (user, secret) = o.key.split_once(':').context("the API key is KEY_ID:SECRET")?;
    let c = Client {
        http: reqwest::Client::new(),
        base: o.url.trim_end_matches('/').to_owned(),
        user: user.into(),
        secret: secret.into(),
    };
    let mut rng = rand::rng();
    eprintln!("issuing {} cards in {} with {} loaded each", o.cards, o.program, o.load);
    let mut cards = Vec::new();
    for i in 0..o.cards {
        let (status, holder) = c
            .post("/cardholders", json!({
                "first_name": "Sim", "last_name": format!("Holder {i}"), "email": format!("sim{i}@example.com"),
                "phone_number": "+16505550100", "date_of_birth": "1990-01-01",
                "address": {"street_one": "1 Main St", "locality": "Austin", "region": "TX", "postal_code": "73301", "country": "USA"},
                "document": {"type": "ssn", "value": format!("12345{:04}", 5000 + i)}
            }))
            .await?;
        if status != 200 {
            bail!("creating a cardholder failed ({status}): {holder}");
        }
        let path = format!(
            "/cardholders/{}/cards",
            holder["cardholder"]["id"].as_str().unwrap_or_default()
        );
        let (status, card) = c
            .post(
                &path,
                json!({"program_id": o.program, "initial_load": {"currency": "USD", "amount": o.load}}),
            )
            .await?;
        if status != 200 {
            bail!(
                "issuing a card failed ({status}): {card} (is the program funded? POST /sandbox/programs/{}/fund)",
                o.program
            );
        }
        cards.push(card["card"]["id"].as_str().unwrap_or_default().to_owned());
    }
    let bar = ProgressBar::new(u64::try_from(o.count).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} authorizations {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut t = Tally::default();
    for _ in 0..o.count {
        let card = &cards[rng.random_range(0..cards.len())];
        let (mcc, name, city) = MERCHANTS[rng.random_range(0..MERCHANTS.len())];
        // Mostly small purchases; some too large for the card, which the engine declines.
        let amount = if rng.random_bool(0.08) {
            o.load * 2
        } else {
            rng.random_range(100..2_500)
        };
        let (_, answer) = c
            .post(
                "/simulate/authorizations",
                json!({
                    "card_id": card, "amount": amount,
                    "merchant": {"id": format!("m_{mcc}"), "name": name, "mcc": mcc, "country": "USA", "city": city}
                }),
            )
            .await?;
        if answer["decision"] != "approved" {
            t.declined += 1;
        } else {
            t.approved += 1;
            let id = answer["authorization_id"].clone();
            let roll: f64 = rng.random();
            if roll < 0.90 {
                c.post("/simulate/clearings", json!({"authorization_id": id})).await?;
                t.cleared += 1;
                if rng.random_bool(0.02) {
                    c.post(
                        "/simulate/refunds",
                        json!({"authorization_id": id, "amount": (amount / 2).max(1)}),
                    )
                    .await?;
                    t.refunded += 1;
                }
            } else if roll < 0.95 {
                c.post("/simulate/reversals", json!({"authorization_id": id})).await?;
                t.reversed += 1;
            }
        }
        bar.set_message(format!("{} approved, {} declined", t.approved, t.declined));
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{} authorizations: {} approved, {} declined; {} cleared, {} reversed, {} refunded; the rest stay pending until they expire",
        o.count, t.approved, t.declined, t.cleared, t.reversed, t.refunded
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_stdin() -> std::io::Result<String> {
        panic!("standard input is read only with --key-stdin")
    }

    #[test]
    fn the_api_key_comes_from_the_environment_or_standard_input() {
        let env = |name: &str| (name == API_KEY_ENV).then(|| "key_1:sk_test_x".to_owned());
        assert_eq!(
            api_key(KeySource::Environment, env, no_stdin).unwrap(),
            "key_1:sk_test_x"
        );
        let stdin = || Ok("key_2:sk_test_y\n".to_owned());
        assert_eq!(api_key(KeySource::Stdin, |_| None, stdin).unwrap(), "key_2:sk_test_y");
        // The deprecated flag still works (with a warning on stderr).
        let flag = KeySource::Flag("key_3:sk_test_z".into());
        assert_eq!(api_key(flag, |_| None, no_stdin).unwrap(), "key_3:sk_test_z");
        let missing = api_key(KeySource::Environment, |_| None, no_stdin).unwrap_err();
        assert!(missing.to_string().contains(API_KEY_ENV), "{missing}");
        for bad in ["", "no-colon", ":secret", "key_1:"] {
            let stdin = || Ok(format!("{bad}\n"));
            assert!(api_key(KeySource::Stdin, |_| None, stdin).is_err(), "{bad:?}");
        }
    }
}
