//! What a batch writes: a handful of multi-row statements, whatever the batch size.

use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::alert::Alert;
use cardplane_domain::authorization::Transaction;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{AccountId, CardId};
use cardplane_domain::network::Posting;
use cardplane_domain::rules::risk::RiskProfile;
use cardplane_domain::rules::velocity::CounterRow;
use sqlx::{AssertSqlSafe, Row};

use super::recordset::{Col, RecordSet, V};
use super::screening::{alerts_part, counters_part, profiles_part};
use super::{Exec, NetworkBatch};
use crate::{Backend, StoreError};

/// A network message's answer, recorded so a repeat gets it again.
#[derive(Debug, Clone)]
pub struct RecordedMessage<'a> {
    pub environment: Environment,
    pub network_transaction_id: &'a str,
    pub kind: &'a str,
    pub response: &'a str,
    pub transaction_id: Option<&'a str>,
    pub created_at: Timestamp,
}

/// Everything a batch changed.
#[derive(Debug, Default)]
pub struct BatchWrites<'a> {
    pub messages: Vec<RecordedMessage<'a>>,
    pub created: Vec<&'a Transaction>,
    pub updated: Vec<&'a Transaction>,
    /// (account, balance delta, held delta).
    pub accounts: Vec<(AccountId, i64, i64)>,
    pub postings: &'a [Posting],
    pub events: &'a [Event],
    /// Velocity counter changes, per bucket.
    pub counters: Vec<CounterRow>,
    pub risk_profiles: Vec<(&'a CardId, &'a RiskProfile)>,
    pub alerts: &'a [Alert],
    pub now: Option<Timestamp>,
}

impl NetworkBatch {
    /// Writes a batch's outcome. Returns the messages that another batch answered first (it
    /// committed while this one ran): if there are any, the batch must be rolled back and redone
    /// with those messages as repeats. PostgreSQL takes every write as one statement (data-
    /// modifying CTEs); SQLite, in process, runs them one after the other.
    pub async fn write(&mut self, w: &BatchWrites<'_>) -> Result<Vec<(Environment, String)>, StoreError> {
        let mut exec = self.exec();
        match exec.backend {
            Backend::Postgres => write_chained(&mut exec, w).await,
            Backend::Sqlite => write_one_by_one(&mut exec, w).await,
        }
    }
}

/// One write of a batch: a statement over one JSON parameter, written `{P}`.
struct Part {
    /// Its name as a CTE when the writes are chained into one statement.
    name: &'static str,
    sql: String,
    param: String,
    /// Rows an update must touch (every row a batch changes exists).
    expect: Option<usize>,
}

impl Part {
    fn statement(&self) -> String {
        self.sql.replace("{P}", "$1")
    }
}

fn parts(backend: Backend, w: &BatchWrites<'_>) -> Vec<Part> {
    [
        transactions_part(backend, &w.created),
        transaction_changes_part(backend, &w.updated),
        accounts_part(backend, &w.accounts),
    ]
    .into_iter()
    .flatten()
    .chain(postings_parts(backend, w.postings))
    .chain(
        [
            counters_part(backend, &w.counters),
            profiles_part(backend, &w.risk_profiles, w.now.unwrap_or_else(Timestamp::now)),
            alerts_part(backend, w.alerts),
        ]
        .into_iter()
        .flatten()
        .map(|p| Part {
            name: p.name,
            sql: p.sql,
            param: p.param,
            expect: None,
        }),
    )
    .collect()
}

