//! Contacts and lists (R2.1, R2.2 subset).

use super::account::required;
use super::phone::PhoneNumber;
use super::template::ContactData;
use super::{new_id, DomainError, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub tenant: String,
    pub phone: PhoneNumber,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub updated_at: Time,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewContact {
    pub phone: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

impl Contact {
    pub fn create(tenant: &str, input: NewContact, now: Time) -> Result<Self, DomainError> {
        let phone = PhoneNumber::parse(&required("phone", input.phone)?)?;
        if let Some(email) = &input.email {
            if !email.contains('@') {
                return Err(DomainError::invalid("email", "is not an e-mail address"));
            }
        }
        Ok(Contact {
            tenant: tenant.to_owned(),
            phone,
            name: input.name.filter(|n| !n.trim().is_empty()),
            email: input.email,
            fields: input.fields,
            updated_at: now,
        })
    }

    /// What a template may use of this contact.
    pub fn data(&self) -> ContactData {
        ContactData {
            name: self.name.clone(),
            fields: self.fields.clone(),
            valued_tags: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactList {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub created_at: Time,
}

impl ContactList {
    pub fn create(tenant: &str, name: Option<String>, now: Time) -> Result<Self, DomainError> {
        Ok(ContactList {
            id: new_id("lst"),
            tenant: tenant.to_owned(),
            name: required("name", name)?,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_1_contact_phone_is_normalised_on_create() {
        let c = Contact::create(
            "t",
            NewContact {
                phone: Some("+91 98123 45678".into()),
                name: Some("Asha".into()),
                email: None,
                fields: BTreeMap::new(),
            },
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(c.phone.as_str(), "919812345678");
        let err = Contact::create(
            "t",
            NewContact {
                phone: None,
                name: None,
                email: None,
                fields: BTreeMap::new(),
            },
            chrono::Utc::now(),
        )
        .unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field, .. } if field == "phone"));
    }
}
