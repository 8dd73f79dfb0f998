//! What a cardholder may dispute for, and the reason code each carries on each network.

use crate::program::Network;

crate::wire_enum!(DisputeReason {
    FraudCardPresent => "fraud_card_present",
    FraudCardNotPresent => "fraud_card_not_present",
    NoAuthorization => "no_authorization",
    DeclinedAuthorization => "declined_authorization",
    DuplicateProcessing => "duplicate_processing",
    IncorrectAmount => "incorrect_amount",
    LatePresentment => "late_presentment",
    NotReceived => "merchandise_not_received",
    NotAsDescribed => "not_as_described",
    CancelledRecurring => "cancelled_recurring",
    RefundNotProcessed => "refund_not_processed",
    Cancelled => "cancelled",
    AtmMisdispense => "atm_misdispense",
    Other => "other",
});

crate::wire_enum!(ReasonFamily {
    Fraud => "fraud",
    Authorization => "authorization",
    ProcessingError => "processing_error",
    ConsumerDispute => "consumer_dispute",
    Atm => "atm",
    Other => "other",
});

impl DisputeReason {
    pub fn family(self) -> ReasonFamily {
        use DisputeReason as R;
        match self {
            R::FraudCardPresent | R::FraudCardNotPresent => ReasonFamily::Fraud,
            R::NoAuthorization | R::DeclinedAuthorization => ReasonFamily::Authorization,
            R::DuplicateProcessing | R::IncorrectAmount | R::LatePresentment => ReasonFamily::ProcessingError,
            R::NotReceived | R::NotAsDescribed | R::CancelledRecurring | R::RefundNotProcessed | R::Cancelled => {
                ReasonFamily::ConsumerDispute
            }
            R::AtmMisdispense => ReasonFamily::Atm,
            R::Other => ReasonFamily::Other,
        }
    }

    /// The reason code the chargeback carries on the card's network (Visa dispute conditions,
    /// Mastercard message reason codes).
    pub fn network_code(self, network: Network) -> &'static str {
        use DisputeReason as R;
        match (network, self) {
            (Network::Visa, R::FraudCardPresent) => "10.1",
            (Network::Visa, R::FraudCardNotPresent) => "10.4",
            (Network::Visa, R::NoAuthorization) => "11.2",
            (Network::Visa, R::DeclinedAuthorization) => "11.3",
            (Network::Visa, R::LatePresentment) => "12.1",
            (Network::Visa, R::IncorrectAmount) => "12.5",
            (Network::Visa, R::DuplicateProcessing) => "12.6.1",
            (Network::Visa, R::NotReceived) => "13.1",
            (Network::Visa, R::CancelledRecurring) => "13.2",
            (Network::Visa, R::NotAsDescribed) => "13.3",
            (Network::Visa, R::RefundNotProcessed) => "13.6",
            (Network::Visa, R::Cancelled) => "13.7",
            (Network::Visa, R::AtmMisdispense) => "13.9",
            (Network::Visa, R::Other) => "13.9",
            (Network::Mastercard, R::FraudCardPresent | R::FraudCardNotPresent) => "4837",
            (Network::Mastercard, R::NoAuthorization | R::DeclinedAuthorization) => "4808",
            (Network::Mastercard, R::DuplicateProcessing | R::IncorrectAmount | R::LatePresentment) => "4834",
            (
                Network::Mastercard,
                R::NotReceived | R::NotAsDescribed | R::CancelledRecurring | R::RefundNotProcessed | R::Cancelled,
            ) => "4853",
            (Network::Mastercard, R::AtmMisdispense) => "4834",
            (Network::Mastercard, R::Other) => "4853",
        }
    }
}
