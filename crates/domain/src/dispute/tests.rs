use super::*;
use crate::authorization::{Transaction, TransactionKind, TransactionState};
use crate::environment::Environment;
use crate::ids::AccountId;
use crate::money::Currency;
use crate::program::Network;
use crate::time::Timestamp;

const EVENTS: [DisputeEvent; 15] = [
    DisputeEvent::RequestEvidence,
    DisputeEvent::EvidenceReceived,
    DisputeEvent::Submit,
    DisputeEvent::MerchantAccepted,
    DisputeEvent::Represented,
    DisputeEvent::AcceptRepresentment,
    DisputeEvent::PreArbitrate,
    DisputeEvent::PreArbitrationAccepted,
    DisputeEvent::Arbitrate,
    DisputeEvent::Ruled(Ruling::ForCardholder),
    DisputeEvent::Ruled(Ruling::ForMerchant),
    DisputeEvent::Ruled(Ruling::Partly(40)),
    DisputeEvent::Withdraw,
    DisputeEvent::Deny,
    DisputeEvent::ResolutionDeadlinePassed,
];

fn at(status: DisputeStatus) -> DisputeState {
    DisputeState {
        status,
        disposition: None,
        recovered: None,
    }
}

#[test]
fn every_step_is_decided_and_the_legal_ones_are_these() {
    use DisputeEvent as E;
    use DisputeStatus as S;
    let legal: Vec<(S, E, S, Option<Disposition>)> = vec![
        (S::New, E::RequestEvidence, S::PendingCustomer, None),
        (S::PendingCustomer, E::EvidenceReceived, S::New, None),
        (S::New, E::Submit, S::Submitted, None),
        (S::PendingCustomer, E::Submit, S::Submitted, None),
        (S::New, E::Deny, S::Closed, Some(Disposition::Denied)),
        (S::PendingCustomer, E::Deny, S::Closed, Some(Disposition::Denied)),
        (S::Submitted, E::MerchantAccepted, S::Closed, Some(Disposition::Won)),
        (S::Submitted, E::Represented, S::Representment, None),
        (
            S::Representment,
            E::AcceptRepresentment,
            S::Closed,
            Some(Disposition::Lost),
        ),
        (S::Representment, E::PreArbitrate, S::PreArbitration, None),
        (
            S::PreArbitration,
            E::PreArbitrationAccepted,
            S::Closed,
            Some(Disposition::Won),
        ),
        (S::PreArbitration, E::Arbitrate, S::Arbitration, None),
        (
            S::Arbitration,
            E::Ruled(Ruling::ForCardholder),
            S::Closed,
            Some(Disposition::Won),
        ),
        (
            S::Arbitration,
            E::Ruled(Ruling::ForMerchant),
            S::Closed,
            Some(Disposition::Lost),
        ),
        (
            S::Arbitration,
            E::Ruled(Ruling::Partly(40)),
            S::Closed,
            Some(Disposition::PartiallyWon),
        ),
    ];
    let mut codes = std::collections::HashSet::new();
    for from in DisputeStatus::ALL {
        for event in EVENTS {
            let got = at(*from).apply(event, 100);
            let expected = legal.iter().find(|(f, e, _, _)| f == from && *e == event);
            match (got, expected, event) {
                (Ok(to), Some((_, _, status, disposition)), _) => {
                    assert_eq!(
                        (to.status, to.disposition),
                        (*status, *disposition),
                        "{from:?} {event:?}"
                    )
                }
                (Ok(to), None, E::Withdraw) => {
                    assert_eq!(to.disposition, Some(Disposition::Withdrawn), "{from:?}");
                    assert_ne!(*from, S::Closed);
                }
                (Ok(to), None, E::ResolutionDeadlinePassed) => {
                    assert_eq!((to.disposition, to.recovered), (Some(Disposition::Won), Some(100)));
                    assert_ne!(*from, S::Closed);
                }
                (Err(x), None, _) => {
                    codes.insert(x.code());
                }
                (got, _, _) => panic!("{from:?} on {event:?}: got {got:?}"),
            }
        }
    }
    assert!(codes.len() >= 7, "each kind of illegal step has its code: {codes:?}");
}

