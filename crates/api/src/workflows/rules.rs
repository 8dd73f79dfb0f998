//! Changing authorization rules: `/authorization_rules` (an API key, in its own scope) and the
//! console's rule pages (a person, in the rule's tenant) both go through `change`, so the rules
//! of promotion and disabling and the audit entry written with the change are the same.

use cardplane_domain::ids::AuthorizationRuleId;
use cardplane_domain::people::Action;
use cardplane_engine::rules::{Change, Committed, Recorder, RuleError};
use cardplane_store::rules::RuleWithVersions;
use cardplane_store::{EffectRecords, Scope};

use crate::http::error::{ApiError, ApiResult};
use crate::http::people::Staff;
use crate::state::AppState;

/// The answer to every rule failure.
pub fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::NotFound => ApiError::not_found("authorization_rule"),
        RuleError::Invalid(f) => f.into(),
        RuleError::NoDraft | RuleError::NotTheDraft(_) | RuleError::AlreadyDisabled | RuleError::Busy => {
            ApiError::conflict(e.code(), e.to_string())
        }
        RuleError::BadWindow => ApiError::invalid(e.code(), e.to_string()).with_param("end"),
        RuleError::Store(s) => s.into(),
    }
}

/// A rule id from a path; anything else is a 404, like a rule that does not exist.
pub fn parse_rule_id(raw: &str) -> ApiResult<AuthorizationRuleId> {
    AuthorizationRuleId::parse(raw).map_err(|_| ApiError::not_found("authorization_rule"))
}

/// Promotes, disables or adds a version, through the rule desk (retrying a lost race).
pub async fn change(
    state: &AppState,
    scope: &Scope,
    id: &AuthorizationRuleId,
    change: Change,
    by: &str,
    records: Recorder<'_>,
) -> ApiResult<Committed> {
    state
        .rules
        .change(scope, id, change, by, records, cardplane_domain::Timestamp::now())
        .await
        .map_err(rule_error)
}

/// A rule this person may see (`ViewPrograms`) or change (`ManagePrograms`), in any tenant
/// they reach: another tenant's is a 404.
pub async fn load_for(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<RuleWithVersions> {
    staff.require(action)?;
    let id = parse_rule_id(raw)?;
    let rule = state
        .rules
        .store()
        .find_rule(&id)
        .await
        .map_err(|e| rule_error(e.into()))?;
    staff.require_in(action, &rule.rule.tenant_id, "authorization_rule")?;
    Ok(rule)
}

pub fn scope_of(rule: &RuleWithVersions) -> Scope {
    Scope {
        tenant_id: rule.rule.tenant_id.clone(),
        environment: rule.rule.environment,
    }
}

/// A person's rule change: the same change as the API's, audited under the same action
/// (`POST /authorization_rules/{rule_id}/promote`), with the person as the actor.
pub async fn change_by_staff(state: &AppState, staff: &Staff, raw: &str, what: Change) -> ApiResult<Committed> {
    let rule = load_for(state, staff, Action::ManagePrograms, raw).await?;
    let verb = match &what {
        Change::Promote(_) => "promote",
        Change::Disable => "disable",
        Change::NewVersion(_) => "versions",
    };
    let scope = scope_of(&rule);
    let action = format!("POST /authorization_rules/{{rule_id}}/{verb}");
    let mut audit = staff.audit(&action, "authorization_rule", rule.rule.id.as_str());
    audit.tenant_id = Some(scope.tenant_id.to_string());
    audit.environment = Some(scope.environment.as_str().to_owned());
    let records = move |_status: u16, _body: &str| {
        Some(EffectRecords {
            replay: None,
            audit: Some(audit.clone()),
        })
    };
    change(state, &scope, &rule.rule.id, what, staff.person.id.as_str(), &records).await
}
