//! Compliance cases: opened when KYC needs a human or by an operator, worked through a queue, and
//! decided through the program's approval chain (four eyes: a person approves one step at most).

use crate::environment::Environment;
use crate::ids::{CardholderId, CaseId, ProgramId, TenantId, UserId};
use crate::kyc::{FileReason, IdentityReason, KycResult, KycStatus};
use crate::people::{OperatorRole, Person, Role};
use crate::time::Timestamp;

crate::wire_enum!(CaseStatus {
    Open => "open",
    AwaitingDocuments => "awaiting_documents",
    PendingApproval => "pending_approval",
    Approved => "approved",
    Rejected => "rejected",
});

impl CaseStatus {
    pub fn is_closed(self) -> bool {
        matches!(self, CaseStatus::Approved | CaseStatus::Rejected)
    }
}

crate::wire_enum!(CaseReason {
    KycUnderReview => "kyc_under_review",
    KycUploadFile => "kyc_upload_file",
    KycResubmitDetails => "kyc_resubmit_details",
    WatchlistMatch => "watchlist_match",
    Manual => "manual",
});

crate::wire_enum!(ChainTrigger {
    Default => "default",
    WatchlistMatch => "watchlist_match",
});

impl CaseReason {
    /// The reason a KYC verdict needs a person for, if it does.
    pub fn for_kyc(result: &KycResult) -> Option<CaseReason> {
        if result.identity_reason() == Some(IdentityReason::WatchlistMatch) {
            return Some(CaseReason::WatchlistMatch);
        }
        match result.status() {
            KycStatus::UnderReview => Some(CaseReason::KycUnderReview),
            KycStatus::UploadFile => Some(CaseReason::KycUploadFile),
            KycStatus::ResubmitDetails => Some(CaseReason::KycResubmitDetails),
            _ => None,
        }
    }

    pub fn trigger(self) -> ChainTrigger {
        match self {
            CaseReason::WatchlistMatch => ChainTrigger::WatchlistMatch,
            _ => ChainTrigger::Default,
        }
    }
}

/// Who must approve, in order, and how long the case may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalChain {
    pub steps: Vec<OperatorRole>,
    pub sla_hours: i64,
}

pub const MAX_CHAIN_STEPS: usize = 5;
pub const MAX_SLA_HOURS: i64 = 24 * 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("an approval chain needs between 1 and {MAX_CHAIN_STEPS} steps")]
    StepCount,
    #[error("approval steps must be people who may decide cases (admin, compliance_officer)")]
    RoleCannotDecide,
    #[error("sla_hours must be between 1 and {MAX_SLA_HOURS}")]
    Sla,
}

impl ApprovalChain {
    pub fn new(steps: Vec<OperatorRole>, sla_hours: i64) -> Result<Self, ChainError> {
        if steps.is_empty() || steps.len() > MAX_CHAIN_STEPS {
            return Err(ChainError::StepCount);
        }
        if steps
            .iter()
            .any(|r| !crate::people::allows(Role::Operator(*r), crate::people::Action::DecideCases))
        {
            return Err(ChainError::RoleCannotDecide);
        }
        if !(1..=MAX_SLA_HOURS).contains(&sla_hours) {
            return Err(ChainError::Sla);
        }
        Ok(Self { steps, sla_hours })
    }

    /// What applies when a program has configured nothing: one compliance officer, and for a
    /// watchlist match a compliance officer then an admin.
    pub fn platform_default(trigger: ChainTrigger) -> Self {
        match trigger {
            ChainTrigger::Default => Self {
                steps: vec![OperatorRole::ComplianceOfficer],
                sla_hours: 24,
            },
            ChainTrigger::WatchlistMatch => Self {
                steps: vec![OperatorRole::ComplianceOfficer, OperatorRole::Admin],
                sla_hours: 48,
            },
        }
    }
}

crate::wire_enum!(Decision {
    Approve => "approve",
    Reject => "reject",
});