#[test]
fn a_partial_ruling_must_be_a_part() {
    let arbitration = at(DisputeStatus::Arbitration);
    assert_eq!(
        arbitration.apply(DisputeEvent::Ruled(Ruling::Partly(100)), 100),
        Err(IllegalDisputeTransition::PartialRulingAmount)
    );
    assert_eq!(
        arbitration.apply(DisputeEvent::Ruled(Ruling::Partly(0)), 100),
        Err(IllegalDisputeTransition::PartialRulingAmount)
    );
    let won = arbitration.apply(DisputeEvent::Ruled(Ruling::Partly(30)), 100).unwrap();
    assert_eq!(won.recovered, Some(30));
}

#[test]
fn every_reason_maps_to_a_family_and_a_code_on_each_network() {
    for r in DisputeReason::ALL {
        let _ = r.family();
        assert!(!r.network_code(Network::Visa).is_empty());
        assert!(!r.network_code(Network::Mastercard).is_empty());
    }
    assert_eq!(DisputeReason::FraudCardNotPresent.network_code(Network::Visa), "10.4");
    assert_eq!(DisputeReason::NotReceived.network_code(Network::Mastercard), "4853");
}

fn cleared(entry_mode: &str, country: &str, cleared_at: Timestamp) -> Transaction {
    use crate::authorization::{Merchant, ResponseCode};
    use crate::ids::*;
    Transaction {
        id: TransactionId::generate(),
        tenant_id: TenantId::generate(),
        environment: Environment::Sandbox,
        card_id: CardId::generate(),
        cardholder_id: CardholderId::generate(),
        program_id: ProgramId::generate(),
        account_id: AccountId::generate(),
        kind: TransactionKind::Authorization,
        state: TransactionState::Complete,
        network_transaction_id: "n".into(),
        currency: Currency::parse("USD").unwrap(),
        requested_amount: 1_000,
        authorized_amount: 1_000,
        held_amount: 0,
        cleared_amount: 1_000,
        reversed_amount: 0,
        response_code: ResponseCode::Approved,
        decline_reason: None,
        authorization_code: Some("ABC123".into()),
        merchant: Merchant {
            id: "m".into(),
            name: "Shop".into(),
            mcc: "5411".into(),
            country: country.into(),
            city: "X".into(),
        },
        entry_mode: entry_mode.into(),
        stand_in: false,
        decision_trace: serde_json::json!([]),
        received_at: cleared_at,
        custodian_sent_at: None,
        custodian_answered_at: None,
        answered_at: cleared_at,
        expires_at: None,
        created_at: cleared_at,
        updated_at: cleared_at,
    }
}

fn day(raw: &str) -> Timestamp {
    let t = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).unwrap();
    Timestamp::from_micros(i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap())
}

fn claim(amount: i64, reason: DisputeReason, filed: Timestamp) -> Claim {
    Claim {
        amount,
        reason,
        customer_note: None,
        customer_filed_at: filed,
    }
}

fn context(t: &Transaction, already: i64, frauds: u32) -> FilingContext<'_> {
    FilingContext {
        transaction: t,
        network: Network::Visa,
        already_disputed: already,
        fraud_disputes_on_card: frauds,
        account_opened_at: day("2026-01-01T00:00:00Z"),
        policy: DisputePolicy::default(),
    }
}

#[test]
fn filing_checks_what_can_be_disputed() {
    let settled = day("2026-11-02T12:00:00Z");
    let t = cleared("ecommerce", "USA", settled);
    let now = day("2026-11-20T12:00:00Z");
    let filed = day("2026-11-20T09:00:00Z");
    let d = file(context(&t, 0, 0), claim(600, DisputeReason::NotReceived, filed), now).unwrap();
    assert_eq!((d.amount, d.state.status), (600, DisputeStatus::New));
    assert_eq!(d.network_reason_code, "13.1");
    // Partial disputes add up to what was cleared, not more.
    assert_eq!(
        file(context(&t, 600, 0), claim(401, DisputeReason::NotReceived, filed), now),
        Err(FilingError::AmountTooLarge(400))
    );
    assert!(file(context(&t, 600, 0), claim(400, DisputeReason::NotReceived, filed), now).is_ok());
    let mut pending = t.clone();
    pending.state = TransactionState::Pending;
    assert_eq!(
        file(context(&pending, 0, 0), claim(100, DisputeReason::Other, filed), now)
            .unwrap_err()
            .code(),
        "transaction_not_disputable"
    );
    let late = day("2027-03-03T12:00:00Z");
    assert!(matches!(
        file(context(&t, 0, 0), claim(100, DisputeReason::Other, late), late),
        Err(FilingError::WindowClosed(_))
    ));
    assert_eq!(
        file(
            context(&t, 0, 15),
            claim(100, DisputeReason::FraudCardNotPresent, filed),
            now
        ),
        Err(FilingError::FraudLimit(15))
    );
    assert!(
        file(
            context(&t, 0, 15),
            claim(100, DisputeReason::NotAsDescribed, filed),
            now
        )
        .is_ok()
    );
    assert_eq!(
        file(
            context(&t, 0, 0),
            claim(100, DisputeReason::Other, now.plus_secs(60)),
            now
        ),
        Err(FilingError::FiledInFuture)
    );
}

