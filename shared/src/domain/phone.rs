//! Phone numbers in international form without '+' (R2.1).

use super::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A number in E.164 as providers take it: `+` and 8 to 15 digits.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A phone number normalised to digits only, international form, no '+'.
///
/// Parsing normalises what people type (`+91 98123-45678`, `0091 9812345678`,
/// `(415) 555 0100` with a country code; a doubled `00` prefix is refused, so the normal
/// form never starts with `00` and parses back to itself) but does not judge whether the
/// number can receive messages: a short number is kept so the hopper can record why it
/// was not sent (R4.4). [`PhoneNumber::is_dialable`] answers that question.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "919812345678")]
pub struct PhoneNumber(String);

/// Fewer digits than this cannot be a reachable number (R4.4).
pub const MIN_DIGITS: usize = 5;
/// E.164 allows at most 15 digits.
pub const MAX_DIGITS: usize = 15;

/// The error text of a number with fewer than five digits (R4.4), verbatim: on the
/// contact that has it and on its hopper entries.
pub fn short_phone_error(phone: &PhoneNumber) -> String {
    format!(
        "Contact with invalid phone number: {phone}. The phone number should have at least {MIN_DIGITS} digits."
    )
}

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
        // `00` is the international prefix (as `+` is): what follows is the country code,
        // which never starts with 0. A second `00` is a doubled prefix; it is refused rather
        // than guessed at, and refusing it keeps the normal form a fixed point (a stored
        // number never starts with `00`, so parsing it again gives it back unchanged).
        let digits = match digits.strip_prefix("00") {
            Some("") => {
                return Err(DomainError::invalid(
                    "phone",
                    format!(
                        "'{input}' is only the international prefix 00; \
                         add the country code and number"
                    ),
                ))
            }
            Some(rest) if rest.starts_with("00") => {
                return Err(DomainError::invalid(
                    "phone",
                    format!(
                        "'{input}' repeats the international prefix 00; \
                         write it once (0091…) or use a leading '+' (+91…)"
                    ),
                ))
            }
            Some(rest) => rest.to_owned(),
            None => digits,
        };
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

    /// Checks the number against libphonenumber's metadata for its country (the
    /// `phonenumber` crate): the length and prefixes must be ones the country assigns.
    /// The contacts API and the CSV import reject numbers that fail this; the hopper does
    /// not ask (a stored number that is not dialable is recorded there, R4.4). `field`
    /// names the input in the error (`phone`, `mobile`, `contacts[2].phone`).
    pub fn check_valid(&self, field: &str) -> Result<(), DomainError> {
        self.validate(field).map(|_| ())
    }

    /// [`Self::check_valid`] and [`Self::region`] with one libphonenumber parse: the
    /// region of a valid number.
    pub fn validate(&self, field: &str) -> Result<Option<String>, DomainError> {
        match self.libphonenumber() {
            Some(n) if n.is_valid() => Ok(n.country().id().map(|id| id.as_ref().to_owned())),
            Some(n) => Err(DomainError::invalid(
                field,
                match n.country().id() {
                    Some(id) => format!(
                        "+{} is not a valid number for {} (country code +{})",
                        self.0,
                        id.as_ref(),
                        n.code().value()
                    ),
                    None => format!("+{} is not a valid phone number", self.0),
                },
            )),
            None => Err(DomainError::invalid(
                field,
                format!("+{} is not a valid phone number", self.0),
            )),
        }
    }

    /// Parses what a person typed and checks it is a valid number ([`Self::check_valid`]);
    /// errors name `field`.
    pub fn parse_valid(input: &str, field: &str) -> Result<Self, DomainError> {
        let p = Self::parse(input).map_err(|e| match e {
            DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
            other => other,
        })?;
        p.check_valid(field)?;
        Ok(p)
    }

    /// The number's country as an ISO 3166-1 region code (`IN`, `US`, `GB`), as
    /// libphonenumber assigns it from the country code and the leading digits (so
    /// `+1 416…` is `CA`). `None` when the number fits no region (too short, unassigned
    /// code, or a non-geographic code such as +800). Calling hours use it.
    pub fn region(&self) -> Option<String> {
        self.libphonenumber()
            .and_then(|n| n.country().id())
            .map(|id| id.as_ref().to_owned())
    }

    fn libphonenumber(&self) -> Option<phonenumber::PhoneNumber> {
        if !self.is_dialable() {
            return None;
        }
        phonenumber::parse(None, format!("+{}", self.0)).ok()
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
    fn r2_1_doubled_international_prefix_is_rejected_naming_the_field() {
        for input in [
            "0000 91 98123 45678",
            "+0000919812345678",
            "0000",
            "00000",
            "00",
        ] {
            match PhoneNumber::parse(input) {
                Err(DomainError::Invalid { field, message }) => {
                    assert_eq!(field, "phone", "{input}");
                    assert!(
                        message.contains("international prefix 00"),
                        "{input}: {message}"
                    );
                }
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn r2_1_normal_form_reads_back_as_itself() {
        for input in [
            "0091 98123 45678",
            "+91 98123-45678",
            "000",
            "0 98123 45678",
            "+0 1234",
        ] {
            let p = PhoneNumber::parse(input).unwrap();
            assert_eq!(PhoneNumber::parse(p.as_str()), Ok(p.clone()), "{input}");
            let json = serde_json::to_value(&p).unwrap();
            assert_eq!(serde_json::from_value::<PhoneNumber>(json).unwrap(), p);
        }
    }

    #[test]
    fn r4_4_short_phone_parses_but_is_not_dialable() {
        let p = PhoneNumber::parse("1234").unwrap();
        assert!(!p.is_dialable());
        assert!(PhoneNumber::parse("12345").unwrap().is_dialable());
    }

    #[test]
    fn r2_1_invalid_number_for_its_country_is_rejected_naming_the_field() {
        // India's mobile numbers have ten digits after +91.
        assert!(PhoneNumber::parse_valid("+91 98123 45678", "phone").is_ok());
        let err = PhoneNumber::parse_valid("+91 98123 4567", "mobile").unwrap_err();
        match err {
            DomainError::Invalid { field, message } => {
                assert_eq!(field, "mobile");
                assert!(message.contains("not a valid number for IN"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Short numbers parse (the hopper keeps them, R4.4) but are not valid contacts.
        let short = PhoneNumber::parse("1234").unwrap();
        assert!(short.check_valid("phone").is_err());
        let err = PhoneNumber::parse_valid("+91 98x", "phone").unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "phone"));
        assert!(PhoneNumber::parse_valid("+999 1234567", "phone").is_err());
    }

    #[test]
    fn r2_1_region_is_computed_from_the_number() {
        let region = |s: &str| PhoneNumber::parse(s).unwrap().region();
        assert_eq!(region("+91 98123 45678").as_deref(), Some("IN"));
        assert_eq!(region("+44 20 7946 0958").as_deref(), Some("GB"));
        assert_eq!(region("+44 7400 123456").as_deref(), Some("GB"));
        assert!(PhoneNumber::parse("+44 7400 123456")
            .unwrap()
            .check_valid("phone")
            .is_ok());
        assert_eq!(region("+1 202 555 0143").as_deref(), Some("US"));
        assert_eq!(region("+1 416 555 0143").as_deref(), Some("CA"));
        assert_eq!(region("1234"), None);
    }

    #[test]
    fn masked_phone_hides_the_subscriber_digits() {
        assert_eq!(
            PhoneNumber::parse("919812345678").unwrap().masked(),
            "91********78"
        );
    }
}
