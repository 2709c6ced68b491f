//! Where a template category may not go, kept as data (issue 18): checked before each send
//! with the other checks (R4.2), so a message Meta would refuse for the recipient's country
//! is recorded as not sent, with the rule's reason, instead of being tried.

use super::campaign::Campaign;
use super::eligibility::{self, ContactFacts, Verdict};
use super::hopper::EntryState;
use super::outcome::MARKETING_OPT_OUT_REASON;
use super::phone::PhoneNumber;
use super::template::Category;
use super::Time;

/// The reason an entry a country rule stopped carries (statistics group by it).
pub const COUNTRY_RULE_REASON: &str = "country rule";

/// One rule: templates of `category` are not delivered to numbers of `region` (ISO 3166-1,
/// as libphonenumber assigns it from the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryRule {
    pub region: &'static str,
    pub category: Category,
    /// The error recorded on the entry.
    pub error: &'static str,
}

/// The rules in force. +1 is shared by the US, Canada and the Caribbean; Meta's rule names
/// US numbers, so it matches the region, not the calling code.
pub const RULES: &[CountryRule] = &[CountryRule {
    region: "US",
    category: Category::Marketing,
    error: "Meta has not delivered MARKETING templates to US (+1) numbers since 1 April 2025",
}];

/// The rule of `rules` that stops a `category` template to `phone`, as the checks' verdict.
pub fn refusal(rules: &[CountryRule], category: Category, phone: &PhoneNumber) -> Option<Verdict> {
    let region = phone.region()?;
    rules
        .iter()
        .find(|r| r.category == category && r.region == region)
        .map(|r| Verdict::NotSent {
            state: EntryState::Skipped,
            reason: COUNTRY_RULE_REASON,
            error: Some(r.error.to_owned()),
        })
}

/// Everything that decides whether this contact gets a `category` template now: the
/// checks of R4.2 ([`eligibility::check`]), then the contact's marketing opt-out (MARKETING
/// templates only), then where the category may not go.
pub fn check_send(
    campaign: &Campaign,
    category: Category,
    phone: &PhoneNumber,
    facts: &ContactFacts,
    now: Time,
) -> Verdict {
    match eligibility::check(campaign, phone, facts, now) {
        Verdict::Send if category == Category::Marketing && facts.marketing_opted_out => {
            Verdict::NotSent {
                state: EntryState::BlockList,
                reason: MARKETING_OPT_OUT_REASON,
                error: Some("the contact stopped marketing messages from this business".into()),
            }
        }
        Verdict::Send => refusal(RULES, category, phone).unwrap_or(Verdict::Send),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(p: &str) -> PhoneNumber {
        PhoneNumber::parse(p).unwrap()
    }

    #[test]
    fn no_marketing_template_goes_to_a_us_number() {
        let us = phone("+1 212 555 0142");
        let refused = refusal(RULES, Category::Marketing, &us);
        assert!(
            matches!(
                refused,
                Some(Verdict::NotSent {
                    state: EntryState::Skipped,
                    reason: COUNTRY_RULE_REASON,
                    ..
                })
            ),
            "{refused:?}"
        );
        // Utility and authentication templates still go; other countries are untouched,
        // Canada's +1 numbers included.
        assert_eq!(refusal(RULES, Category::Utility, &us), None);
        assert_eq!(refusal(RULES, Category::Authentication, &us), None);
        assert_eq!(
            refusal(RULES, Category::Marketing, &phone("+1 416 555 0199")),
            None
        );
        assert_eq!(
            refusal(RULES, Category::Marketing, &phone("+91 98123 45678")),
            None
        );
    }
}
