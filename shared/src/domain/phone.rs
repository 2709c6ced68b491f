//! Phone numbers in international form without '+' (R2.1).

use super::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A phone number normalised to digits only, international form, no '+'.
///
/// Parsing normalises what people type (`+91 98123-45678`, `0091 9812345678`,
/// `(415) 555 0100` with a country code) but does not judge whether the number can
/// receive messages: a short number is kept so the hopper can record why it was not sent
/// (R4.4). [`PhoneNumber::is_dialable`] answers that question.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Fewer digits than this cannot be a reachable number (R4.4).
pub const MIN_DIGITS: usize = 5;
/// E.164 allows at most 15 digits.
pub const MAX_DIGITS: usize = 15;

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        let mut digits = String::with_capacity(trimmed.len());
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' | '/' => {}
                _ => {
                    return Err(DomainError::invalid(
                        "phone",
                        format!(
                        "'{input}' contains '{c}'; use digits, spaces, dashes and a leading '+'"
                    ),
                    ))
                }
            }
        }
        let digits = digits
            .strip_prefix("00")
            .map(str::to_owned)
            .unwrap_or(digits);
        if digits.is_empty() {
            return Err(DomainError::invalid("phone", "must contain digits"));
        }
        if digits.len() > MAX_DIGITS {
            return Err(DomainError::invalid(
                "phone",
                format!(
                    "has {} digits; at most {MAX_DIGITS} are allowed",
                    digits.len()
                ),
            ));
        }
        Ok(PhoneNumber(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// At least [`MIN_DIGITS`] digits (R4.4).
    pub fn is_dialable(&self) -> bool {
        self.0.len() >= MIN_DIGITS
    }

    /// A form safe for logs: country code and the last two digits only.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        if n <= 4 {
            return "*".repeat(n);
        }
        format!("{}{}{}", &self.0[..2], "*".repeat(n - 4), &self.0[n - 2..])
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PhoneNumber::parse(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_1_phone_is_normalised_to_international_digits() {
        for input in [
            "+91 98123-45678",
            "0091 9812345678",
            "919812345678",
            " +91 (98123) 45678 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_str(),
                "919812345678",
                "{input}"
            );
        }
    }

    #[test]
    fn r2_1_phone_with_letters_is_rejected_naming_the_field() {
        let err = PhoneNumber::parse("+91 98x").unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "phone"));
        assert!(PhoneNumber::parse("").is_err());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
    }

    #[test]
    fn r4_4_short_phone_parses_but_is_not_dialable() {
        let p = PhoneNumber::parse("1234").unwrap();
        assert!(!p.is_dialable());
        assert!(PhoneNumber::parse("12345").unwrap().is_dialable());
    }

    #[test]
    fn masked_phone_hides_the_subscriber_digits() {
        assert_eq!(
            PhoneNumber::parse("919812345678").unwrap().masked(),
            "91********78"
        );
    }
}