/// One recorded step of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub step: usize,
    pub role: OperatorRole,
    pub user_id: UserId,
    pub decision: Decision,
    pub comment: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub id: CaseId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub cardholder_id: CardholderId,
    pub program_id: Option<ProgramId>,
    pub reason: CaseReason,
    pub status: CaseStatus,
    pub assignee_id: Option<UserId>,
    pub opened_by: Option<UserId>,
    /// The chain as it was when the case opened: later edits do not move a case's goalposts.
    pub chain: ApprovalChain,
    pub approvals: Vec<Approval>,
    pub due_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub version: i64,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        tenant_id: &TenantId,
        environment: Environment,
        cardholder_id: &CardholderId,
        program_id: Option<ProgramId>,
        reason: CaseReason,
        chain: ApprovalChain,
        opened_by: Option<UserId>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: CaseId::generate(),
            tenant_id: tenant_id.clone(),
            environment,
            cardholder_id: cardholder_id.clone(),
            program_id,
            reason,
            status: CaseStatus::Open,
            assignee_id: None,
            opened_by,
            due_at: now.plus_secs(chain.sla_hours * 3600),
            chain,
            approvals: Vec::new(),
            created_at: now,
            updated_at: now,
            closed_at: None,
            version: 1,
        }
    }

    pub fn overdue(&self, now: Timestamp) -> bool {
        !self.status.is_closed() && now > self.due_at
    }

    /// The step waiting for a decision, if the case is still open.
    pub fn next_step(&self) -> Option<(usize, OperatorRole)> {
        if self.status.is_closed() {
            return None;
        }
        let n = self.approvals.len();
        self.chain.steps.get(n).map(|r| (n, *r))
    }

    fn touched(&self, status: CaseStatus, now: Timestamp) -> Case {
        Case {
            status,
            updated_at: now,
            closed_at: status.is_closed().then_some(now),
            version: self.version + 1,
            ..self.clone()
        }
    }

    pub fn assign(&self, assignee: Option<UserId>, now: Timestamp) -> Result<Case, CaseError> {
        if self.status.is_closed() {
            return Err(CaseError::Closed);
        }
        let mut c = self.touched(self.status, now);
        c.assignee_id = assignee;
        Ok(c)
    }

    /// A reviewer asks the cardholder for files; the KYC status becomes UPLOAD_FILE.
    pub fn request_documents(&self, now: Timestamp) -> Result<Case, CaseError> {
        match self.status {
            CaseStatus::Open | CaseStatus::AwaitingDocuments => Ok(self.touched(CaseStatus::AwaitingDocuments, now)),
            CaseStatus::PendingApproval => Err(CaseError::ApprovalInProgress),
            CaseStatus::Approved | CaseStatus::Rejected => Err(CaseError::Closed),
        }
    }

    /// A document arrived: a case waiting for one goes back to the queue.
    pub fn document_received(&self, now: Timestamp) -> Result<Case, CaseError> {
        match self.status {
            CaseStatus::AwaitingDocuments => Ok(self.touched(CaseStatus::Open, now)),
            CaseStatus::Approved | CaseStatus::Rejected => Err(CaseError::Closed),
            _ => Ok(self.touched(self.status, now)),
        }
    }

    /// Records `person`'s decision on the next step. Approving the last step approves the case;
    /// a rejection at any step rejects it.
    pub fn decide(
        &self,
        person: &Person,
        decision: Decision,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<Case, CaseError> {
        let (step, role) = self.next_step().ok_or(CaseError::Closed)?;
        if person.role != Role::Operator(role) || !person.can(crate::people::Action::DecideCases) {
            return Err(CaseError::WrongRole { expected: role });
        }
        if self.approvals.iter().any(|a| a.user_id == person.id) {
            return Err(CaseError::SamePersonTwice);
        }
        let last = step + 1 == self.chain.steps.len();
        let status = match (decision, last) {
            (Decision::Reject, _) => CaseStatus::Rejected,
            (Decision::Approve, true) => CaseStatus::Approved,
            (Decision::Approve, false) => CaseStatus::PendingApproval,
        };
        let mut c = self.touched(status, now);
        c.approvals.push(Approval {
            step,
            role,
            user_id: person.id.clone(),
            decision,
            comment,
            created_at: now,
        });
        Ok(c)
    }

    /// A KYC re-run answered for the cardholder while this case was open. A case opened only
    /// because KYC wanted details, a file or a look (`kyc_*` reasons) has nothing left to decide
    /// once KYC reaches a final answer: `PASSED` closes it as approved, `REJECTED` as rejected,
    /// and the caller records a system note and an audit entry. A watchlist match or a case an
    /// operator opened stays with a person, whatever KYC says now (four eyes); any other answer
    /// (still needing review, a provider error, not checked) leaves the case open too. `None`:
    /// the case stays as it is.
    pub fn resolved_by_kyc(&self, result: &KycResult, now: Timestamp) -> Option<Case> {
        if self.status.is_closed() {
            return None;
        }
        let kyc_question = match self.reason {
            CaseReason::KycUnderReview | CaseReason::KycUploadFile | CaseReason::KycResubmitDetails => true,
            CaseReason::WatchlistMatch | CaseReason::Manual => false,
        };
        if !kyc_question {
            return None;
        }
        let status = match result.status() {
            KycStatus::Passed => CaseStatus::Approved,
            KycStatus::Rejected => CaseStatus::Rejected,
            KycStatus::ResubmitDetails
            | KycStatus::UploadFile
            | KycStatus::UnderReview
            | KycStatus::TemporaryError
            | KycStatus::NotChecked => return None,
        };
        Some(self.touched(status, now))
    }

    /// The KYC verdict a closed case hands to the cardholder.
    pub fn verdict(&self) -> Option<KycResult> {
        match self.status {
            CaseStatus::Approved => Some(KycResult::passed()),
            CaseStatus::Rejected => Some(KycResult::status_only(KycStatus::Rejected)),
            _ => None,
        }
    }
}

