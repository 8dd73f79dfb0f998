//! What fraud screening reads and writes in a batch: a program's authorization rules (only when
//! their stamp moved), the velocity counters and risk profiles of the batch's cards, and back the
//! counters' changes, the profiles and the alerts raised.

use cardplane_domain::alert::Alert;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::ids::{AuthorizationRuleId, CardId, ProgramId, TenantId};
use cardplane_domain::rules::VersionState;
use cardplane_domain::rules::risk::RiskProfile;
use cardplane_domain::rules::velocity::CounterRow;
use cardplane_domain::{Environment, Timestamp};
use sqlx::{AssertSqlSafe, Row};

use super::NetworkBatch;
use super::recordset::{Col, RecordSet, V, text_array, text_list};
use crate::{Backend, StoreError};

/// A rule version as stored (its definition is parsed by the engine).
#[derive(Debug, Clone)]
pub struct StoredRuleVersion {
    pub rule_id: AuthorizationRuleId,
    pub scope: ControlScopeKind,
    pub scope_id: String,
    pub version: i64,
    pub state: VersionState,
    pub definition: String,
}

static COUNTER_KEYS: RecordSet = RecordSet {
    columns: &[("counter", Col::Text), ("scope_id", Col::Text)],
};

impl NetworkBatch {
    /// The active and draft versions of every rule that can apply to a card of `program`: the
    /// program's own, and the tenant's cardholder and card rules.
    pub async fn program_rules(
        &mut self,
        tenant: &TenantId,
        environment: Environment,
        program: &ProgramId,
    ) -> Result<Vec<StoredRuleVersion>, StoreError> {
        let q = sqlx::query(
            "SELECT r.id, r.scope_kind, r.scope_id, v.version, v.state, v.definition \
             FROM authorization_rules r JOIN authorization_rule_versions v ON v.rule_id = r.id \
             AND (v.version = r.active_version OR v.version = r.draft_version) \
             WHERE r.tenant_id = $1 AND r.environment = $2 \
             AND (r.scope_kind <> 'program' OR r.scope_id = $3) ORDER BY r.id, v.version",
        )
        .bind(tenant.as_str())
        .bind(environment.as_str())
        .bind(program.as_str());
        let rows = self.exec().fetch_all(q).await?;
        rows.iter()
            .map(|row| {
                let bad = |what: &str| StoreError::corrupt(format!("stored rule {what}"));
                Ok(StoredRuleVersion {
                    rule_id: AuthorizationRuleId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
                    scope: ControlScopeKind::parse(&row.try_get::<String, _>("scope_kind")?)
                        .ok_or_else(|| bad("scope"))?,
                    scope_id: row.try_get("scope_id")?,
                    version: row.try_get("version")?,
                    state: VersionState::parse(&row.try_get::<String, _>("state")?).ok_or_else(|| bad("state"))?,
                    definition: row.try_get("definition")?,
                })
            })
            .collect()
    }

    /// The buckets from `first_bucket` on of these (counter, scope) pairs.
    pub async fn velocity_counters(
        &mut self,
        keys: &[(&str, &str)],
        first_bucket: i64,
    ) -> Result<Vec<CounterRow>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = COUNTER_KEYS.rows();
        for (counter, scope) in keys {
            rows.row(&[V::Text(counter), V::Text(scope)]);
        }
        let sql = format!(
            "SELECT c.counter, c.scope_id, c.bucket, c.amount, c.count FROM {} ",
            each_counter(self.backend, &COUNTER_KEYS.source(self.backend, "$1", "k")),
        );
        let q = sqlx::query(AssertSqlSafe(sql)).bind(rows.finish()).bind(first_bucket);
        let found = self.exec().fetch_all(q).await?;
        found
            .iter()
            .map(|row| {
                Ok(CounterRow {
                    counter: row.try_get("counter")?,
                    scope_id: row.try_get("scope_id")?,
                    bucket: row.try_get("bucket")?,
                    amount: row.try_get("amount")?,
                    count: row.try_get("count")?,
                })
            })
            .collect()
    }

    /// The risk profiles of these cards (a card never seen has none).
    pub async fn risk_profiles(&mut self, cards: &[&str]) -> Result<Vec<(CardId, RiskProfile)>, StoreError> {
        if cards.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT p.card_id, p.profile FROM {list} JOIN card_risk_profiles p ON p.card_id = l.value",
            list = text_list(self.backend, 1, "l"),
        );
        let q = sqlx::query(AssertSqlSafe(sql)).bind(text_array(cards.iter().copied()));
        let rows = self.exec().fetch_all(q).await?;
        rows.iter()
            .map(|row| {
                let card = CardId::parse(&row.try_get::<String, _>("card_id")?).map_err(StoreError::other)?;
                let profile = serde_json::from_str(&row.try_get::<String, _>("profile")?)
                    .map_err(|_| StoreError::corrupt("stored risk profile"))?;
                Ok((card, profile))
            })
            .collect()
    }
}

