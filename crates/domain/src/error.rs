/// A request field that failed to parse, named by its JSON path (`address.postal_code`) so the
/// API can return it as `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct FieldError {
    pub param: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(param: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            code,
            message: message.into(),
        }
    }

    pub fn missing(param: impl Into<String>) -> Self {
        let param = param.into();
        let message = format!("`{param}` is required");
        Self {
            param,
            code: "parameter_missing",
            message,
        }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(param, "parameter_invalid", message)
    }
}
