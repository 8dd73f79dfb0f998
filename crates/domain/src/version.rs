//! Header-based API versioning (`Cardplane-Version: 2026-11-01`). A tenant is pinned to the
//! version current when it was created; a request may ask for any supported version.

/// Supported versions, oldest first. The last is the current one.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-11-01"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(&'static str);

impl ApiVersion {
    pub fn current() -> Self {
        ApiVersion(SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1])
    }

    pub fn parse(raw: &str) -> Option<Self> {
        SUPPORTED_VERSIONS.iter().find(|v| **v == raw).map(|v| ApiVersion(v))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}
