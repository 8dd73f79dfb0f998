//! Programs: the list per tenant and environment, one program's configuration (spend controls,
//! merchant rules, approval chains, authorization rules), and its edit form. An edit is checked
//! by the API's own parsing, shown as a diff, and applied on confirmation through the API's
//! update workflow (same event and webhook), audited with what changed, and refused if the
//! program changed between the diff and the confirmation.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::FieldError;
use cardplane_domain::compliance::{ApprovalChain, ChainTrigger};
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Action;
use cardplane_domain::program::Program;
use cardplane_engine::rules::view::RuleView;
use cardplane_store::programs::{ProgramListing, ProgramSearch};
use cardplane_store::rules::RuleFilter;
use cardplane_store::{EffectRecords, Scope};
use serde::Deserialize;

use super::program_form::{ProgramForm, WINDOWS, slot_of};
use super::transactions::{tenant_filter, value};
use super::{Chrome, ConsoleError, PageResult, RefusalCode, money, page, when};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{DoneQuery, href};
use crate::workflows::programs::{FieldChange, apply_update, changes_for_audit, program_changes, save_update};

const PAGE_SIZE: u32 = 50;
/// A program's rules shown on its page; the rules page has them all.
const RULES_SHOWN_MAX: u32 = 50;

pub struct ProgramRow {
    pub id: String,
    pub program_id: String,
    pub name: String,
    pub tenant_id: String,
    pub environment: &'static str,
    pub status: &'static str,
    pub funding_model: &'static str,
    pub currency: String,
    pub network: &'static str,
    pub bin: String,
    pub controls: usize,
    pub rules_version: i64,
    pub risk_alert_threshold: i64,
    pub updated: String,
}

