//! The program edit form: what its fields hold, read from a program or from a submitted form,
//! and turned into the API's `UpdateProgramRequest`. Only the HTML transport lives here (lists
//! typed as comma-separated text, numbers typed as text, one row per spend control); every rule
//! about the values is the API's own parsing in `workflows::programs`.

use std::collections::BTreeMap;

use cardplane_domain::FieldError;
use cardplane_domain::program::Program;

use crate::workflows::programs::{MerchantRulesRequest, SpendLimitRequest, UpdateProgramRequest};

/// A program has a handful of spend controls; the form offers one empty row beyond them.
pub const CONTROL_ROWS_MAX: usize = 20;
/// The windows a spend control can count over (the domain's `Window` names).
pub const WINDOWS: [&str; 7] = [
    "per_transaction",
    "day",
    "week",
    "month",
    "year",
    "lifetime",
    "trailing",
];

/// One spend control as its form row shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlRow {
    pub amount_limit: String,
    pub count_limit: String,
    pub window: String,
    pub window_secs: String,
    pub mccs: String,
}

impl ControlRow {
    /// The row's cells by their form names (`sc{row}_{name}`).
    fn cells(&mut self) -> [(&'static str, &mut String); 5] {
        [
            ("amount_limit", &mut self.amount_limit),
            ("count_limit", &mut self.count_limit),
            ("window", &mut self.window),
            ("window_secs", &mut self.window_secs),
            ("mccs", &mut self.mccs),
        ]
    }

    fn is_blank(&self) -> bool {
        *self == ControlRow::default()
    }
}

/// The edit form's fields, as text.
#[derive(Debug, Clone, Default)]
pub struct ProgramForm {
    pub name: String,
    pub status: String,
    pub card_lifetime_years: String,
    pub form_factors: Vec<String>,
    pub design_keys: String,
    pub minimum_cardholder_age: String,
    pub kyc_required: String,
    pub risk_alert_threshold: String,
    pub allowed_mccs: String,
    pub blocked_mccs: String,
    pub allowed_countries: String,
    pub blocked_countries: String,
    pub controls: Vec<ControlRow>,
}

fn listed(items: &[String]) -> String {
    items.join(", ")
}

fn items(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn opt_text(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// A whole number typed into a form field; `None` when left empty.
fn number<T: TryFrom<i64>>(param: &str, raw: &str) -> Result<Option<T>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i64>()
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| FieldError::invalid(param, "a whole number in range"))
}

impl ProgramForm {
    /// The form filled in with the program as it is.
    pub fn of(p: &Program) -> ProgramForm {
        ProgramForm {
            name: p.name.clone(),
            status: p.status.as_str().to_owned(),
            card_lifetime_years: p.card_lifetime_years.to_string(),
            form_factors: p.form_factors.iter().map(|f| f.as_str().to_owned()).collect(),
            design_keys: listed(&p.design_keys),
            minimum_cardholder_age: p.minimum_cardholder_age.to_string(),
            kyc_required: p.kyc_required.to_string(),
            risk_alert_threshold: p.risk_alert_threshold.to_string(),
            allowed_mccs: listed(&p.merchant_rules.allowed_mccs),
            blocked_mccs: listed(&p.merchant_rules.blocked_mccs),
            allowed_countries: listed(&p.merchant_rules.allowed_countries),
            blocked_countries: listed(&p.merchant_rules.blocked_countries),
            controls: p
                .spend_controls
                .iter()
                .map(|c| ControlRow {
                    amount_limit: opt_text(c.amount_limit),
                    count_limit: opt_text(c.count_limit),
                    window: c.window.as_str().to_owned(),
                    window_secs: opt_text(c.window.trailing_secs()),
                    mccs: listed(&c.mccs),
                })
                .collect(),
        }
    }

    /// The form as submitted (`sc{row}_{field}` for spend-control rows; unknown fields ignored).
    pub fn from_pairs(pairs: &[(String, String)]) -> ProgramForm {
        let mut f = ProgramForm::default();
        let mut rows: BTreeMap<usize, ControlRow> = BTreeMap::new();
        for (k, v) in pairs {
            let v = v.trim().to_owned();
            if let Some((row, field)) = k.strip_prefix("sc").and_then(|r| r.split_once('_')) {
                let Some(row) = row.parse::<usize>().ok().filter(|r| *r < CONTROL_ROWS_MAX) else {
                    continue;
                };
                if let Some((_, cell)) = rows
                    .entry(row)
                    .or_default()
                    .cells()
                    .into_iter()
                    .find(|(n, _)| *n == field)
                {
                    *cell = v;
                }
                continue;
            }
            if k == "form_factors" {
                f.form_factors.push(v);
            } else if let Some((_, slot)) = f.texts().into_iter().find(|(n, _)| *n == k) {
                *slot = v;
            }
        }
        f.controls = rows.into_values().filter(|r| !r.is_blank()).collect();
        f
    }

    /// The fields again as name/value pairs: what the confirmation form carries.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut copy = self.clone();
        let mut out: Vec<(String, String)> = copy
            .texts()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        out.extend(self.form_factors.iter().map(|f| ("form_factors".to_owned(), f.clone())));
        for (i, mut r) in self.controls.iter().cloned().enumerate() {
            out.extend(
                r.cells()
                    .into_iter()
                    .map(|(field, v)| (format!("sc{i}_{field}"), v.clone())),
            );
        }
        out
    }

