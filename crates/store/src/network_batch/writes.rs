//! What a batch writes: a handful of multi-row statements, whatever the batch size.

use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::authorization::Transaction;
use cardplane_domain::event::Event;
use cardplane_domain::ids::AccountId;
use cardplane_domain::network::Posting;
use sqlx::{AssertSqlSafe, Row};

use super::recordset::{Col, RecordSet, V};
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
}

impl NetworkBatch {
    /// Writes a batch's outcome. Returns the messages that another batch answered first (it
    /// committed while this one ran): if there are any, nothing else was written and the batch
    /// must be rolled back and redone with those messages as repeats.
    pub async fn write(&mut self, w: &BatchWrites<'_>) -> Result<Vec<(Environment, String)>, StoreError> {
        let mut exec = self.exec();
        let conflicts = record_messages(&mut exec, &w.messages).await?;
        if !conflicts.is_empty() {
            return Ok(conflicts);
        }
        insert_transactions(&mut exec, &w.created).await?;
        update_transactions(&mut exec, &w.updated).await?;
        update_accounts(&mut exec, &w.accounts).await?;
        insert_postings(&mut exec, w.postings).await?;
        write_events(&mut exec, w.events).await?;
        Ok(Vec::new())
    }
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
/// order); returns the keys already taken.
async fn record_messages(
    exec: &mut Exec<'_>,
    messages: &[RecordedMessage<'_>],
) -> Result<Vec<(Environment, String)>, StoreError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut sorted: Vec<&RecordedMessage<'_>> = messages.iter().collect();
    sorted.sort_by(|a, b| {
        (a.environment.as_str(), a.network_transaction_id).cmp(&(b.environment.as_str(), b.network_transaction_id))
    });
    let mut rows = MESSAGES.rows();
    for m in &sorted {
        rows.row(&[
            V::Text(m.environment.as_str()),
            V::Text(m.network_transaction_id),
            V::Text(m.kind),
            V::Text(m.response),
            V::Int(m.created_at.as_micros()),
            V::OptText(m.transaction_id),
        ]);
    }
    let sql = format!(
        "INSERT INTO network_messages (environment, network_transaction_id, kind, response, created_at, transaction_id) \
         SELECT x.environment, x.ntid, x.kind, x.response, x.created_at, x.transaction_id FROM {src} WHERE 1 = 1 \
         ORDER BY x.environment, x.ntid ON CONFLICT DO NOTHING RETURNING environment, network_transaction_id",
        src = MESSAGES.source(exec.backend, 1, "x"),
    );
    let inserted = exec
        .fetch_all(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
        .await?;
    if inserted.len() == messages.len() {
        return Ok(Vec::new());
    }
    let mut taken: Vec<(Environment, String)> = sorted
        .iter()
        .map(|m| (m.environment, m.network_transaction_id.to_owned()))
        .collect();
    for row in &inserted {
        let env: String = row.try_get("environment")?;
        let ntid: String = row.try_get("network_transaction_id")?;
        taken.retain(|(e, n)| !(e.as_str() == env && *n == ntid));
    }
    Ok(taken)
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

fn column_list(set: &RecordSet, alias: &str) -> (String, String) {
    let names: Vec<&str> = set.columns.iter().map(|(n, _)| *n).collect();
    let selected: Vec<String> = names.iter().map(|n| format!("{alias}.{n}")).collect();
    (names.join(", "), selected.join(", "))
}

async fn insert_transactions(exec: &mut Exec<'_>, created: &[&Transaction]) -> Result<(), StoreError> {
    if created.is_empty() {
        return Ok(());
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
    let (names, selected) = column_list(&TRANSACTIONS, "x");
    let sql = format!(
        "INSERT INTO transactions ({names}) SELECT {selected} FROM {src}",
        src = TRANSACTIONS.source(exec.backend, 1, "x"),
    );
    exec.execute(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
        .await?;
    Ok(())
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

async fn update_transactions(exec: &mut Exec<'_>, updated: &[&Transaction]) -> Result<(), StoreError> {
    if updated.is_empty() {
        return Ok(());
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
    let sql = format!(
        "UPDATE transactions SET state = x.state, requested_amount = x.requested_amount, \
         authorized_amount = x.authorized_amount, held_amount = x.held_amount, cleared_amount = x.cleared_amount, \
         reversed_amount = x.reversed_amount, updated_at = x.updated_at FROM {src} WHERE transactions.id = x.id",
        src = TRANSACTION_CHANGES.source(exec.backend, 1, "x"),
    );
    let done = exec
        .execute(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
        .await?;
    if done != updated.len() as u64 {
        return Err(StoreError::corrupt("a transaction changed by a batch is missing"));
    }
    Ok(())
}

static ACCOUNT_CHANGES: RecordSet = RecordSet {
    columns: &[("id", Col::Text), ("balance", Col::Int), ("held", Col::Int)],
};

/// Moves balances and holds by the batch's net change per account. The accounts are locked and
/// the changes were decided against their exact values; the table's CHECKs stand behind that.
async fn update_accounts(exec: &mut Exec<'_>, changes: &[(AccountId, i64, i64)]) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut rows = ACCOUNT_CHANGES.rows();
    for (id, balance, held) in changes {
        rows.row(&[V::Text(id.as_str()), V::Int(*balance), V::Int(*held)]);
    }
    let sql = format!(
        "UPDATE accounts SET balance = accounts.balance + x.balance, held = accounts.held + x.held \
         FROM {src} WHERE accounts.id = x.id",
        src = ACCOUNT_CHANGES.source(exec.backend, 1, "x"),
    );
    let done = exec
        .execute(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
        .await?;
    if done != changes.len() as u64 {
        return Err(StoreError::corrupt("an account changed by a batch is missing"));
    }
    Ok(())
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
async fn insert_postings(exec: &mut Exec<'_>, postings: &[Posting]) -> Result<(), StoreError> {
    if postings.is_empty() {
        return Ok(());
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
    for (set, rows, table) in [(&JOURNALS, journals, "journals"), (&ENTRIES, entries, "ledger_entries")] {
        let (names, selected) = column_list(set, "x");
        let sql = format!(
            "INSERT INTO {table} ({names}) SELECT {selected} FROM {src}",
            src = set.source(exec.backend, 1, "x"),
        );
        exec.execute(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
            .await?;
    }
    Ok(())
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

static SEQUENCE_CLAIMS: RecordSet = RecordSet {
    columns: &[("tenant_id", Col::Text), ("environment", Col::Text), ("n", Col::Int)],
};

/// Appends events, each with the next sequence number of its tenant and environment (so
/// receivers can order them), and schedules their webhook deliveries (the outbox) in the same
/// transaction, so no event commits without its deliveries. PostgreSQL draws numbers from one
/// sequence (no lock held to commit: gaps between a tenant's numbers, order kept); SQLite's single
/// writer already serialises every transaction, so a per-tenant counter costs it nothing.
pub(crate) async fn write_events(exec: &mut Exec<'_>, events: &[Event]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let sequences = match exec.backend {
        Backend::Postgres => vec![None; events.len()],
        Backend::Sqlite => claim_sequences(exec, events).await?,
    };
    let mut rows = EVENTS.rows();
    for (i, (e, sequence)) in events.iter().zip(&sequences).enumerate() {
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
            V::OptInt(*sequence),
        ]);
    }
    let rows = rows.finish();
    let sequence = match exec.backend {
        Backend::Postgres => "nextval('event_sequence')",
        Backend::Sqlite => "y.sequence",
    };
    let sql = format!(
        "INSERT INTO events (id, tenant_id, environment, type, object_id, data, created_at, sequence) \
         SELECT y.id, y.tenant_id, y.environment, y.type, y.object_id, y.data, y.created_at, {sequence} \
         FROM (SELECT * FROM {src} ORDER BY x.ord) AS y",
        src = EVENTS.source(exec.backend, 1, "x"),
    );
    exec.execute(sqlx::query(AssertSqlSafe(sql)).bind(rows.clone())).await?;
    let sql = format!(
        "INSERT INTO webhook_deliveries (id, tenant_id, environment, endpoint_id, event_id, state, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT e.id || ':' || x.id, x.tenant_id, x.environment, e.id, x.id, 'pending', 0, x.created_at, x.created_at, \
         x.created_at FROM {src} JOIN webhook_endpoints e ON e.tenant_id = x.tenant_id AND e.environment = x.environment \
         WHERE e.enabled = 1 AND (e.all_events = 1 OR EXISTS (SELECT 1 FROM webhook_endpoint_events s \
              WHERE s.endpoint_id = e.id AND s.event_type = x.type))",
        src = EVENTS.source(exec.backend, 1, "x"),
    );
    exec.execute(sqlx::query(AssertSqlSafe(sql)).bind(rows)).await?;
    Ok(())
}

/// SQLite: takes the next numbers of each tenant's counter, one statement for all tenants.
async fn claim_sequences(exec: &mut Exec<'_>, events: &[Event]) -> Result<Vec<Option<i64>>, StoreError> {
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
        src = SEQUENCE_CLAIMS.source(exec.backend, 1, "x"),
    );
    let claimed = exec
        .fetch_all(sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()))
        .await?;
    // Next number per tenant: the first of the block just claimed.
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
            Ok(Some(n))
        })
        .collect()
}
