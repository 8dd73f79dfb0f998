//! The request log's masking against random JSON: card numbers and SSNs put anywhere (keys,
//! strings, numbers, nested arrays), in any format, never survive it.

use cardplane_domain::pan::{luhn_check_digit, luhn_valid};
use cardplane_domain::request_log::{mask_json, mask_query, mask_text};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// A Luhn-valid card number of 13–19 digits.
fn pan() -> impl Strategy<Value = String> {
    (13usize..=19, prop::collection::vec(0u8..10, 19)).prop_map(|(len, digits)| {
        let payload: String = digits[..len - 1].iter().map(|d| char::from(b'0' + d)).collect();
        format!("{payload}{}", luhn_check_digit(&payload))
    })
}

fn ssn() -> impl Strategy<Value = String> {
    (100u32..900, 10u32..100, 1000u32..10_000).prop_map(|(a, b, c)| format!("{a}-{b}-{c}"))
}

/// A secret written the ways people write it: plain, grouped by spaces or dashes.
fn formatted(raw: String, style: u8) -> String {
    let sep = match style % 3 {
        0 => return raw,
        1 => " ",
        _ => "-",
    };
    let chars: Vec<char> = raw.chars().filter(char::is_ascii_digit).collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Filler text that never touches a secret's digits (so the embedded value stays a whole run).
fn filler() -> impl Strategy<Value = String> {
    "[a-z =:/_]{0,8}"
}

#[derive(Debug, Clone)]
enum Secret {
    Pan(String),
    Ssn(String),
}

fn secret() -> impl Strategy<Value = (Secret, u8)> {
    (
        prop_oneof![pan().prop_map(Secret::Pan), ssn().prop_map(Secret::Ssn)],
        0u8..3,
    )
}

fn embedded((secret, style): (Secret, u8), before: String, after: String) -> (Value, Secret) {
    let text = match &secret {
        Secret::Pan(p) => formatted(p.clone(), style),
        Secret::Ssn(s) => s.clone(),
    };
    let value = match (&secret, style) {
        (Secret::Pan(p), 0) if before.is_empty() && after.is_empty() => {
            p.parse::<u64>().map_or(Value::String(text), Value::from)
        }
        _ => Value::String(format!("{before}{text}{after}")),
    };
    (value, secret)
}

fn leaf() -> impl Strategy<Value = (Value, Vec<Secret>)> {
    prop_oneof![
        any::<i64>().prop_map(|n| (Value::from(n), vec![])),
        "[a-z0-9 ]{0,12}".prop_map(|s| (Value::String(s), vec![])),
        (secret(), filler(), filler()).prop_map(|(s, b, a)| {
            let (v, s) = embedded(s, b, a);
            (v, vec![s])
        }),
    ]
}

fn key() -> impl Strategy<Value = (String, Vec<Secret>)> {
    prop_oneof![
        4 => "[a-z_]{1,10}".prop_map(|k| (k, vec![])),
        1 => prop::sample::select(vec!["document", "value", "pan", "cvv", "ssn", "code", "first_name"]).prop_map(|k| (k.to_owned(), vec![])),
        1 => (secret(), filler()).prop_map(|(s, b)| {
            let (v, s) = embedded(s, b, String::new());
            (v.as_str().map_or_else(|| v.to_string(), str::to_owned), vec![s])
        }),
    ]
}

fn tree() -> impl Strategy<Value = (Value, Vec<Secret>)> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| {
                let (values, secrets): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                (Value::Array(values), secrets.concat())
            }),
            prop::collection::vec((key(), inner), 0..6).prop_map(|entries| {
                let mut map = Map::new();
                let mut secrets = Vec::new();
                for ((k, mut ks), (v, mut vs)) in entries {
                    secrets.append(&mut ks);
                    secrets.append(&mut vs);
                    map.insert(k, v);
                }
                (Value::Object(map), secrets)
            }),
        ]
    })
}

/// Every maximal run of digits (single spaces or dashes between groups joined) in `text`.
fn digit_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let joins = matches!(c, ' ' | '-') && !current.is_empty() && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() {
            current.push(*c);
        } else if !joins && !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    runs.push(current);
    runs
}

fn assert_clean(text: &str, secrets: &[Secret]) {
    for run in digit_runs(text) {
        for len in 13..=19.min(run.len()) {
            for at in 0..=run.len() - len {
                assert!(!luhn_valid(&run[at..at + len]), "a card number survived in {text}");
            }
        }
    }
    let squashed: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    for s in secrets {
        let digits = match s {
            Secret::Pan(p) => p.clone(),
            Secret::Ssn(s) => s.replace('-', ""),
        };
        assert!(!squashed.contains(&digits), "{s:?} survived in {text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn masked_json_holds_no_card_number_and_no_ssn((mut tree, secrets) in tree()) {
        mask_json(&mut tree);
        assert_clean(&tree.to_string(), &secrets);
    }

    #[test]
    fn masked_free_text_and_queries_hold_no_card_number_and_no_ssn(
        parts in prop::collection::vec((filler(), secret()), 1..5),
    ) {
        let mut text = String::new();
        let mut secrets = Vec::new();
        for (before, s) in parts {
            let (v, s) = embedded(s, before, " ".into());
            text.push_str(v.as_str().map_or_else(|| v.to_string(), str::to_owned).as_str());
            secrets.push(s);
        }
        assert_clean(&mask_text(&text), &secrets);
        let query = format!("q={}", text.replace(' ', "+"));
        assert_clean(&mask_query(&query), &secrets);
    }
}