impl From<&ProgramListing> for ProgramRow {
    fn from(l: &ProgramListing) -> Self {
        let p = &l.program;
        ProgramRow {
            id: p.id.to_string(),
            program_id: p.program_id.clone(),
            name: p.name.clone(),
            tenant_id: p.tenant_id.to_string(),
            environment: p.environment.as_str(),
            status: p.status.as_str(),
            funding_model: p.funding_model.as_str(),
            currency: p.currency.code().to_owned(),
            network: p.network.as_str(),
            bin: p.bin.clone(),
            controls: p.spend_controls.len(),
            rules_version: l.rules_version,
            risk_alert_threshold: p.risk_alert_threshold,
            updated: when(p.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct ListQuery {
    tenant: Option<String>,
    environment: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "console/programs.html")]
struct ListPage {
    chrome: Chrome,
    tenant: String,
    environment: String,
    rows: Vec<ProgramRow>,
    next: Option<String>,
}

impl ListPage {
    fn next_href(&self, before: &str) -> String {
        href(
            "/console/programs",
            &[
                ("tenant", Some(self.tenant.as_str())),
                ("environment", Some(self.environment.as_str())),
                ("before", Some(before)),
            ],
        )
    }
}

/// `GET /console/programs`: newest first across the tenants this person reaches.
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<ListQuery>) -> PageResult {
    staff.require(Action::ViewPrograms)?;
    let search = ProgramSearch {
        tenant_id: tenant_filter(&staff, &q.tenant),
        environment: value(&q.environment).filter(|e| matches!(e.as_str(), "sandbox" | "live")),
        id: None,
        before_id: value(&q.before),
    };
    let mut found = state.programs.search_programs(&search, PAGE_SIZE + 1).await?;
    let next = (found.len() > PAGE_SIZE as usize).then(|| {
        found.truncate(PAGE_SIZE as usize);
        found.last().map(|l| l.program.id.to_string()).unwrap_or_default()
    });
    page(&ListPage {
        chrome: Chrome::new(&staff, "programs"),
        tenant: search.tenant_id.unwrap_or_default(),
        environment: search.environment.unwrap_or_default(),
        rows: found.iter().map(ProgramRow::from).collect(),
        next,
    })
}

/// The program behind `/console/programs/{id}`, if this person may see it.
async fn load(state: &AppState, staff: &Staff, raw: &str) -> Result<ProgramListing, ConsoleError> {
    let search = ProgramSearch {
        id: Some(raw.to_owned()),
        ..ProgramSearch::default()
    };
    let listing = state
        .programs
        .search_programs(&search, 1)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("program"))?;
    staff.require_in(Action::ViewPrograms, &listing.program.tenant_id, "program")?;
    Ok(listing)
}

fn scope_of(p: &Program) -> Scope {
    Scope {
        tenant_id: p.tenant_id.clone(),
        environment: p.environment,
    }
}

pub struct ControlLine {
    pub amount: String,
    pub count: String,
    pub window: String,
    pub mccs: String,
}

pub struct ChainLine {
    pub trigger: &'static str,
    pub steps: String,
    pub sla_hours: i64,
    pub configured: bool,
}

pub struct RuleLine {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub active_version: String,
    pub draft_version: String,
    pub priority: String,
}

impl From<&RuleView> for RuleLine {
    fn from(r: &RuleView) -> Self {
        let shown = r.active.as_ref().or(r.draft.as_ref());
        RuleLine {
            id: r.id.clone(),
            name: shown.map(|v| v.name.clone()).unwrap_or_default(),
            kind: r.kind.clone(),
            status: r.status.clone(),
            active_version: r.active.as_ref().map(|v| v.version.to_string()).unwrap_or_default(),
            draft_version: r.draft.as_ref().map(|v| v.version.to_string()).unwrap_or_default(),
            priority: shown.map(|v| v.priority.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/program.html")]
struct DetailPage {
    chrome: Chrome,
    program: ProgramRow,
    form_factors: String,
    design_keys: String,
    minimum_cardholder_age: u8,
    kyc_required: bool,
    card_lifetime_years: u8,
    merchant_rules: Vec<(&'static str, String)>,
    controls: Vec<ControlLine>,
    chains: Option<Vec<ChainLine>>,
    rules: Vec<RuleLine>,
    can_edit: bool,
    form: ProgramForm,
    windows: [&'static str; 7],
    errors: HashMap<String, String>,
    notice: Option<&'static str>,
}

impl DetailPage {
    fn err(&self, slot: &str) -> Option<&str> {
        self.errors.get(slot).map(String::as_str)
    }

    fn row_err(&self, row: &usize) -> Option<&str> {
        self.err(&format!("sc{row}"))
    }

    /// The form's text inputs: (error slot, field name, label, value).
    fn text_fields(&self) -> Vec<(&'static str, &'static str, &'static str, &str)> {
        let f = &self.form;
        vec![
            ("name", "name", "Name", &f.name),
            (
                "card_lifetime_years",
                "card_lifetime_years",
                "Card lifetime (years)",
                &f.card_lifetime_years,
            ),
            (
                "minimum_cardholder_age",
                "minimum_cardholder_age",
                "Minimum cardholder age",
                &f.minimum_cardholder_age,
            ),
            (
                "risk_alert_threshold",
                "risk_alert_threshold",
                "Risk alert threshold (0 to 1000; 1000: never)",
                &f.risk_alert_threshold,
            ),
            (
                "design_keys",
                "design_keys",
                "Design keys (comma-separated)",
                &f.design_keys,
            ),
            (
                "merchant_rules.allowed_mccs",
                "allowed_mccs",
                "Allowed MCCs (comma-separated; empty: all)",
                &f.allowed_mccs,
            ),
            (
                "merchant_rules.blocked_mccs",
                "blocked_mccs",
                "Blocked MCCs (comma-separated)",
                &f.blocked_mccs,
            ),
            (
                "merchant_rules.allowed_countries",
                "allowed_countries",
                "Allowed countries (comma-separated; empty: all)",
                &f.allowed_countries,
            ),
            (
                "merchant_rules.blocked_countries",
                "blocked_countries",
                "Blocked countries (comma-separated)",
                &f.blocked_countries,
            ),
        ]
    }
}

fn control_lines(p: &Program) -> Vec<ControlLine> {
    let cur = p.currency.code();
    p.spend_controls
        .iter()
        .map(|c| ControlLine {
            amount: c.amount_limit.map(|a| money(a, cur)).unwrap_or_default(),
            count: c.count_limit.map(|n| n.to_string()).unwrap_or_default(),
            window: match c.window.trailing_secs() {
                Some(secs) => format!("trailing {secs} s"),
                None => c.window.as_str().to_owned(),
            },
            mccs: if c.mccs.is_empty() {
                "all".to_owned()
            } else {
                c.mccs.join(", ")
            },
        })
        .collect()
}

async fn chain_lines(state: &AppState, staff: &Staff, p: &Program) -> Result<Option<Vec<ChainLine>>, ConsoleError> {
    if !staff.person.can(Action::ViewApprovalChains) {
        return Ok(None);
    }
    let mut lines = Vec::new();
    for trigger in ChainTrigger::ALL {
        let configured = state.compliance.approval_chain(&p.id, *trigger).await?;
        let chain = configured
            .clone()
            .unwrap_or_else(|| ApprovalChain::platform_default(*trigger));
        lines.push(ChainLine {
            trigger: trigger.as_str(),
            steps: chain.steps.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" → "),
            sla_hours: chain.sla_hours,
            configured: configured.is_some(),
        });
    }
    Ok(Some(lines))
}

/// The program's own authorization rules, newest first.
pub async fn program_rules(state: &AppState, p: &Program, limit: u32) -> Result<Vec<RuleView>, ConsoleError> {
    let filter = RuleFilter {
        scope_kind: Some(ControlScopeKind::Program),
        scope_ref: Some(p.program_id.clone()),
    };
    let page = PageRequest {
        limit,
        cursor: Cursor::Newest,
    };
    let rules = state.rules.store().list_rules(&scope_of(p), &filter, &page).await?;
    Ok(rules.items.iter().map(RuleView::from).collect())
}

async fn detail_page(
    state: &AppState,
    staff: &Staff,
    listing: &ProgramListing,
    form: Option<ProgramForm>,
    errors: HashMap<String, String>,
) -> Result<DetailPage, ConsoleError> {
    let p = &listing.program;
    let rules = program_rules(state, p, RULES_SHOWN_MAX).await?;
    let r = &p.merchant_rules;
    Ok(DetailPage {
        chrome: Chrome::new(staff, "programs"),
        form_factors: p.form_factors.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
        design_keys: p.design_keys.join(", "),
        minimum_cardholder_age: p.minimum_cardholder_age,
        kyc_required: p.kyc_required,
        card_lifetime_years: p.card_lifetime_years,
        merchant_rules: vec![
            ("Allowed MCCs", r.allowed_mccs.join(", ")),
            ("Blocked MCCs", r.blocked_mccs.join(", ")),
            ("Allowed countries", r.allowed_countries.join(", ")),
            ("Blocked countries", r.blocked_countries.join(", ")),
        ],
        controls: control_lines(p),
        chains: chain_lines(state, staff, p).await?,
        rules: rules.iter().map(RuleLine::from).collect(),
        can_edit: staff.person.can(Action::ManagePrograms),
        form: form.unwrap_or_else(|| ProgramForm::of(p)),
        windows: WINDOWS,
        errors,
        notice: None,
        program: ProgramRow::from(listing),
    })
}

/// `GET /console/programs/{program_id}`.
pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let listing = load(&state, &staff, &id).await?;
    let mut p = detail_page(&state, &staff, &listing, None, HashMap::new()).await?;
    p.notice = q.notice(&[
        ("updated", "The program is updated."),
        ("unchanged", "Nothing was changed: the form matched the program."),
    ]);
    page(&p)
}

#[derive(Template)]
#[template(path = "console/program_diff.html")]
struct DiffPage {
    chrome: Chrome,
    program: ProgramRow,
    changes: Vec<(String, String, String)>,
    hidden: Vec<(String, String)>,
    expected: i64,
    moved: bool,
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn diff_page(
    staff: &Staff,
    listing: &ProgramListing,
    form: &ProgramForm,
    changes: &[FieldChange],
    moved: bool,
) -> DiffPage {
    DiffPage {
        chrome: Chrome::new(staff, "programs"),
        program: ProgramRow::from(listing),
        changes: changes
            .iter()
            .map(|c| (c.field.clone(), shown(&c.before), shown(&c.after)))
            .collect(),
        hidden: form.pairs(),
        expected: listing.program.updated_at.as_micros(),
        moved,
    }
}

/// Field errors keyed by where the form shows them; the first error's code for the audit log.
fn placed(errors: &[FieldError]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for e in errors {
        out.entry(slot_of(&e.param))
            .or_insert_with(|| format!("{}: {}", e.param, e.message));
    }
    out
}

/// The edit form back with its errors in place: nothing was changed.
async fn refused(
    state: &AppState,
    staff: &Staff,
    listing: &ProgramListing,
    form: ProgramForm,
    errors: &[FieldError],
) -> PageResult {
    let p = detail_page(state, staff, listing, Some(form), placed(errors)).await?;
    let mut r = page(&p)?;
    *r.status_mut() = StatusCode::BAD_REQUEST;
    let code = errors.first().map(|e| e.code).unwrap_or("parameter_invalid");
    r.extensions_mut().insert(RefusalCode(code.to_owned()));
    Ok(r)
}

/// What a submitted form would make of the program as it is now.
fn proposed(current: &Program, form: &ProgramForm) -> Result<Program, Vec<FieldError>> {
    apply_update(current, &form.request()?)
}

/// `POST /console/programs/{program_id}/{edit|confirm}`.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    if !matches!(action.as_str(), "edit" | "confirm") {
        return Err(ApiError::not_found("program action").into());
    }
    let listing = load(&state, &staff, &id).await?;
    staff.require(Action::ManagePrograms)?;
    let form = ProgramForm::from_pairs(&pairs);
    let next = match proposed(&listing.program, &form) {
        Ok(next) => next,
        Err(errors) => return refused(&state, &staff, &listing, form, &errors).await,
    };
    let changes = program_changes(&listing.program, &next);
    if changes.is_empty() {
        return Ok(Redirect::to(&format!("/console/programs/{id}?done=unchanged")).into_response());
    }
    if action == "edit" {
        return page(&diff_page(&staff, &listing, &form, &changes, false));
    }
    let expected = pairs.iter().find(|(k, _)| k == "expected").map(|(_, v)| v.as_str());
    if expected != Some(listing.program.updated_at.as_micros().to_string().as_str()) {
        return moved(&staff, &listing, &form, &changes);
    }
    confirm(&state, &staff, &listing, &form, next, &changes).await
}

/// The program changed since the diff was shown: the diff against it now, to confirm again.
fn moved(staff: &Staff, listing: &ProgramListing, form: &ProgramForm, changes: &[FieldChange]) -> PageResult {
    let mut r = page(&diff_page(staff, listing, form, changes, true))?;
    *r.status_mut() = StatusCode::CONFLICT;
    r.extensions_mut().insert(RefusalCode("concurrent_update".into()));
    Ok(r)
}

async fn confirm(
    state: &AppState,
    staff: &Staff,
    listing: &ProgramListing,
    form: &ProgramForm,
    next: Program,
    changes: &[FieldChange],
) -> PageResult {
    let p = &listing.program;
    let mut audit = staff.audit("program.updated", "program", p.id.as_str());
    audit.tenant_id = Some(p.tenant_id.to_string());
    audit.environment = Some(p.environment.as_str().to_owned());
    audit.details = serde_json::json!({ "changes": changes_for_audit(changes), "via": "console" });
    let saved = save_update(state, &scope_of(p), p, next, |_| {
        Ok(Some(EffectRecords {
            replay: None,
            audit: Some(audit),
        }))
    })
    .await;
    match saved {
        Ok(_) => Ok(Redirect::to(&format!("/console/programs/{}?done=updated", p.id)).into_response()),
        Err(e) if e.status == StatusCode::CONFLICT => {
            // Changed between our read and our write: show the diff against what is there now.
            let now = load(state, staff, p.id.as_str()).await?;
            match proposed(&now.program, form) {
                Ok(next) => moved(staff, &now, form, &program_changes(&now.program, &next)),
                Err(errors) => refused(state, staff, &now, form.clone(), &errors).await,
            }
        }
        Err(e) => Err(e.into()),
    }
}