/// What a reviewer asking for files sets on the cardholder.
pub fn upload_file_verdict(reason: FileReason) -> KycResult {
    KycResult::new(KycStatus::UploadFile, None, None, Some(reason)).expect("UPLOAD_FILE may carry a reason")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("the case is closed")]
    Closed,
    #[error("the next step needs a {}", expected.as_str())]
    WrongRole { expected: OperatorRole },
    #[error("one person may approve one step of a case (four eyes)")]
    SamePersonTwice,
    #[error("the approval chain has started; documents can no longer be requested")]
    ApprovalInProgress,
}

impl CaseError {
    pub fn code(&self) -> &'static str {
        match self {
            CaseError::Closed => "case_closed",
            CaseError::WrongRole { .. } => "approval_role_required",
            CaseError::SamePersonTwice => "four_eyes_required",
            CaseError::ApprovalInProgress => "case_approval_in_progress",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::people::{SignInGuard, TenantRole};

    fn person(role: Role) -> Person {
        Person {
            id: UserId::generate(),
            email: "x@example.com".into(),
            name: "X".into(),
            role,
            tenant_id: None,
            disabled: false,
            mfa_enabled: true,
            guard: SignInGuard::default(),
            created_at: Timestamp::from_micros(0),
            last_login_at: None,
        }
    }

    fn case(reason: CaseReason) -> Case {
        Case::open(
            &TenantId::generate(),
            Environment::Sandbox,
            &CardholderId::generate(),
            None,
            reason,
            ApprovalChain::platform_default(reason.trigger()),
            None,
            Timestamp::from_micros(1_000_000),
        )
    }

    const T: Timestamp = Timestamp::from_micros(2_000_000);

    #[test]
    fn kyc_verdicts_that_need_a_person_open_cases() {
        use crate::kyc::AddressReason;
        let watch = KycResult::new(KycStatus::Rejected, Some(IdentityReason::WatchlistMatch), None, None).unwrap();
        assert_eq!(CaseReason::for_kyc(&watch), Some(CaseReason::WatchlistMatch));
        let review = KycResult::new(KycStatus::UnderReview, None, Some(AddressReason::Risky), None).unwrap();
        assert_eq!(CaseReason::for_kyc(&review), Some(CaseReason::KycUnderReview));
        assert_eq!(CaseReason::for_kyc(&KycResult::passed()), None);
        assert_eq!(
            CaseReason::for_kyc(&KycResult::status_only(KycStatus::TemporaryError)),
            None
        );
    }

    #[test]
    fn a_final_kyc_answer_closes_a_case_opened_only_for_kyc() {
        let passed = KycResult::passed();
        let rejected = KycResult::status_only(KycStatus::Rejected);
        for reason in [
            CaseReason::KycResubmitDetails,
            CaseReason::KycUploadFile,
            CaseReason::KycUnderReview,
        ] {
            let closed = case(reason).resolved_by_kyc(&passed, T).unwrap();
            assert_eq!(
                (closed.status, closed.closed_at, closed.version),
                (CaseStatus::Approved, Some(T), 2)
            );
            assert_eq!(closed.next_step(), None);
            let closed = case(reason).resolved_by_kyc(&rejected, T).unwrap();
            assert_eq!(closed.status, CaseStatus::Rejected);
            // Answers that still need someone leave the case open.
            for open in [
                KycStatus::ResubmitDetails,
                KycStatus::UploadFile,
                KycStatus::UnderReview,
                KycStatus::TemporaryError,
                KycStatus::NotChecked,
            ] {
                assert_eq!(case(reason).resolved_by_kyc(&KycResult::status_only(open), T), None);
            }
        }
        // A watchlist match and an operator's own case stay with a person.
        assert_eq!(case(CaseReason::WatchlistMatch).resolved_by_kyc(&passed, T), None);
        assert_eq!(case(CaseReason::Manual).resolved_by_kyc(&passed, T), None);
        // A closed case stays closed.
        let closed = case(CaseReason::KycUploadFile).resolved_by_kyc(&rejected, T).unwrap();
        assert_eq!(closed.resolved_by_kyc(&passed, T), None);
    }

    #[test]
    fn watchlist_needs_two_different_people_in_order() {
        let c = case(CaseReason::WatchlistMatch);
        let officer = person(Role::Operator(OperatorRole::ComplianceOfficer));
        let admin = person(Role::Operator(OperatorRole::Admin));
        assert_eq!(
            c.decide(&admin, Decision::Approve, None, T),
            Err(CaseError::WrongRole {
                expected: OperatorRole::ComplianceOfficer
            })
        );
        let c = c.decide(&officer, Decision::Approve, None, T).unwrap();
        assert_eq!(c.status, CaseStatus::PendingApproval);
        assert_eq!(c.verdict(), None);
        assert_eq!(
            c.decide(&officer, Decision::Approve, None, T),
            Err(CaseError::WrongRole {
                expected: OperatorRole::Admin
            })
        );
        let c = c.decide(&admin, Decision::Approve, Some("ok".into()), T).unwrap();
        assert_eq!(c.status, CaseStatus::Approved);
        assert_eq!(c.closed_at, Some(T));
        assert_eq!(c.verdict(), Some(KycResult::passed()));
        assert_eq!(c.decide(&admin, Decision::Approve, None, T), Err(CaseError::Closed));
    }

    #[test]
    fn one_person_cannot_fill_two_steps_even_with_the_right_roles() {
        let chain = ApprovalChain::new(vec![OperatorRole::Admin, OperatorRole::Admin], 24).unwrap();
        let mut c = case(CaseReason::Manual);
        c.chain = chain;
        let admin = person(Role::Operator(OperatorRole::Admin));
        let c = c.decide(&admin, Decision::Approve, None, T).unwrap();
        assert_eq!(
            c.decide(&admin, Decision::Approve, None, T),
            Err(CaseError::SamePersonTwice)
        );
        let other = person(Role::Operator(OperatorRole::Admin));
        assert_eq!(
            c.decide(&other, Decision::Approve, None, T).unwrap().status,
            CaseStatus::Approved
        );
    }

    #[test]
    fn a_rejection_closes_at_any_step() {
        let c = case(CaseReason::KycUnderReview);
        let officer = person(Role::Operator(OperatorRole::ComplianceOfficer));
        let c = c.decide(&officer, Decision::Reject, None, T).unwrap();
        assert_eq!(c.status, CaseStatus::Rejected);
        assert_eq!(c.verdict().unwrap().status(), KycStatus::Rejected);
    }

    #[test]
    fn only_deciding_roles_in_chains_and_not_tenant_people() {
        assert_eq!(
            ApprovalChain::new(vec![OperatorRole::Support], 24),
            Err(ChainError::RoleCannotDecide)
        );
        assert_eq!(ApprovalChain::new(vec![], 24), Err(ChainError::StepCount));
        assert_eq!(ApprovalChain::new(vec![OperatorRole::Admin], 0), Err(ChainError::Sla));
        let c = case(CaseReason::Manual);
        let owner = person(Role::Tenant(TenantRole::Owner));
        assert!(c.decide(&owner, Decision::Approve, None, T).is_err());
        let mut disabled = person(Role::Operator(OperatorRole::ComplianceOfficer));
        disabled.disabled = true;
        assert!(c.decide(&disabled, Decision::Approve, None, T).is_err());
    }

    #[test]
    fn documents_move_a_case_between_queue_and_waiting() {
        let c = case(CaseReason::KycUploadFile);
        let waiting = c.request_documents(T).unwrap();
        assert_eq!(waiting.status, CaseStatus::AwaitingDocuments);
        assert_eq!(waiting.document_received(T).unwrap().status, CaseStatus::Open);
        let officer = person(Role::Operator(OperatorRole::ComplianceOfficer));
        let done = c.decide(&officer, Decision::Approve, None, T).unwrap();
        assert_eq!(done.request_documents(T), Err(CaseError::Closed));
        assert_eq!(done.assign(None, T), Err(CaseError::Closed));
    }

    #[test]
    fn sla_timer() {
        let c = case(CaseReason::Manual);
        assert_eq!(c.due_at, Timestamp::from_micros(1_000_000).plus_secs(24 * 3600));
        assert!(!c.overdue(c.due_at));
        assert!(c.overdue(c.due_at.plus_secs(1)));
    }
}
