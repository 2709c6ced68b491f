use thiserror::Error;

/// Errors a business rule raises. The HTTP layer maps each variant to one status code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// Input that breaks a rule; `field` names the offending field for the client.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A lifecycle transition that the current state does not allow (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
    /// The field an `Invalid` error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            DomainError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        DomainError::NotFound {
            kind,
            id: id.into(),
        }
    }
}