fn each_counter(backend: Backend, keys: &str) -> String {
    let on = "c.counter = k.counter AND c.scope_id = k.scope_id AND c.bucket >= $2";
    match backend {
        Backend::Postgres => format!(
            "{keys} CROSS JOIN LATERAL (SELECT counter, scope_id, bucket, amount, count FROM velocity_counters c \
             WHERE {on} OFFSET 0) c"
        ),
        Backend::Sqlite => format!("{keys} JOIN velocity_counters c ON {on}"),
    }
}

/// One write of a batch (see `writes::Part`): SQL with `{P}` for its JSON parameter.
pub(super) struct ScreeningPart {
    pub name: &'static str,
    pub sql: String,
    pub param: String,
}

static COUNTER_DELTAS: RecordSet = RecordSet {
    columns: &[
        ("counter", Col::Text),
        ("scope_id", Col::Text),
        ("bucket", Col::Int),
        ("amount", Col::Int),
        ("count", Col::Int),
    ],
};

/// Adds the batch's counter changes to the stored buckets (in key order).
pub(super) fn counters_part(backend: Backend, deltas: &[CounterRow]) -> Option<ScreeningPart> {
    if deltas.is_empty() {
        return None;
    }
    let mut rows = COUNTER_DELTAS.rows();
    for d in deltas {
        rows.row(&[
            V::Text(&d.counter),
            V::Text(&d.scope_id),
            V::Int(d.bucket),
            V::Int(d.amount),
            V::Int(d.count),
        ]);
    }
    Some(ScreeningPart {
        name: "vc",
        sql: format!(
            "INSERT INTO velocity_counters (counter, scope_id, bucket, amount, count) \
             SELECT x.counter, x.scope_id, x.bucket, x.amount, x.count FROM {src} WHERE 1 = 1 \
             ORDER BY x.counter, x.scope_id, x.bucket \
             ON CONFLICT (counter, scope_id, bucket) DO UPDATE SET amount = velocity_counters.amount + excluded.amount, \
             count = velocity_counters.count + excluded.count",
            src = COUNTER_DELTAS.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
    })
}

static PROFILES: RecordSet = RecordSet {
    columns: &[("card_id", Col::Text), ("profile", Col::Text), ("updated_at", Col::Int)],
};

pub(super) fn profiles_part(
    backend: Backend,
    profiles: &[(&CardId, &RiskProfile)],
    now: Timestamp,
) -> Option<ScreeningPart> {
    if profiles.is_empty() {
        return None;
    }
    let mut rows = PROFILES.rows();
    let mut sorted: Vec<&(&CardId, &RiskProfile)> = profiles.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (card, profile) in sorted {
        let text = serde_json::to_string(profile).unwrap_or_default();
        rows.row(&[V::Text(card.as_str()), V::Text(&text), V::Int(now.as_micros())]);
    }
    Some(ScreeningPart {
        name: "rp",
        sql: format!(
            "INSERT INTO card_risk_profiles (card_id, profile, updated_at) \
             SELECT x.card_id, x.profile, x.updated_at FROM {src} WHERE 1 = 1 \
             ON CONFLICT (card_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
            src = PROFILES.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
    })
}

static ALERTS: RecordSet = RecordSet {
    columns: &[
        ("id", Col::Text),
        ("tenant_id", Col::Text),
        ("environment", Col::Text),
        ("kind", Col::Text),
        ("card_id", Col::Text),
        ("cardholder_id", Col::Text),
        ("program_id", Col::Text),
        ("transaction_id", Col::Text),
        ("rule_id", Col::Text),
        ("rule_version", Col::Int),
        ("risk_score", Col::Int),
        ("detail", Col::Text),
        ("created_at", Col::Int),
    ],
};

pub(super) fn alerts_part(backend: Backend, alerts: &[Alert]) -> Option<ScreeningPart> {
    if alerts.is_empty() {
        return None;
    }
    let mut rows = ALERTS.rows();
    for a in alerts {
        rows.row(&[
            V::Text(a.id.as_str()),
            V::Text(a.tenant_id.as_str()),
            V::Text(a.environment.as_str()),
            V::Text(a.kind.as_str()),
            V::Text(a.card_id.as_str()),
            V::Text(a.cardholder_id.as_str()),
            V::Text(a.program_id.as_str()),
            V::Text(a.transaction_id.as_str()),
            V::OptText(a.rule_id.as_ref().map(AuthorizationRuleId::as_str)),
            V::OptInt(a.rule_version),
            V::Int(a.risk_score),
            V::Text(&a.detail),
            V::Int(a.created_at.as_micros()),
        ]);
    }
    Some(ScreeningPart {
        name: "al",
        sql: format!(
            "INSERT INTO alerts (id, tenant_id, environment, kind, status, card_id, cardholder_id, program_id, \
             transaction_id, rule_id, rule_version, risk_score, detail, card_frozen, created_at, updated_at, version) \
             SELECT x.id, x.tenant_id, x.environment, x.kind, 'open', x.card_id, x.cardholder_id, x.program_id, \
             x.transaction_id, x.rule_id, x.rule_version, x.risk_score, x.detail, 0, x.created_at, x.created_at, 1 \
             FROM {src} WHERE 1 = 1",
            src = ALERTS.source(backend, "{P}", "x"),
        ),
        param: rows.finish(),
    })
}
