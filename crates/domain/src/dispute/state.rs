//! Where a case is in the network's cycle, and the one place that says which step may follow which.

crate::wire_enum!(DisputeStatus {
    New => "new",
    PendingCustomer => "pending_customer",
    Submitted => "submitted",
    Representment => "representment",
    PreArbitration => "pre_arbitration",
    Arbitration => "arbitration",
    Closed => "closed",
});

crate::wire_enum!(Disposition {
    Won => "won",
    Lost => "lost",
    PartiallyWon => "partially_won",
    Withdrawn => "withdrawn",
    Denied => "denied",
});

/// What moves a dispute along: the issuer's (operators') steps and the network's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeEvent {
    /// Ask the custodian (cardholder) for evidence.
    RequestEvidence,
    /// The evidence asked for came in.
    EvidenceReceived,
    /// Send the chargeback to the network.
    Submit,
    /// The merchant accepted the chargeback.
    MerchantAccepted,
    /// The merchant answered with a representment.
    Represented,
    /// The issuer accepts the representment: the cardholder loses.
    AcceptRepresentment,
    /// The issuer answers the representment with a pre-arbitration.
    PreArbitrate,
    /// The merchant accepted the pre-arbitration.
    PreArbitrationAccepted,
    /// The pre-arbitration was declined: the issuer takes it to arbitration.
    Arbitrate,
    /// The network ruled.
    Ruled(Ruling),
    /// The cardholder withdrew the claim.
    Withdraw,
    /// The issuer denies the claim before it reaches the network.
    Deny,
    /// Regulation E's resolution deadline passed with the case open: the cardholder keeps the
    /// credit for good (the program bears it).
    ResolutionDeadlinePassed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling {
    ForCardholder,
    ForMerchant,
    /// Part of the disputed amount (minor units) is recovered.
    Partly(i64),
}

/// Where a dispute is: its status, and once closed how it ended and for how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisputeState {
    pub status: DisputeStatus,
    pub disposition: Option<Disposition>,
    /// What the cardholder recovers (set when closed).
    pub recovered: Option<i64>,
}

/// An illegal step, each with its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalDisputeTransition {
    #[error("the dispute is closed")]
    Closed,
    #[error("the dispute is not waiting for evidence")]
    NotAwaitingEvidence,
    #[error("the dispute has already been submitted to the network")]
    AlreadySubmitted,
    #[error("the dispute is not with the network")]
    NotSubmitted,
    #[error("the merchant has not answered with a representment")]
    NoRepresentment,
    #[error("the dispute is not in pre-arbitration")]
    NotInPreArbitration,
    #[error("the dispute is not in arbitration")]
    NotInArbitration,
    #[error("a partial ruling recovers more than nothing and less than the disputed amount")]
    PartialRulingAmount,
}

impl IllegalDisputeTransition {
    pub fn code(self) -> &'static str {
        use IllegalDisputeTransition as X;
        match self {
            X::Closed => "dispute_closed",
            X::NotAwaitingEvidence => "dispute_not_awaiting_evidence",
            X::AlreadySubmitted => "dispute_already_submitted",
            X::NotSubmitted => "dispute_not_submitted",
            X::NoRepresentment => "dispute_not_in_representment",
            X::NotInPreArbitration => "dispute_not_in_pre_arbitration",
            X::NotInArbitration => "dispute_not_in_arbitration",
            X::PartialRulingAmount => "dispute_partial_amount_invalid",
        }
    }
}

impl DisputeState {
    pub fn new() -> Self {
        DisputeState {
            status: DisputeStatus::New,
            disposition: None,
            recovered: None,
        }
    }

    fn closed(disposition: Disposition, recovered: i64) -> Self {
        DisputeState {
            status: DisputeStatus::Closed,
            disposition: Some(disposition),
            recovered: Some(recovered),
        }
    }

    /// The one place that says which step may follow which: every (status, event) pair is
    /// decided here, none by default.
    pub fn apply(self, event: DisputeEvent, disputed: i64) -> Result<DisputeState, IllegalDisputeTransition> {
        use DisputeEvent as E;
        use DisputeStatus as S;
        use IllegalDisputeTransition as X;
        let to = |status| {
            Ok(DisputeState {
                status,
                disposition: None,
                recovered: None,
            })
        };
        match (self.status, event) {
            (S::Closed, _) => Err(X::Closed),
            (S::New, E::RequestEvidence) => to(S::PendingCustomer),
            (S::PendingCustomer, E::EvidenceReceived) => to(S::New),
            (S::New | S::PendingCustomer, E::Submit) => to(S::Submitted),
            (S::New | S::PendingCustomer, E::Deny) => Ok(Self::closed(Disposition::Denied, 0)),
            (_, E::Withdraw) => Ok(Self::closed(Disposition::Withdrawn, 0)),
            (_, E::ResolutionDeadlinePassed) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::Submitted, E::MerchantAccepted) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::Submitted, E::Represented) => to(S::Representment),
            (S::Representment, E::AcceptRepresentment) => Ok(Self::closed(Disposition::Lost, 0)),
            (S::Representment, E::PreArbitrate) => to(S::PreArbitration),
            (S::PreArbitration, E::PreArbitrationAccepted) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::PreArbitration, E::Arbitrate) => to(S::Arbitration),
            (S::Arbitration, E::Ruled(Ruling::ForCardholder)) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::Arbitration, E::Ruled(Ruling::ForMerchant)) => Ok(Self::closed(Disposition::Lost, 0)),
            (S::Arbitration, E::Ruled(Ruling::Partly(amount))) if amount > 0 && amount < disputed => {
                Ok(Self::closed(Disposition::PartiallyWon, amount))
            }
            (S::Arbitration, E::Ruled(Ruling::Partly(_))) => Err(X::PartialRulingAmount),
            (S::New | S::Submitted | S::Representment | S::PreArbitration | S::Arbitration, E::EvidenceReceived) => {
                Err(X::NotAwaitingEvidence)
            }
            (
                S::PendingCustomer | S::Submitted | S::Representment | S::PreArbitration | S::Arbitration,
                E::RequestEvidence,
            ) => Err(X::AlreadySubmitted),
            (S::Submitted | S::Representment | S::PreArbitration | S::Arbitration, E::Submit | E::Deny) => {
                Err(X::AlreadySubmitted)
            }
            (S::New | S::PendingCustomer, E::MerchantAccepted | E::Represented) => Err(X::NotSubmitted),
            (S::Representment | S::PreArbitration | S::Arbitration, E::MerchantAccepted | E::Represented) => {
                Err(X::NotSubmitted)
            }
            (
                S::New | S::PendingCustomer | S::Submitted | S::PreArbitration | S::Arbitration,
                E::AcceptRepresentment | E::PreArbitrate,
            ) => Err(X::NoRepresentment),
            (
                S::New | S::PendingCustomer | S::Submitted | S::Representment | S::Arbitration,
                E::PreArbitrationAccepted | E::Arbitrate,
            ) => Err(X::NotInPreArbitration),
            (S::New | S::PendingCustomer | S::Submitted | S::Representment | S::PreArbitration, E::Ruled(_)) => {
                Err(X::NotInArbitration)
            }
        }
    }
}

impl Default for DisputeState {
    fn default() -> Self {
        DisputeState::new()
    }
}
