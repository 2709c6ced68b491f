//! Meta's own OpenAPI description of the Cloud API (`testkit/meta-openapi/`, MIT) as the
//! judge of what we send: every request body for `POST /{version}/{phone-number-id}/messages`
//! must validate against `#/components/schemas/Message`. The simulator refuses a body that
//! does not (Meta's error 100, naming the field), and `shared/tests/meta_conformance.rs`
//! holds the Meta adapter's bodies to it. Bodies for the Marketing Messages API
//! (`.../marketing_messages`) are held to `MarketingMessageRequestPayload` the same way.
//!
//! Meta's schema has defects of its own (its own template examples fail it as written).
//! [`relaxed`] applies exactly three relaxations, each undoing a defect rather than
//! loosening a rule Meta enforces:
//!
//! 1. `additionalProperties: false` on a member of an `allOf` (e.g. `TextMessage`'s second
//!    member): JSON Schema checks it against that member's own `properties` only, so it
//!    refuses the common properties the sibling `BaseMessageProperties` declares
//!    (`messaging_product`, `to`, ...) that every message carries.
//! 2. `LanguageObject.policy` listed as required: Meta's own examples and documentation send
//!    `{"code": "en_US"}` alone (`deterministic` is the only policy and the default).
//! 3. The button `index` pattern `^[2-6, 11-14]$`, a malformed character class that refuses
//!    `"0"`, the first button's index in Meta's own examples: it is `^[0-9]$` ("Position
//!    index of the button (0-9)", as its description says).

use jsonschema::Validator;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

const SPEC: &str = include_str!("../meta-openapi/business-messaging-api_v23.0.json");

/// The malformed button-index pattern (relaxation 3) and what it means.
pub const BROKEN_INDEX_PATTERN: &str = "^[2-6, 11-14]$";
pub const INDEX_PATTERN: &str = "^[0-9]$";

/// Meta's document, as published.
pub fn spec() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| serde_json::from_str(SPEC).expect("Meta's OpenAPI document is JSON"))
}

/// `spec` with the three relaxations of the module documentation applied.
pub fn relaxed(spec: &Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Array(members)) = o.get_mut("allOf") {
                    for m in members.iter_mut() {
                        if let Some(m) = m.as_object_mut() {
                            if m.get("additionalProperties") == Some(&Value::Bool(false)) {
                                m.remove("additionalProperties");
                            }
                        }
                    }
                }
                if o.get("pattern").and_then(Value::as_str) == Some(BROKEN_INDEX_PATTERN) {
                    o.insert("pattern".into(), Value::String(INDEX_PATTERN.into()));
                }
                o.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut s = spec.clone();
    walk(&mut s);
    if let Some(required) = s
        .pointer_mut("/components/schemas/LanguageObject/required")
        .and_then(Value::as_array_mut)
    {
        required.retain(|r| r != "policy");
    }
    s
}

/// A validator of `#/components/schemas/<name>` in `spec`.
pub fn validator_of(spec: &Value, name: &str) -> Validator {
    let root = serde_json::json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": {"schemas": spec["components"]["schemas"].clone()},
    });
    jsonschema::draft202012::options()
        .should_validate_formats(false)
        .build(&root)
        .unwrap_or_else(|e| panic!("Meta's schema {name} compiles: {e}"))
}

/// One way a body breaks the schema: where (a JSON pointer into the body) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// How `body` breaks `#/components/schemas/Message` (relaxed), most precise first: a body
/// whose `type` names a message kind is checked against that kind's schema (the
/// discriminator's mapping), so the violations name the field at fault rather than
/// "no branch of oneOf matched".
pub fn violations(body: &Value) -> Vec<Violation> {
    static BY_KIND: OnceLock<HashMap<String, Validator>> = OnceLock::new();
    static MESSAGE: OnceLock<Validator> = OnceLock::new();
    let by_kind = BY_KIND.get_or_init(|| {
        let spec = relaxed(spec());
        let mapping = spec["components"]["schemas"]["Message"]["discriminator"]["mapping"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        mapping
            .iter()
            .filter_map(|(kind, r)| {
                let name = r.as_str()?.rsplit('/').next()?.to_owned();
                Some((kind.clone(), validator_of(&spec, &name)))
            })
            .collect()
    });
    let validator = match body.get("type").and_then(Value::as_str) {
        Some(kind) if by_kind.contains_key(kind) => &by_kind[kind],
        _ => MESSAGE.get_or_init(|| validator_of(&relaxed(spec()), "Message")),
    };
    validator
        .iter_errors(body)
        .map(|e| Violation {
            path: e.instance_path.to_string(),
            message: e.to_string(),
        })
        .collect()
}

/// How `body` breaks `#/components/schemas/MarketingMessageRequestPayload` (relaxed), the
/// body of `POST /{version}/{phone-number-id}/marketing_messages` (Meta's Marketing
/// Messages API): a template message and nothing else (no callback data).
pub fn marketing_violations(body: &Value) -> Vec<Violation> {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| validator_of(&relaxed(spec()), "MarketingMessageRequestPayload"))
        .iter_errors(body)
        .map(|e| Violation {
            path: e.instance_path.to_string(),
            message: e.to_string(),
        })
        .collect()
}
