//! Fuzzing with proptest: every parser of outside input in the domain core takes arbitrary text
//! (and arbitrary numbers) and answers `Ok` or a typed error, never a panic; what it accepts
//! satisfies the parser's own rules. Strings mix printable ASCII, digits and separators (which
//! reach deep into the parsers) with arbitrary Unicode and control characters.
//!
//! Cases per property: proptest's default (256) unless `PROPTEST_CASES` says otherwise.

use cardplane_domain::authorization::{clearing_cap, hold_ttl_secs, is_expired};
use cardplane_domain::cardholder::{
    Address, AddressInput, CardOrderRequest, DateOfBirth, Document, DocumentType, Email, PhoneNumber, is_po_box,
    parse_custodian_uid, parse_name,
};
use cardplane_domain::controls::{SpendLimit, Window, parse_mcc};
use cardplane_domain::country::normalize_country;
use cardplane_domain::ids::{
    ApiKeyId, CardId, CardholderId, EventId, NetworkCredentialId, ProgramId, SpendControlId, TenantId, TransactionId,
    WebhookEndpointId,
};
use cardplane_domain::money::{Currency, Money};
use cardplane_domain::page::PageRequest;
use cardplane_domain::pan::{Pan, luhn_valid};
use cardplane_domain::program::{Network, parse_bin, parse_design_keys, parse_program_ref};
use cardplane_domain::vault::Kek;
use cardplane_domain::version::ApiVersion;
use cardplane_domain::webhook::{self, EnabledEvents, WebhookSecret};
use cardplane_domain::{Environment, Timestamp, idempotency};
use proptest::prelude::*;

/// Text that reaches deep into parsers: mostly near-valid shapes, sometimes anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[0-9]{0,20}",
        3 => "[A-Za-z0-9 ._@+:/-]{0,24}",
        2 => "[0-9]{2,4}-[0-9]{1,2}(-[0-9]{1,3})?",
        1 => "(crdhldr|card|corp|key|txn|we|evt|sc|net|prog)_[0-9a-fA-F]{0,40}",
        1 => "\\PC{0,40}",
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