    /// The one-value fields by their form names.
    fn texts(&mut self) -> [(&'static str, &mut String); 11] {
        [
            ("name", &mut self.name),
            ("status", &mut self.status),
            ("card_lifetime_years", &mut self.card_lifetime_years),
            ("design_keys", &mut self.design_keys),
            ("minimum_cardholder_age", &mut self.minimum_cardholder_age),
            ("kyc_required", &mut self.kyc_required),
            ("risk_alert_threshold", &mut self.risk_alert_threshold),
            ("allowed_mccs", &mut self.allowed_mccs),
            ("blocked_mccs", &mut self.blocked_mccs),
            ("allowed_countries", &mut self.allowed_countries),
            ("blocked_countries", &mut self.blocked_countries),
        ]
    }

    /// The rows to render: the program's controls and one empty row to add another.
    pub fn rows(&self) -> Vec<(usize, ControlRow)> {
        let mut rows = self.controls.clone();
        if rows.len() < CONTROL_ROWS_MAX {
            rows.push(ControlRow::default());
        }
        rows.into_iter().enumerate().collect()
    }

    pub fn has_form_factor(&self, f: &str) -> bool {
        self.form_factors.iter().any(|x| x == f)
    }

    /// The API request these fields make (every field is sent: the form shows them all).
    pub fn request(&self) -> Result<UpdateProgramRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut num = |param: &str, raw: &str| -> Option<i64> {
            number::<i64>(param, raw).unwrap_or_else(|e| {
                errors.push(e);
                None
            })
        };
        let lifetime = num("card_lifetime_years", &self.card_lifetime_years);
        let age = num("minimum_cardholder_age", &self.minimum_cardholder_age);
        let threshold = num("risk_alert_threshold", &self.risk_alert_threshold);
        let mut controls = Vec::new();
        for (i, r) in self.controls.iter().enumerate() {
            let param = format!("spend_controls[{i}]");
            controls.push(SpendLimitRequest {
                amount_limit: num(&format!("{param}.amount_limit"), &r.amount_limit),
                count_limit: num(&format!("{param}.count_limit"), &r.count_limit),
                window: Some(r.window.clone()).filter(|w| !w.is_empty()),
                window_secs: num(&format!("{param}.window_secs"), &r.window_secs),
                mccs: items(&r.mccs),
            });
        }
        let small = |param: &str, n: Option<i64>, errors: &mut Vec<FieldError>| -> Option<u8> {
            let n = n?;
            u8::try_from(n)
                .map_err(|_| errors.push(FieldError::invalid(param, "a whole number in range")))
                .ok()
        };
        let card_lifetime_years = small("card_lifetime_years", lifetime, &mut errors);
        let minimum_cardholder_age = small("minimum_cardholder_age", age, &mut errors);
        let kyc_required = match self.kyc_required.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                errors.push(FieldError::invalid("kyc_required", "yes or no"));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(UpdateProgramRequest {
            name: Some(self.name.clone()),
            status: Some(self.status.clone()),
            card_lifetime_years,
            form_factors: Some(self.form_factors.clone()),
            design_keys: Some(items(&self.design_keys)),
            spend_controls: Some(controls),
            minimum_cardholder_age,
            kyc_required,
            merchant_rules: Some(MerchantRulesRequest {
                allowed_mccs: Some(items(&self.allowed_mccs)),
                blocked_mccs: Some(items(&self.blocked_mccs)),
                allowed_countries: Some(items(&self.allowed_countries)),
                blocked_countries: Some(items(&self.blocked_countries)),
            }),
            risk_alert_threshold: threshold,
        })
    }
}

/// Where a field error is shown on the form: spend-control errors on their row (`sc{row}`),
/// list errors on their list, others on their field.
pub fn slot_of(param: &str) -> String {
    if let Some(rest) = param.strip_prefix("spend_controls[")
        && let Some((row, _)) = rest.split_once(']')
    {
        return format!("sc{row}");
    }
    param.split('[').next().unwrap_or(param).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_control_rows_are_dropped_and_rows_renumber() {
        let pairs: Vec<(String, String)> = [
            ("name", "P"),
            ("sc0_amount_limit", ""),
            ("sc0_window", ""),
            ("sc1_amount_limit", "5000"),
            ("sc1_window", "day"),
            ("form_factors", "virtual"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let f = ProgramForm::from_pairs(&pairs);
        assert_eq!(f.controls.len(), 1);
        assert_eq!(f.controls[0].amount_limit, "5000");
        let again = ProgramForm::from_pairs(&f.pairs());
        assert_eq!(again.controls, f.controls);
        assert_eq!(again.form_factors, vec!["virtual".to_owned()]);
    }

    #[test]
    fn numbers_that_are_not_numbers_name_their_field() {
        let f = ProgramForm {
            card_lifetime_years: "three".into(),
            kyc_required: "true".into(),
            controls: vec![ControlRow {
                amount_limit: "1e3".into(),
                window: "day".into(),
                ..ControlRow::default()
            }],
            ..ProgramForm::default()
        };
        let errors = f.request().unwrap_err();
        let params: Vec<&str> = errors.iter().map(|e| e.param.as_str()).collect();
        assert_eq!(params, ["card_lifetime_years", "spend_controls[0].amount_limit"]);
        assert_eq!(slot_of(&errors[1].param), "sc0");
        assert_eq!(slot_of("merchant_rules.blocked_mccs[2]"), "merchant_rules.blocked_mccs");
    }
}