#[test]
fn regulation_e_deadlines_count_business_days_and_the_extended_cases() {
    let settled = day("2026-11-02T12:00:00Z");
    // Filed the day before Thanksgiving: 10 business days skip Thanksgiving and two weekends.
    let filed = day("2026-11-25T15:00:00Z");
    let online = cleared("ecommerce", "USA", settled);
    let d = file(context(&online, 0, 0), claim(100, DisputeReason::Other, filed), filed).unwrap();
    assert_eq!(d.provisional_credit_due_at.to_rfc3339(), "2026-12-10T23:59:59.999Z");
    // 45 calendar days: 2027-01-09 is a Saturday, so Monday the 11th.
    assert_eq!(d.resolution_due_at.to_rfc3339(), "2027-01-11T23:59:59.999Z");
    for t in [cleared("chip", "USA", settled), cleared("ecommerce", "GBR", settled)] {
        let d = file(context(&t, 0, 0), claim(100, DisputeReason::Other, filed), filed).unwrap();
        assert_eq!(d.resolution_due_at.to_rfc3339(), "2027-02-23T23:59:59.999Z", "90 days");
    }
    let mut young = context(&online, 0, 0);
    young.account_opened_at = day("2026-11-10T00:00:00Z");
    let d = file(young, claim(100, DisputeReason::Other, filed), filed).unwrap();
    assert_eq!(
        d.resolution_due_at.to_rfc3339(),
        "2027-02-23T23:59:59.999Z",
        "a new account"
    );
}

#[test]
fn the_journals_balance_and_spare_the_card_its_floor() {
    let settled = day("2026-11-02T12:00:00Z");
    let t = cleared("ecommerce", "USA", settled);
    let now = day("2026-11-20T12:00:00Z");
    let mut d = file(context(&t, 0, 0), claim(800, DisputeReason::NotReceived, now), now).unwrap();
    let accounts = DisputeAccounts {
        disputes: AccountId::generate(),
        settlement: AccountId::generate(),
        losses: AccountId::generate(),
    };
    let credit = provisional_credit_journal(&d, &accounts, now).unwrap();
    credit.assert_balanced();
    d.provisional_credit = 800;
    // The card has spent all but 300: it pays 300 back, the losses account the rest.
    let reversal = credit_reversal_journal(&d, &accounts, 800, 300, now).unwrap();
    reversal.assert_balanced();
    let card_paid: i64 = reversal
        .entries
        .iter()
        .filter(|e| e.account_id == d.account_id)
        .map(|e| -e.delta())
        .sum();
    assert_eq!(card_paid, 300);
    // A partial win of 500 with 800 granted: 500 settles the dispute account.
    let chargeback = chargeback_journal(&d, &accounts, 500, now).unwrap();
    chargeback.assert_balanced();
    assert!(chargeback.entries.iter().all(|e| e.account_id != d.account_id));
    // Won with nothing granted: the card gets it all.
    d.provisional_credit = 0;
    let won = chargeback_journal(&d, &accounts, 800, now).unwrap();
    assert!(
        won.entries
            .iter()
            .any(|e| e.account_id == d.account_id && e.delta() == 800)
    );
    // The resolution deadline with nothing granted: the card is credited all of it, and the
    // losses account takes the whole amount off the dispute account, which ends at zero.
    let credit = provisional_credit_journal(&d, &accounts, now).unwrap();
    let made_final = credit_made_final_journal(&d, &accounts, now).unwrap();
    made_final.assert_balanced();
    let on = |account: &AccountId| -> i64 {
        [&credit, &made_final]
            .iter()
            .flat_map(|j| j.entries.iter())
            .filter(|e| &e.account_id == account)
            .map(|e| e.delta())
            .sum()
    };
    assert_eq!(on(&d.account_id), 800);
    assert_eq!(on(&accounts.disputes), 0);
    assert_eq!(on(&accounts.losses), -800);
}
