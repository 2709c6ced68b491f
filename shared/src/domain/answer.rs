//! How a reply answers a campaign message: a quick-reply option, text, or no match, and
//! how typed text is compared with options and keywords. A leaf of the domain: entries,
//! conversations and tenants' opt-out keywords all use it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How an in-time reply answers the campaign's message (R5.2, R5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// One of the template's quick-reply options: tapped, or typed as its text.
    Option,
    /// Text to a template without quick-reply options.
    Text,
    /// Text matching none of the template's quick-reply options (an agent takes it).
    NoMatch,
}

/// How an in-time reply answers the campaign's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This quick-reply option (as the template names it, or the payload tapped).
    Option(String),
    /// Text to a template without quick-reply options.
    Text,
    /// Matches none of the template's quick-reply options (R5.3).
    NoMatch,
}

impl Answer {
    /// Classifies a reply against the options the message offered. A tapped button is an
    /// option whatever its payload; typed text is one when it equals an option's text
    /// (case, surrounding spaces and punctuation aside).
    pub fn of(text: Option<&str>, button: Option<&str>, options: &[String]) -> Answer {
        if let Some(b) = button.filter(|b| !b.trim().is_empty()) {
            let canonical = options
                .iter()
                .find(|o| normalise(o) == normalise(b))
                .cloned();
            return Answer::Option(canonical.unwrap_or_else(|| b.to_owned()));
        }
        if let Some(t) = text {
            if let Some(o) = options.iter().find(|o| normalise(o) == normalise(t)) {
                return Answer::Option(o.clone());
            }
        }
        if options.is_empty() {
            Answer::Text
        } else {
            Answer::NoMatch
        }
    }

    pub fn kind(&self) -> AnswerKind {
        match self {
            Answer::Option(_) => AnswerKind::Option,
            Answer::Text => AnswerKind::Text,
            Answer::NoMatch => AnswerKind::NoMatch,
        }
    }

    /// The option chosen, if any.
    pub fn option(&self) -> Option<&str> {
        match self {
            Answer::Option(o) => Some(o),
            _ => None,
        }
    }
}

/// Lower case, inner spaces collapsed, surrounding spaces and punctuation dropped: how a
/// typed reply is compared with options and keywords (`" Stop! "` is `stop`).
pub fn normalise(s: &str) -> String {
    s.trim_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