proptest! {
    #[test]
    fn money_and_currency_parsers_never_panic(code in text(), a in any::<i64>(), b in any::<i64>()) {
        if let Ok(currency) = Currency::parse(&code) {
            prop_assert_eq!(currency.code().len(), 3);
            if let Ok(m) = Money::positive(a, currency) {
                prop_assert!(m.minor() > 0);
            }
            let (x, y) = (Money::new(a, currency), Money::new(b, currency));
            match x.checked_add(y) {
                Ok(sum) => prop_assert_eq!(Some(sum.minor()), a.checked_add(b)),
                Err(_) => prop_assert!(a.checked_add(b).is_none()),
            }
            match x.checked_sub(y) {
                Ok(diff) => prop_assert_eq!(Some(diff.minor()), a.checked_sub(b)),
                Err(_) => prop_assert!(a.checked_sub(b).is_none()),
            }
        }
    }

    #[test]
    fn country_phone_email_and_names_never_panic(raw in text(), other in opt_text()) {
        if let Some(alpha3) = normalize_country(&raw) {
            prop_assert_eq!(alpha3.len(), 3);
        }
        if let Ok(phone) = PhoneNumber::parse(Some(&raw)) {
            prop_assert!(phone.e164().starts_with('+'));
            prop_assert!(phone.e164()[1..].bytes().all(|b| b.is_ascii_digit()));
        }
        let _ = PhoneNumber::parse(other.as_deref());
        let _ = Email::parse(Some(&raw));
        let _ = Email::parse(other.as_deref());
        let _ = parse_name("first_name", Some(&raw));
        let _ = parse_custodian_uid(other.as_deref());
        let _ = is_po_box(&raw);
    }

    #[test]
    fn dates_of_birth_never_panic(
        raw in text(),
        day in prop_oneof![
            time::Date::MIN.to_julian_day()..=time::Date::MAX.to_julian_day(),
            2_400_000i32..2_500_000,
        ],
        age in any::<u8>(),
    ) {
        // Any "today" the time crate can represent (mostly around now), any minimum age.
        let today = time::Date::from_julian_day(day).unwrap();
        if let Ok(dob) = DateOfBirth::parse(Some(&raw), today, age) {
            prop_assert!(dob.date() < today);
        }
    }

    #[test]
    fn addresses_documents_and_card_orders_never_panic(
        fields in proptest::collection::vec(opt_text(), 6),
        kind in opt_text(),
        value in opt_text(),
        amount in proptest::option::of(any::<i64>()),
    ) {
        let _ = Address::parse(AddressInput {
            street_one: fields[0].as_deref(),
            street_two: fields[1].as_deref(),
            locality: fields[2].as_deref(),
            region: fields[3].as_deref(),
            postal_code: fields[4].as_deref(),
            country: fields[5].as_deref(),
        });
        if let Ok(doc) = Document::parse(kind.as_deref(), value.as_deref()) {
            // What is shown is at most the last four characters.
            prop_assert!(doc.number.last4().chars().count() <= 4);
        }
        if let Some(k) = kind.as_deref() {
            let _ = DocumentType::parse(k);
        }
        let _ = CardOrderRequest::parse(fields[0].as_deref(), fields[1].as_deref(), Some((fields[2].as_deref(), amount)));
        let _ = CardOrderRequest::parse(value.as_deref(), None, None);
    }

    #[test]
    fn ids_parse_only_their_own_prefix(raw in text()) {
        macro_rules! check {
            ($($id:ty),+) => {$(
                if let Ok(id) = <$id>::parse(&raw) {
                    prop_assert_eq!(id.as_str(), raw.as_str());
                    prop_assert!(raw.is_ascii());
                }
            )+};
        }
        check!(TenantId, ApiKeyId, CardholderId, CardId, ProgramId, TransactionId, EventId, SpendControlId,
            NetworkCredentialId, WebhookEndpointId);
    }

    #[test]
    fn pans_expiry_and_card_rules_never_panic(raw in text(), month in any::<u8>(), year in any::<u16>(), mcc in text(), amount in any::<i64>()) {
        if let Ok(pan) = Pan::parse(&raw) {
            prop_assert!(luhn_valid(pan.expose()));
            prop_assert!((12..=19).contains(&pan.expose().len()));
            // Debug and Display never show the middle digits.
            let shown = format!("{pan:?} {pan}");
            if pan.expose().len() > 10 {
                prop_assert!(!shown.contains(pan.expose()));
            }
        }
        let _ = luhn_valid(&raw);
        let _ = is_expired(month, year, Timestamp::now());
        let _ = hold_ttl_secs(&mcc);
        let _ = clearing_cap(amount, &mcc);
        let _ = parse_mcc("mcc", &mcc);
    }

    #[test]
    fn programs_controls_and_pages_never_panic(
        raw in opt_text(),
        keys in proptest::collection::vec(text(), 0..60),
        window in opt_text(),
        secs in proptest::option::of(any::<i64>()),
        amount in proptest::option::of(any::<i64>()),
        count in proptest::option::of(any::<i64>()),
        page in proptest::collection::vec(opt_text(), 3),
    ) {
        let _ = parse_program_ref(raw.as_deref());
        let _ = parse_bin(raw.as_deref(), Network::Visa);
        let _ = parse_bin(raw.as_deref(), Network::Mastercard);
        let _ = parse_design_keys(&keys);
        if let Ok(w) = Window::parse("spend_controls[0]", window.as_deref(), secs) {
            let _ = w.start(Timestamp::now());
            let _ = SpendLimit::parse("spend_controls[0]", amount, count, w, &keys);
        }
        let _ = PageRequest::parse(page[0].as_deref(), page[1].as_deref(), page[2].as_deref(), |id| CardId::parse(id).is_ok());
    }

    #[test]
    fn keys_versions_and_webhook_inputs_never_panic(raw in text(), events in proptest::collection::vec(text(), 0..8)) {
        if let Ok(key) = idempotency::parse_key(&raw) {
            prop_assert!(key.len() <= 255);
        }
        let _ = ApiVersion::parse(&raw);
        let _ = Environment::parse(&raw);
        let _ = Kek::parse(&raw);
        let _ = WebhookSecret::parse(&raw);
        let _ = webhook::parse_retry_after(&raw, Timestamp::now());
        let _ = webhook::Network::parse(&raw);
        let _ = EnabledEvents::parse(&events);
    }

    #[test]
    fn canonical_json_never_panics(raw in any::<Vec<u8>>()) {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&raw) {
            let canonical = idempotency::canonical_json(&value);
            prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&canonical).ok(), Some(value));
        }
    }
}