async fn write_chained(exec: &mut Exec<'_>, w: &BatchWrites<'_>) -> Result<Vec<(Environment, String)>, StoreError> {
    let mut all: Vec<Part> = messages_part(exec.backend, &w.messages).into_iter().collect();
    all.extend(parts(exec.backend, w));
    if let Some(events) = events_part(exec.backend, w.events, None) {
        all.push(events);
        all.push(Part {
            name: "d",
            sql: deliveries_sql("ev x"),
            param: String::new(),
            expect: None,
        });
    }
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let mut ctes = Vec::new();
    let mut params = Vec::new();
    let mut results = Vec::new();
    for part in &all {
        let sql = if part.param.is_empty() {
            part.sql.clone()
        } else {
            params.push(part.param.as_str());
            part.sql.replace("{P}", &format!("${}", params.len()))
        };
        ctes.push(format!("{} AS ({sql})", part.name));
        if part.name == "m" {
            results.push("SELECT 'm' AS part, environment, network_transaction_id FROM m".to_owned());
        } else if part.expect.is_some() {
            results.push(format!(
                "SELECT '{0}' AS part, CAST(NULL AS TEXT) AS environment, CAST(COUNT(*) AS TEXT) AS network_transaction_id FROM {0}",
                part.name
            ));
        }
    }
    if results.is_empty() {
        results.push(
            "SELECT 'none' AS part, CAST(NULL AS TEXT) AS environment, CAST(NULL AS TEXT) AS network_transaction_id"
                .into(),
        );
    }
    let sql = format!("WITH {} {}", ctes.join(", "), results.join(" UNION ALL "));
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for p in params {
        q = q.bind(p);
    }
    let rows = exec.fetch_all(q).await?;
    let mut inserted = Vec::new();
    for row in &rows {
        let part: String = row.try_get("part")?;
        let value: Option<String> = row.try_get("network_transaction_id")?;
        match all.iter().find(|p| p.name == part) {
            Some(p) if p.name == "m" => {
                inserted.push((row.try_get::<String, _>("environment")?, value.unwrap_or_default()))
            }
            Some(p) => check_touched(p, value.and_then(|v| v.parse().ok()).unwrap_or(0))?,
            None => {}
        }
    }
    Ok(taken(&w.messages, &inserted))
}

async fn write_one_by_one(exec: &mut Exec<'_>, w: &BatchWrites<'_>) -> Result<Vec<(Environment, String)>, StoreError> {
    if let Some(m) = messages_part(exec.backend, &w.messages) {
        let rows = exec
            .fetch_all(sqlx::query(AssertSqlSafe(m.statement())).bind(m.param))
            .await?;
        let inserted = rows
            .iter()
            .map(|r| Ok((r.try_get("environment")?, r.try_get("network_transaction_id")?)))
            .collect::<Result<Vec<(String, String)>, StoreError>>()?;
        let conflicts = taken(&w.messages, &inserted);
        if !conflicts.is_empty() {
            return Ok(conflicts);
        }
    }
    for part in parts(exec.backend, w) {
        let done = exec
            .execute(sqlx::query(AssertSqlSafe(part.statement())).bind(part.param.clone()))
            .await?;
        check_touched(&part, done)?;
    }
    write_events(exec, w.events).await?;
    Ok(Vec::new())
}

fn check_touched(part: &Part, touched: u64) -> Result<(), StoreError> {
    match part.expect {
        Some(n) if n as u64 != touched => Err(StoreError::corrupt(format!(
            "a batch expected to change {n} rows in {}, changed {touched}",
            part.name
        ))),
        _ => Ok(()),
    }
}

/// The messages whose key was not inserted: another batch holds it.
fn taken(messages: &[RecordedMessage<'_>], inserted: &[(String, String)]) -> Vec<(Environment, String)> {
    messages
        .iter()
        .filter(|m| {
            !inserted
                .iter()
                .any(|(e, n)| e == m.environment.as_str() && n == m.network_transaction_id)
        })
        .map(|m| (m.environment, m.network_transaction_id.to_owned()))
        .collect()
}

static MESSAGES: RecordSet = RecordSet {
    columns: &[
        ("environment", Col::Text),
        ("ntid", Col::Text),
        ("kind", Col::Text),
        ("response", Col::Text),
        ("created_at", Col::Int),
        ("transaction_id", Col::Text),
    ],
};

/// Records every answer, in key order (so concurrent batches wait for each other's keys in one
/// order), returning the keys it inserted: a key another batch holds is not among them.
fn messages_part(backend: Backend, messages: &[RecordedMessage<'_>]) -> Option<Part> {
    if messages.is_empty() {
        return None;
    }
    let mut rows = MESSAGES.rows();
    for m in messages {
        rows.row(&[
            V::Text(m.environment.as_str()),
            V::Text(m.network_transaction_id),
            V::Text(m.kind),
            V::Text(m.response),
            V::Int(m.created_at.as_micros()),
            V::OptText(m.transaction_id),
        ]);
    }
    Some(Part {
        name: "m",
        sql: format!(
            "INSERT INTO network_messages (environment, network_transaction_id, kind, response, created_at, transaction_id) \
             SELECT x.environment, x.ntid, x.kind, x.response, x.created_at, x.transaction_id FROM {src} WHERE 1 = 1 \
             ORDER BY x.environment, x.ntid ON CONFLICT DO NOTHING RETURNING environment, network_transaction_id",
            src = MESSAGES.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
        expect: None,
    })
}

static TRANSACTIONS: RecordSet = RecordSet {
    columns: &[
        ("id", Col::Text),
        ("tenant_id", Col::Text),
        ("environment", Col::Text),
        ("card_id", Col::Text),
        ("cardholder_id", Col::Text),
        ("program_id", Col::Text),
        ("account_id", Col::Text),
        ("kind", Col::Text),
        ("state", Col::Text),
        ("network_transaction_id", Col::Text),
        ("currency", Col::Text),
        ("requested_amount", Col::Int),
        ("authorized_amount", Col::Int),
        ("held_amount", Col::Int),
        ("cleared_amount", Col::Int),
        ("reversed_amount", Col::Int),
        ("response_code", Col::Text),
        ("decline_reason", Col::Text),
        ("authorization_code", Col::Text),
        ("merchant_id", Col::Text),
        ("merchant_name", Col::Text),
        ("mcc", Col::Text),
        ("merchant_country", Col::Text),
        ("merchant_city", Col::Text),
        ("entry_mode", Col::Text),
        ("stand_in", Col::Int),
        ("decision_trace", Col::Text),
        ("received_at", Col::Int),
        ("custodian_sent_at", Col::Int),
        ("custodian_answered_at", Col::Int),
        ("answered_at", Col::Int),
        ("expires_at", Col::Int),
        ("created_at", Col::Int),
        ("updated_at", Col::Int),
    ],
};

/// `INSERT INTO table (columns) SELECT x.columns FROM <rows>`: rows named like the table's columns.
fn insert_all(backend: Backend, table: &str, set: &RecordSet) -> String {
    let names: Vec<&str> = set.columns.iter().map(|(n, _)| *n).collect();
    let selected: Vec<String> = names.iter().map(|n| format!("x.{n}")).collect();
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {}",
        names.join(", "),
        selected.join(", "),
        set.source(backend, "{P}", "x")
    )
}

fn transactions_part(backend: Backend, created: &[&Transaction]) -> Option<Part> {
    if created.is_empty() {
        return None;
    }
    let mut rows = TRANSACTIONS.rows();
    for t in created {
        let trace = t.decision_trace.to_string();
        rows.row(&[
            V::Text(t.id.as_str()),
            V::Text(t.tenant_id.as_str()),
            V::Text(t.environment.as_str()),
            V::Text(t.card_id.as_str()),
            V::Text(t.cardholder_id.as_str()),
            V::Text(t.program_id.as_str()),
            V::Text(t.account_id.as_str()),
            V::Text(t.kind.as_str()),
            V::Text(t.state.as_str()),
            V::Text(&t.network_transaction_id),
            V::Text(t.currency.code()),
            V::Int(t.requested_amount),
            V::Int(t.authorized_amount),
            V::Int(t.held_amount),
            V::Int(t.cleared_amount),
            V::Int(t.reversed_amount),
            V::Text(t.response_code.as_str()),
            V::OptText(t.decline_reason.map(|r| r.as_str())),
            V::OptText(t.authorization_code.as_deref()),
            V::Text(&t.merchant.id),
            V::Text(&t.merchant.name),
            V::Text(&t.merchant.mcc),
            V::Text(&t.merchant.country),
            V::Text(&t.merchant.city),
            V::Text(&t.entry_mode),
            V::Int(i64::from(t.stand_in)),
            V::Text(&trace),
            V::Int(t.received_at.as_micros()),
            V::OptInt(t.custodian_sent_at.map(Timestamp::as_micros)),
            V::OptInt(t.custodian_answered_at.map(Timestamp::as_micros)),
            V::Int(t.answered_at.as_micros()),
            V::OptInt(t.expires_at.map(Timestamp::as_micros)),
            V::Int(t.created_at.as_micros()),
            V::Int(t.updated_at.as_micros()),
        ]);
    }
    Some(Part {
        name: "t",
        sql: insert_all(backend, "transactions", &TRANSACTIONS),
        param: rows.finish(),
        expect: None,
    })
}

static TRANSACTION_CHANGES: RecordSet = RecordSet {
    columns: &[
        ("id", Col::Text),
        ("state", Col::Text),
        ("requested_amount", Col::Int),
        ("authorized_amount", Col::Int),
        ("held_amount", Col::Int),
        ("cleared_amount", Col::Int),
        ("reversed_amount", Col::Int),
        ("updated_at", Col::Int),
    ],
};

fn transaction_changes_part(backend: Backend, updated: &[&Transaction]) -> Option<Part> {
    if updated.is_empty() {
        return None;
    }
    let mut rows = TRANSACTION_CHANGES.rows();
    for t in updated {
        rows.row(&[
            V::Text(t.id.as_str()),
            V::Text(t.state.as_str()),
            V::Int(t.requested_amount),
            V::Int(t.authorized_amount),
            V::Int(t.held_amount),
            V::Int(t.cleared_amount),
            V::Int(t.reversed_amount),
            V::Int(t.updated_at.as_micros()),
        ]);
    }
    Some(Part {
        name: "u",
        sql: format!(
            "UPDATE transactions SET state = x.state, requested_amount = x.requested_amount, \
             authorized_amount = x.authorized_amount, held_amount = x.held_amount, cleared_amount = x.cleared_amount, \
             reversed_amount = x.reversed_amount, updated_at = x.updated_at FROM {src} WHERE transactions.id = x.id \
             RETURNING 1",
            src = TRANSACTION_CHANGES.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
        expect: Some(updated.len()),
    })
}

static ACCOUNT_CHANGES: RecordSet = RecordSet {
    columns: &[("id", Col::Text), ("balance", Col::Int), ("held", Col::Int)],
};

/// Moves balances and holds by the batch's net change per account. The accounts are locked and
/// the changes were decided against their exact values; the table's CHECKs stand behind that.
fn accounts_part(backend: Backend, changes: &[(AccountId, i64, i64)]) -> Option<Part> {
    if changes.is_empty() {
        return None;
    }
    let mut rows = ACCOUNT_CHANGES.rows();
    for (id, balance, held) in changes {
        rows.row(&[V::Text(id.as_str()), V::Int(*balance), V::Int(*held)]);
    }
    Some(Part {
        name: "a",
        sql: format!(
            "UPDATE accounts SET balance = accounts.balance + x.balance, held = accounts.held + x.held \
             FROM {src} WHERE accounts.id = x.id RETURNING 1",
            src = ACCOUNT_CHANGES.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
        expect: Some(changes.len()),
    })
}

static JOURNALS: RecordSet = RecordSet {
    columns: &[
        ("id", Col::Text),
        ("tenant_id", Col::Text),
        ("environment", Col::Text),
        ("kind", Col::Text),
        ("description", Col::Text),
        ("created_at", Col::Int),
    ],
};

static ENTRIES: RecordSet = RecordSet {
    columns: &[
        ("id", Col::Text),
        ("journal_id", Col::Text),
        ("tenant_id", Col::Text),
        ("environment", Col::Text),
        ("account_id", Col::Text),
        ("direction", Col::Text),
        ("amount", Col::Int),
        ("currency", Col::Text),
        ("balance_after", Col::Int),
        ("created_at", Col::Int),
    ],
};

/// Journals and their immutable entries, each with the balance it left.
fn postings_parts(backend: Backend, postings: &[Posting]) -> Vec<Part> {
    if postings.is_empty() {
        return Vec::new();
    }
    let mut journals = JOURNALS.rows();
    let mut entries = ENTRIES.rows();
    for p in postings {
        let j = &p.journal;
        j.assert_balanced();
        journals.row(&[
            V::Text(j.id.as_str()),
            V::Text(j.tenant_id.as_str()),
            V::Text(j.environment.as_str()),
            V::Text(j.kind.as_str()),
            V::Text(&j.description),
            V::Int(j.created_at.as_micros()),
        ]);
        for (e, balance_after) in j.entries.iter().zip(&p.balances_after) {
            entries.row(&[
                V::Text(e.id.as_str()),
                V::Text(j.id.as_str()),
                V::Text(j.tenant_id.as_str()),
                V::Text(j.environment.as_str()),
                V::Text(e.account_id.as_str()),
                V::Text(e.direction.as_str()),
                V::Int(e.amount.minor()),
                V::Text(e.amount.currency().code()),
                V::Int(*balance_after),
                V::Int(j.created_at.as_micros()),
            ]);
        }
    }
    vec![
        Part {
            name: "j",
            sql: insert_all(backend, "journals", &JOURNALS),
            param: journals.finish(),
            expect: None,
        },
        Part {
            name: "le",
            sql: insert_all(backend, "ledger_entries", &ENTRIES),
            param: entries.finish(),
            expect: None,
        },
    ]
}

static EVENTS: RecordSet = RecordSet {
    columns: &[
        ("ord", Col::Int),
        ("id", Col::Text),
        ("tenant_id", Col::Text),
        ("environment", Col::Text),
        ("type", Col::Text),
        ("object_id", Col::Text),
        ("data", Col::Text),
        ("created_at", Col::Int),
        ("sequence", Col::Int),
    ],
};

/// What scheduling deliveries needs of an event.
static EVENT_KEYS: RecordSet = RecordSet {
    columns: &[
        ("id", Col::Text),
        ("tenant_id", Col::Text),
        ("environment", Col::Text),
        ("type", Col::Text),
        ("created_at", Col::Int),
    ],
};

static SEQUENCE_CLAIMS: RecordSet = RecordSet {
    columns: &[("tenant_id", Col::Text), ("environment", Col::Text), ("n", Col::Int)],
};

/// Appends events in order. PostgreSQL numbers them from one sequence (no lock held to commit:
/// gaps between a tenant's numbers, order kept) and returns what deliveries need; SQLite takes
/// the numbers given (`claim_sequences`).
fn events_part(backend: Backend, events: &[Event], sequences: Option<&[i64]>) -> Option<Part> {
    if events.is_empty() {
        return None;
    }
    let mut rows = EVENTS.rows();
    for (i, e) in events.iter().enumerate() {
        let data = e.data.to_string();
        rows.row(&[
            V::Int(i64::try_from(i).unwrap_or(i64::MAX)),
            V::Text(e.id.as_str()),
            V::Text(e.tenant_id.as_str()),
            V::Text(e.environment.as_str()),
            V::Text(e.event_type.as_str()),
            V::Text(&e.object_id),
            V::Text(&data),
            V::Int(e.created_at.as_micros()),
            V::OptInt(sequences.and_then(|s| s.get(i).copied())),
        ]);
    }
    let (sequence, returning) = match backend {
        Backend::Postgres => (
            "nextval('event_sequence')",
            " RETURNING id, tenant_id, environment, type, created_at",
        ),
        Backend::Sqlite => ("y.sequence", ""),
    };
    Some(Part {
        name: "ev",
        sql: format!(
            "INSERT INTO events (id, tenant_id, environment, type, object_id, data, created_at, sequence) \
             SELECT y.id, y.tenant_id, y.environment, y.type, y.object_id, y.data, y.created_at, {sequence} \
             FROM (SELECT * FROM {src} ORDER BY x.ord) AS y{returning}",
            src = EVENTS.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
        expect: None,
    })
}

/// Schedules each event's deliveries (the outbox): one per enabled endpoint of its tenant and
/// environment that takes its type. `events` is a row source with id, tenant_id, environment,
/// type and created_at.
fn deliveries_sql(events: &str) -> String {
    format!(
        "INSERT INTO webhook_deliveries (id, tenant_id, environment, endpoint_id, event_id, state, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT e.id || ':' || x.id, x.tenant_id, x.environment, e.id, x.id, 'pending', 0, x.created_at, x.created_at, \
         x.created_at FROM {events} JOIN webhook_endpoints e ON e.tenant_id = x.tenant_id AND e.environment = x.environment \
         WHERE e.enabled = 1 AND (e.all_events = 1 OR EXISTS (SELECT 1 FROM webhook_endpoint_events s \
              WHERE s.endpoint_id = e.id AND s.event_type = x.type))"
    )
}

/// Appends events with their sequence numbers and schedules their webhook deliveries in the
/// caller's transaction, so no event commits without its deliveries (every event insert in the
/// store goes through here).
pub(crate) async fn write_events(exec: &mut Exec<'_>, events: &[Event]) -> Result<(), StoreError> {
    match exec.backend {
        Backend::Postgres => {
            let Some(part) = events_part(exec.backend, events, None) else {
                return Ok(());
            };
            let sql = format!("WITH ev AS ({}) {}", part.statement(), deliveries_sql("ev x"));
            exec.execute(sqlx::query(AssertSqlSafe(sql)).bind(part.param)).await?;
        }
        Backend::Sqlite => {
            if events.is_empty() {
                return Ok(());
            }
            let sequences = claim_sequences(exec, events).await?;
            if let Some(part) = events_part(exec.backend, events, Some(&sequences)) {
                exec.execute(sqlx::query(AssertSqlSafe(part.statement())).bind(part.param))
                    .await?;
            }
            let mut keys = EVENT_KEYS.rows();
            for e in events {
                keys.row(&[
                    V::Text(e.id.as_str()),
                    V::Text(e.tenant_id.as_str()),
                    V::Text(e.environment.as_str()),
                    V::Text(e.event_type.as_str()),
                    V::Int(e.created_at.as_micros()),
                ]);
            }
            let sql = deliveries_sql(&EVENT_KEYS.source(exec.backend, "$1", "x"));
            exec.execute(sqlx::query(AssertSqlSafe(sql)).bind(keys.finish()))
                .await?;
        }
    }
    Ok(())
}

/// SQLite: takes the next numbers of each tenant's counter, one statement for all tenants.
async fn claim_sequences(exec: &mut Exec<'_>, events: &[Event]) -> Result<Vec<i64>, StoreError> {
    let mut counts: Vec<((&str, &str), i64)> = Vec::new();
    for e in events {
        let key = (e.tenant_id.as_str(), e.environment.as_str());
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    let mut rows = SEQUENCE_CLAIMS.rows();
    for ((tenant, env), n) in &counts {
        rows.row(&[V::Text(tenant), V::Text(env), V::Int(*n)]);
    }
    let sql = format!(
        "INSERT INTO event_sequences (tenant_id, environment, last_value) \
         SELECT x.tenant_id, x.environment, x.n FROM {src} WHERE 1 = 1 \
         ON CONFLICT (tenant_id, environment) DO UPDATE SET last_value = event_sequences.last_value + excluded.last_value \
         RETURNING tenant_id, environment, last_value",
        src = SEQUENCE_CLAIMS.source(exec.backend, "$1", "x"),
    );
    let claimed = exec
        .fetch_all(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
        .await?;
    // The first number of the block each tenant just claimed.
    let mut next: Vec<((String, String), i64)> = Vec::new();
    for row in &claimed {
        let key: (String, String) = (row.try_get("tenant_id")?, row.try_get("environment")?);
        let last: i64 = row.try_get("last_value")?;
        let n = counts
            .iter()
            .find(|(k, _)| k.0 == key.0 && k.1 == key.1)
            .map_or(0, |(_, n)| *n);
        next.push((key, last - n + 1));
    }
    events
        .iter()
        .map(|e| {
            let slot = next
                .iter_mut()
                .find(|(k, _)| k.0 == e.tenant_id.as_str() && k.1 == e.environment.as_str())
                .ok_or_else(|| StoreError::corrupt("no event sequence claimed for a tenant"))?;
            let n = slot.1;
            slot.1 += 1;
            Ok(n)
        })
        .collect()
}
