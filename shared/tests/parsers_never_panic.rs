//! Property tests (proptest): the input parsers never panic, and every rejection is a
//! clear error (a message that says something, naming the field or the row where the API
//! has one).
//!
//! Each parser is driven through its public entry point:
//! - **Meta webhooks:** `providers::meta::parse_webhook` on arbitrary bytes, arbitrary
//!   JSON, generated webhook-shaped JSON, the real fixtures (`tests/fixtures/meta-webhooks`)
//!   and mutated fixtures; the signed route (`http::webhook::router`) and the queue format
//!   (`lambda::inbound_queue::QueuedWebhook`) that carry a body to the parser; Meta's
//!   template list answers (`providers::meta_templates::interpret_page`).
//! - **Kaleyra callbacks:** `parse_kaleyra_callback_received` on arbitrary bytes, JSON and
//!   callback-shaped JSON; the callback route's query (`http::webhook::kaleyra_router`);
//!   the token checks, `KaleyraSender::parse` and the callback data (`EntryRef`).
//! - **Phone numbers:** `PhoneNumber::parse` and what is asked of a parsed number.
//! - **CSV import:** `ColumnMap::from_header`/`row` and `NewContact::checked_key` (the
//!   row parser), whole files through `csv` as the importer reads them, and whole files
//!   through `Audience::import_inline` (the inline import, its parser thread included).
//! - **Templates:** `placeholder_count`, `Template::render`/`check_usable` on arbitrary
//!   bodies and variables, `Template::create` and `Template::edit` on arbitrary input.
//!
//! Failing inputs are not written to `proptest-regressions/` files
//! (`failure_persistence: None`): a real finding is kept as an explicit regression test
//! at the end of this file instead.

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Map, Value};
use shared::app::import::ImporterEvent;
use shared::app::{AppError, Operator, OperatorPorts};
use shared::domain::ids::TenantId;
use shared::domain::import::{
    check_mapping, object_key, parse_object_key, ColumnMap, ImportStatus,
};
use shared::domain::inbound::{EntryRef, Inbound, StatusKind};
use shared::domain::phone::{PhoneNumber, MAX_DIGITS};
use shared::domain::template::{
    placeholder_count, CallToAction, Category, ContactData, MediaHeader, MediaKind, NewTemplate,
    Quality, Template, TemplateEdit, TemplateStatus, VariableSource, MAX_BODY_CHARS,
};
use shared::domain::DomainError;
use shared::http::webhook::{
    kaleyra_router, router, KaleyraHookState, SinkError, WebhookSink, WebhookState,
};
use shared::lambda::inbound_queue::{
    json_text, DecodeError, QueuedWebhook, WebhookProvider, FORMAT_VERSION,
};
use shared::providers::kaleyra::{
    callback_token, parse_kaleyra_callback_received, verify_kaleyra_callback, verify_kaleyra_token,
    KaleyraSender,
};
use shared::providers::meta::{
    parse_webhook, signature_header, verify_handshake, verify_signature,
};
use shared::providers::meta_templates::{interpret_page, parse_template};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once, OnceLock};
use testkit::memory::{ManualClock, MemoryBus, MemoryScheduler, MemoryTable};
use tower::ServiceExt;

/// Cases per property: enough to reach the odd corners, few enough for a run of seconds.
const CASES: u32 = 256;
/// Cases of the properties that go through a route or a whole import (each case builds
/// its own in-memory state).
const SLOW_CASES: u32 = 96;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------------------
// Clear errors

/// A domain rejection says what is wrong: a non-empty field and message (or id, kind).
fn clear_domain(e: &DomainError) -> Result<(), TestCaseError> {
    match e {
        DomainError::Invalid { field, message } => {
            prop_assert!(!field.trim().is_empty(), "no field in {e:?}");
            prop_assert!(!message.trim().is_empty(), "no message in {e:?}");
        }
        DomainError::Conflict(m) => prop_assert!(!m.trim().is_empty(), "empty conflict"),
        DomainError::NotFound { kind, .. } => prop_assert!(!kind.is_empty()),
    }
    prop_assert!(!e.to_string().trim().is_empty());
    Ok(())
}

/// The field an `Invalid` error names, or a failed case.
fn invalid_field(e: &DomainError) -> Result<String, TestCaseError> {
    clear_domain(e)?;
    match e {
        DomainError::Invalid { field, .. } => Ok(field.clone()),
        other => Err(TestCaseError::fail(format!(
            "expected an invalid field, got {other:?}"
        ))),
    }
}

fn clear_text(what: &str, msg: &str) -> Result<(), TestCaseError> {
    prop_assert!(!msg.trim().is_empty(), "{what}: empty error message");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Strategies: JSON

/// Words the parsers look for, so generated values reach past the first `match`.
const WORDS: &[&str] = &[
    "whatsapp_business_account",
    "messages",
    "message_template_status_update",
    "message_template_quality_update",
    "user_preferences",
    "sent",
    "delivered",
    "read",
    "failed",
    "played",
    "SENT",
    "Delivered",
    "READ",
    "FAILED",
    "NOT-SENT",
    "not_sent",
    "NOTSENT",
    "group",
    "individual",
    "APPROVED",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "PENDING",
    "FLAGGED",
    "REINSTATED",
    "GREEN",
    "yellow",
    "RED",
    "UNKNOWN",
    "HIGH",
    "NONE",
    "WA200",
    "E413",
    "WA500",
    "RBC001",
    "131026",
    "131000",
    "1700000000",
    "-1",
    "0",
    " 42 ",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999",
    "1e3",
    "2026-03-01T09:00:00Z",
    "2026-03-01T09:00:00+05:30",
    "+262143-12-31T23:59:59Z",
    "ce1|acme|cmp_1|3|919812345678",
    "ce1|acme|cmp_1|3|919812345678|2",
    "ce1|acme|cmp_1|99999|919812345678",
    "ce1|a|b|1|0000|1",
    "ce1||||",
    "ce1|a|b|1|+91 98123-45678|4294967296",
    "+91 98123-45678",
    "0000",
    "",
    " ",
    "en",
    "en_US",
    "spring_offer",
    "(#131000) Something went wrong",
];

/// Object keys: every field name the Meta and Kaleyra parsers read, and a few others.
const KEYS: &[&str] = &[
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "display_phone_number",
    "statuses",
    "messages",
    "status",
    "timestamp",
    "recipient_id",
    "recipient_type",
    "biz_opaque_callback_data",
    "errors",
    "code",
    "title",
    "message",
    "error_data",
    "details",
    "from",
    "context",
    "text",
    "body",
    "button",
    "payload",
    "interactive",
    "button_reply",
    "list_reply",
    "type",
    "event",
    "message_template_id",
    "message_template_name",
    "message_template_language",
    "reason",
    "rejection_info",
    "other_info",
    "description",
    "new_quality_score",
    "message_id",
    "extra_info",
    "ref",
    "meta_object",
    "error",
    "error_code",
    "created_at",
    "data",
    "paging",
    "cursors",
    "after",
    "next",
    "name",
    "language",
    "components",
    "buttons",
    "",
];

fn word() -> BoxedStrategy<String> {
    select(WORDS).prop_map(str::to_owned).boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => word(),
        2 => any::<String>(),
        1 => "[ -~]{0,16}",
        1 => "[0-9]{1,24}",
    ]
    .boxed()
}

fn json_key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(KEYS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}

fn json_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        (1_500_000_000i64..1_900_000_000).prop_map(Value::from),
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        text().prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value, at most 4 levels deep.
fn arb_json() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(json_key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Mostly `s`, sometimes any JSON at all (a field of the wrong type).
fn or_any(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![12 => s, 1 => arb_json()].boxed()
}

fn string(s: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    s.prop_map(Value::String).boxed()
}

/// A time or a number as providers spell it: epoch seconds (number or string), RFC 3339,
/// or anything else.
fn numberish() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => json_number(),
        2 => any::<i64>().prop_map(|n| Value::String(n.to_string())),
        1 => string("[0-9]{1,24}".boxed()),
        1 => string(word()),
        1 => arb_json(),
    ]
    .boxed()
}

/// Callback data: ours (`ce1|tenant|campaign|shard|phone[|attempt]`) with odd parts, or
/// anything else.
fn entry_ref_text() -> BoxedStrategy<String> {
    let part = || {
        prop_oneof![
            "[a-z0-9_-]{0,8}",
            "[0-9]{1,12}",
            Just("-1".to_owned()),
            any::<String>()
        ]
    };
    prop_oneof![
        3 => (part(), part(), part(), phone_input(), proptest::option::of(part())).prop_map(
            |(t, c, s, p, a)| match a {
                Some(a) => format!("ce1|{t}|{c}|{s}|{p}|{a}"),
                None => format!("ce1|{t}|{c}|{s}|{p}"),
            }
        ),
        1 => text(),
    ]
    .boxed()
}

/// An object with each of `fields` present most of the time, plus an unknown field or two
/// (never one of `fields`: those keep the type their strategy gives).
fn obj(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let names: Vec<&'static str> = fields.iter().map(|(k, _)| *k).collect();
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, s)| {
            proptest::option::weighted(0.93, s.prop_map(move |v| (k.to_owned(), v))).boxed()
        })
        .collect();
    (parts, btree_map(json_key(), json_leaf(), 0..2))
        .prop_map(move |(parts, extra)| {
            let mut m: Map<String, Value> = extra
                .into_iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .collect();
            for (k, v) in parts.into_iter().flatten() {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// An array of 1 to `max - 1` items, sometimes empty.
fn array(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop_oneof![
        7 => vec(item, 1..max).prop_map(Value::Array),
        1 => Just(Value::Array(vec![])),
    ]
    .boxed()
}

/// Mostly one of `words` (what the parser accepts), else a word or any JSON.
fn one_of(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        8 => select(words).prop_map(|s| Value::String(s.to_owned())),
        1 => string(word()),
        1 => arb_json(),
    ]
    .boxed()
}

/// A message id: Meta's shape mostly, else anything.
fn message_id() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => string("wamid\\.[A-Za-z0-9=]{1,16}".boxed()),
        1 => string(text()),
        1 => arb_json(),
    ]
    .boxed()
}

/// Epoch seconds of this decade (a string as Meta sends them, or a number), else any
/// number-ish value.
fn epoch() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (1_500_000_000i64..1_900_000_000).prop_map(|n| Value::String(n.to_string())),
        1 => (1_500_000_000i64..1_900_000_000).prop_map(Value::from),
        2 => numberish(),
    ]
    .boxed()
}

fn meta_status_item() -> BoxedStrategy<Value> {
    let error = obj(vec![
        ("code", numberish()),
        ("title", or_any(string(text()))),
        ("message", or_any(string(text()))),
        (
            "error_data",
            or_any(obj(vec![("details", or_any(string(text())))])),
        ),
    ]);
    obj(vec![
        ("id", message_id()),
        ("status", one_of(&["sent", "delivered", "read", "failed"])),
        ("timestamp", epoch()),
        ("recipient_id", string(phone_input())),
        ("recipient_type", or_any(string(word()))),
        ("biz_opaque_callback_data", or_any(string(entry_ref_text()))),
        ("errors", or_any(array(error, 3))),
    ])
}

fn meta_message_item() -> BoxedStrategy<Value> {
    let reply = || {
        or_any(obj(vec![
            ("id", or_any(string(text()))),
            ("title", or_any(string(text()))),
        ]))
    };
    obj(vec![
        ("from", or_any(string(phone_input()))),
        ("id", message_id()),
        ("timestamp", epoch()),
        ("type", string(text())),
        ("context", or_any(obj(vec![("id", or_any(string(text())))]))),
        ("text", or_any(obj(vec![("body", or_any(string(text())))]))),
        (
            "button",
            or_any(obj(vec![
                ("payload", or_any(string(text()))),
                ("text", or_any(string(text()))),
            ])),
        ),
        (
            "interactive",
            or_any(obj(vec![
                ("button_reply", reply()),
                ("list_reply", reply()),
            ])),
        ),
    ])
}

/// The value of a `field: messages` change (also Kaleyra's `meta_object.value`).
fn messages_value() -> BoxedStrategy<Value> {
    obj(vec![
        (
            "metadata",
            or_any(obj(vec![
                ("phone_number_id", or_any(string(text()))),
                ("display_phone_number", or_any(string(phone_input()))),
            ])),
        ),
        ("statuses", or_any(array(or_any(meta_status_item()), 4))),
        ("messages", or_any(array(or_any(meta_message_item()), 4))),
    ])
}

fn template_update_value() -> BoxedStrategy<Value> {
    obj(vec![
        (
            "event",
            one_of(&[
                "APPROVED", "REJECTED", "PAUSED", "DISABLED", "FLAGGED", "PENDING",
            ]),
        ),
        ("message_template_id", numberish()),
        (
            "message_template_name",
            one_of(&["spring_offer", "we_miss_you", " "]),
        ),
        (
            "message_template_language",
            one_of(&["en", "en_US", "pt_BR", ""]),
        ),
        ("reason", or_any(string(text()))),
        (
            "rejection_info",
            or_any(obj(vec![("reason", or_any(string(text())))])),
        ),
        (
            "other_info",
            or_any(obj(vec![
                ("title", or_any(string(text()))),
                ("description", or_any(string(text()))),
            ])),
        ),
        (
            "new_quality_score",
            one_of(&["GREEN", "YELLOW", "RED", "UNKNOWN", "high"]),
        ),
    ])
}

/// A Meta webhook of the envelope's shape: `object` a string, `entry` an array of
/// objects whose `changes` are arrays of objects with a string `field`. Anything inside a
/// change's `value` may be of any shape.
fn meta_envelope() -> BoxedStrategy<Value> {
    let field = |names: &'static [&'static str]| {
        prop_oneof![
            8 => select(names).prop_map(|s| Value::String(s.to_owned())),
            1 => string(text()),
            1 => Just(Value::Null),
        ]
        .boxed()
    };
    let change = prop_oneof![
        4 => obj(vec![("field", field(&["messages"])), ("value", messages_value())]),
        2 => obj(vec![
            (
                "field",
                field(&["message_template_status_update", "message_template_quality_update"]),
            ),
            ("value", template_update_value()),
        ]),
        1 => obj(vec![("field", field(&["user_preferences", "messages"])), ("value", arb_json())]),
    ]
    .boxed();
    let entry = obj(vec![("id", numberish()), ("changes", array(change, 3))]);
    let object = prop_oneof![
        9 => Just(Value::String("whatsapp_business_account".into())),
        1 => string(text()),
    ]
    .boxed();
    obj(vec![("object", object), ("entry", array(entry, 3))])
}

/// A Kaleyra v2 callback: top-level status, ids, callback data, Kaleyra's or Meta's
/// errors, times, and Meta's value passed through.
fn kaleyra_callback() -> BoxedStrategy<Value> {
    let code = prop_oneof![
        numberish(),
        one_of(&["E413", "WA400", "WA500", "WA200", "RBC001", "131026", "x"]),
    ]
    .boxed();
    obj(vec![
        (
            "status",
            one_of(&[
                "SENT",
                "delivered",
                "Read",
                "FAILED",
                "NOT-SENT",
                "not_sent",
                "NOTSENT",
            ]),
        ),
        ("message_id", message_id()),
        (
            "extra_info",
            or_any(obj(vec![
                ("ref", or_any(string(entry_ref_text()))),
                ("message_id", message_id()),
            ])),
        ),
        (
            "meta_object",
            or_any(obj(vec![("value", or_any(messages_value()))])),
        ),
        (
            "error",
            or_any(obj(vec![
                ("code", code.clone()),
                ("message", or_any(string(text()))),
                ("error", or_any(string(text()))),
                ("title", or_any(string(text()))),
            ])),
        ),
        ("error_code", code.clone()),
        ("code", code),
        ("reason", or_any(string(text()))),
        ("message", or_any(string(text()))),
        ("timestamp", epoch()),
        ("created_at", prop_oneof![epoch(), string(word())].boxed()),
    ])
}

/// Bytes a provider might post: anything, JSON text, or a body of the right shape.
fn webhook_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..512),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => meta_envelope().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => kaleyra_callback().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Strategies: phones, CSV, templates

/// Numbers libphonenumber takes as valid (Indian and British mobiles), as people type
/// them.
fn valid_phone() -> BoxedStrategy<String> {
    prop_oneof![
        "\\+91 [6-9][0-9]{4} [0-9]{5}",
        "0091[6-9][0-9]{9}",
        "91[6-9][0-9]{9}",
        "\\+44 7[4-57-9][0-9]{2} [0-9]{6}",
    ]
    .boxed()
}

fn phone_input() -> BoxedStrategy<String> {
    prop_oneof![
        2 => valid_phone(),
        2 => any::<String>(),
        3 => "[+]?[0-9 ()./-]{0,24}",
        2 => "(\\+|00)?[1-9][0-9]{4,14}",
        1 => "[0-9]{0,20}",
        1 => select(&[
            "",
            " ",
            "+",
            "00",
            "0000",
            "+00",
            "++1",
            "+ 1",
            "1+",
            "\u{663}\u{664}\u{665}",
            "\u{ff11}\u{ff12}\u{ff13}",
            "\u{feff}123",
            "+91 98123-45678",
            "0091 9812345678",
            "(415) 555 0100",
            "+800 1234 5678",
            "+1 416 555 0100",
        ][..])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

const HEADER_WORDS: &[&str] = &[
    "phone",
    "Phone ",
    " mobile",
    "name",
    "EMAIL",
    "tags",
    "tag:city",
    "TAG:Tier",
    "tag:",
    "tag: ",
    "tag:#x",
    "tag:a=b",
    "field:x",
    "code",
    "",
    "\u{feff}phone",
    "phone\u{feff}",
    "\u{feff}",
];

fn header_cell() -> BoxedStrategy<String> {
    prop_oneof![
        5 => select(HEADER_WORDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}

fn mapping() -> BoxedStrategy<Option<BTreeMap<String, String>>> {
    let target = prop_oneof![
        4 => select(&[
            "phone", "Mobile", "name", "email", "tags", "ignore", "tag:x", "tag:", "TAG:#",
            "field:", "field:Code", "FIELD: y", "field", "nonsense", "", " phone ",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    proptest::option::weighted(0.3, btree_map(header_cell(), target, 0..3)).boxed()
}

fn csv_cell() -> BoxedStrategy<String> {
    prop_oneof![
        3 => phone_input(),
        2 => "[a-zA-Z ;:]{0,10}",
        1 => select(&[
            "", " ", "\"", "\"\"", ",", "\n", "\r\n", ";", "vip; gold;;", "a=b", "#", "\u{feff}",
            "\u{0}",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}

/// A CSV file: a header and rows joined with `,` (quoted or raw, so quotes and
/// separators inside cells may break the structure), any line ends; or arbitrary bytes.
fn csv_file() -> BoxedStrategy<Vec<u8>> {
    let header = prop_oneof![
        3 => vec(header_cell(), 0..4).prop_map(|mut h| {
            h.insert(0, "phone".to_owned());
            h
        }),
        1 => vec(header_cell(), 0..5),
    ];
    let row = prop_oneof![
        3 => (phone_input(), vec(csv_cell(), 0..5)).prop_map(|(phone, mut cells)| {
            cells.insert(0, phone);
            cells
        }),
        1 => vec(csv_cell(), 0..6),
    ];
    let structured = (
        header,
        vec(row, 0..6),
        select(&["\n", "\n", "\r\n", "\r"][..]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(header, rows, eol, quoted, last_eol)| {
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .map(|c| {
                        if quoted {
                            format!("\"{}\"", c.replace('"', "\"\""))
                        } else {
                            c.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let mut out = line(&header);
            for r in &rows {
                out.push_str(eol);
                out.push_str(&line(r));
            }
            if last_eol {
                out.push_str(eol);
            }
            out.into_bytes()
        });
    let with_bytes = (structured.clone(), vec((any::<Index>(), any::<u8>()), 1..4)).prop_map(
        |(mut file, edits)| {
            for (at, b) in edits {
                if !file.is_empty() {
                    let i = at.index(file.len());
                    file[i] = b;
                }
            }
            file
        },
    );
    prop_oneof![
        4 => structured,
        1 => with_bytes,
        1 => vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// Template bodies: text and placeholders, well-formed or not.
fn template_body() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        3 => "[a-zA-Z ,.!%]{0,8}",
        3 => (1usize..5).prop_map(|n| format!("{{{{{n}}}}}")),
        1 => select(&[
            "{{", "}}", "{{0}}", "{{ 1 }}", "{{01}}", "{{+1}}", "{{x}}", "{{}}", "{{{1}}}",
            "{{18446744073709551615}}", "{{99999999999999999999}}", "{1}", "\u{e9}",
            "\u{1F600}", "{{1}", "{{-1}}", "{{\u{663}}}",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    prop_oneof![
        6 => vec(piece, 0..8).prop_map(|p| p.concat()),
        1 => any::<String>(),
        1 => "[a-z]{1020,1030}",
    ]
    .boxed()
}

fn category() -> BoxedStrategy<Category> {
    select(vec![
        Category::Marketing,
        Category::Utility,
        Category::Authentication,
    ])
    .boxed()
}

fn template_status() -> BoxedStrategy<TemplateStatus> {
    select(vec![
        TemplateStatus::Pending,
        TemplateStatus::Approved,
        TemplateStatus::Rejected,
        TemplateStatus::Paused,
        TemplateStatus::Disabled,
    ])
    .boxed()
}

fn quality() -> BoxedStrategy<Quality> {
    select(vec![
        Quality::Green,
        Quality::Yellow,
        Quality::Red,
        Quality::Unknown,
    ])
    .boxed()
}

fn link() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "https?://[a-z.]{0,10}(/[a-z{}]{0,5})?",
        1 => any::<String>(),
    ]
    .boxed()
}

fn media_header() -> BoxedStrategy<MediaHeader> {
    (
        select(vec![
            MediaKind::Image,
            MediaKind::Video,
            MediaKind::Document,
        ]),
        proptest::option::of(link()),
        proptest::option::of(text()),
    )
        .prop_map(|(kind, url, filename)| MediaHeader {
            kind,
            url,
            filename,
        })
        .boxed()
}

fn button_text() -> BoxedStrategy<String> {
    prop_oneof![3 => "[A-Za-z ]{0,30}", 1 => any::<String>()].boxed()
}

fn call_to_action() -> BoxedStrategy<CallToAction> {
    prop_oneof![
        (button_text(), phone_input())
            .prop_map(|(text, phone_number)| { CallToAction::PhoneNumber { text, phone_number } }),
        (button_text(), link()).prop_map(|(text, url)| CallToAction::Url { text, url }),
    ]
    .boxed()
}

fn small_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&["city", "code", "x", ""][..]).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
    .boxed()
}

fn small_value() -> BoxedStrategy<String> {
    prop_oneof![
        1 => select(&["", " ", "\t"][..]).prop_map(str::to_owned),
        3 => "[A-Za-z0-9{}]{1,6}",
        1 => any::<String>(),
    ]
    .boxed()
}

fn variables() -> BoxedStrategy<Vec<VariableSource>> {
    let one = prop_oneof![
        small_value().prop_map(|value| VariableSource::Text { value }),
        Just(VariableSource::ContactName),
        small_key().prop_map(|name| VariableSource::Field { name }),
        small_key().prop_map(|name| VariableSource::ValuedTag { name }),
    ];
    vec(one, 0..6).boxed()
}

fn contact_data() -> BoxedStrategy<ContactData> {
    (
        proptest::option::of(small_value()),
        btree_map(small_key(), small_value(), 0..3),
        btree_map(small_key(), small_value(), 0..3),
    )
        .prop_map(|(name, fields, valued_tags)| ContactData {
            name,
            fields,
            valued_tags,
        })
        .boxed()
}

/// A stored template with any body: render must cope with whatever the table holds.
fn stored_template(body: String) -> Template {
    Template {
        tenant: "t".into(),
        account_id: "acc".into(),
        name: "offer".into(),
        language: "en".into(),
        category: Category::Marketing,
        body,
        header: None,
        quick_replies: vec![],
        call_to_action: vec![],
        status: TemplateStatus::Approved,
        status_reason: None,
        quality: Quality::Unknown,
        provider_id: None,
        created_at: chrono::Utc::now(),
        updated_at: None,
        version: 0,
    }
}

// ---------------------------------------------------------------------------------------
// Runtime, webhook sink, fixtures

/// Name of the threads of the runtime the async properties run on: the import's parser
/// runs on one of them (`spawn_blocking`), where a panic would not reach the test.
const WORKER_THREAD: &str = "parsers-never-panic-worker";

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(WORKER_THREAD)
        .build()
        .expect("runtime");
    /// Set while this thread runs an import, whose spawned tasks' panics tokio catches.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

/// Panics seen on the runtime's threads or on a watched test thread.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let worker = std::thread::current().name() == Some(WORKER_THREAD);
            if worker || WATCHED.with(Cell::get) {
                PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
}

fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// Keeps what the webhook routes hand on.
#[derive(Default)]
struct Recorder(Mutex<Vec<QueuedWebhook>>);

#[async_trait::async_trait]
impl WebhookSink for Recorder {
    async fn take(&self, webhook: QueuedWebhook) -> Result<Value, SinkError> {
        self.0.lock().unwrap().push(webhook);
        Ok(json!({"queued": 1}))
    }
}

impl Recorder {
    fn taken(&self) -> Vec<QueuedWebhook> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

const APP_SECRET: &str = "test-app-secret";
const KALEYRA_SECRET: &str = "kaleyra-callback-secret";

async fn answer(app: axum::Router, req: Request<Body>) -> (StatusCode, Bytes) {
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body)
}

/// A 4xx answer explains itself: JSON with a non-empty `message`, or non-empty text.
fn clear_answer(status: StatusCode, body: &[u8]) -> Result<(), TestCaseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
            prop_assert!(!msg.trim().is_empty(), "{status}: {v}");
        }
        Err(_) => prop_assert!(
            !String::from_utf8_lossy(body).trim().is_empty(),
            "{status} without a body"
        ),
    }
    Ok(())
}

/// A queued webhook reads back and its events parse without panicking; an unparsable
/// body is a JSON error with a message.
fn check_queued(w: &QueuedWebhook) -> Result<(), TestCaseError> {
    let back = QueuedWebhook::decode(&w.encode());
    match &back {
        Ok(b) if !w.body.contains(['\u{FFFE}', '\u{FFFF}']) => prop_assert_eq!(b, w),
        Ok(_) => {}
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "queued webhook unreadable: {e}"
            )))
        }
    }
    match w.events() {
        Ok(events) => check_events(&events)?,
        Err(e) => clear_text("events", &e.to_string())?,
    }
    Ok(())
}

/// What every parsed event promises: ids, numbers in digits, a reason for a failure.
fn check_events(events: &[Inbound]) -> Result<(), TestCaseError> {
    for e in events {
        match e {
            Inbound::Status(s) => {
                prop_assert!(!s.message_id.trim().is_empty(), "{s:?}");
                if let StatusKind::Failed { reason, .. } = &s.status {
                    prop_assert!(!reason.trim().is_empty(), "failure without a reason: {s:?}");
                }
            }
            Inbound::Message(m) => {
                prop_assert!(!m.message_id.is_empty(), "{m:?}");
                prop_assert!(!m.from.as_str().is_empty());
                prop_assert!(m.from.as_str().bytes().all(|b| b.is_ascii_digit()));
            }
            Inbound::TemplateStatus(t) => {
                prop_assert!(!t.name.trim().is_empty(), "{t:?}");
                prop_assert!(!t.language.trim().is_empty(), "{t:?}");
                prop_assert!(!t.event.is_empty(), "{t:?}");
            }
            Inbound::Call(c) => {
                prop_assert!(!c.contact_id.trim().is_empty(), "{c:?}");
                prop_assert!(!c.instance_id.trim().is_empty(), "{c:?}");
            }
            Inbound::MarketingChoice(c) => {
                prop_assert!(!c.sender_id.trim().is_empty(), "{c:?}");
                prop_assert!(c.phone.as_str().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
    Ok(())
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta-webhooks")
}

/// Every case of every Meta fixture file, as `file/case` and body.
fn fixtures() -> &'static [(String, Value)] {
    static ALL: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
            .expect("fixture folder")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .collect();
        paths.sort();
        for path in paths {
            let file = path.file_stem().unwrap().to_string_lossy().into_owned();
            let cases: BTreeMap<String, Value> =
                serde_json::from_slice(&std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
            for (name, body) in cases {
                out.push((format!("{file}/{name}"), body));
            }
        }
        assert!(
            !out.is_empty(),
            "no fixtures in {}",
            fixture_dir().display()
        );
        out
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    At(usize),
}

/// Every path below the root of `v`.
fn paths(v: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        let children: Vec<(Seg, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, c)| (Seg::Key(k.clone()), c)).collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, c)| (Seg::At(i), c)).collect(),
            _ => vec![],
        };
        for (seg, child) in children {
            here.push(seg);
            out.push(here.clone());
            walk(child, here, out);
            here.pop();
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete,
    Replace(Value),
}

/// Applies `m` at `path` (which exists in `v`).
fn mutate(v: &mut Value, path: &[Seg], m: Mutation) {
    let (last, parent_path) = path.split_last().expect("not the root");
    let mut parent = v;
    for seg in parent_path {
        parent = match (seg, parent) {
            (Seg::Key(k), Value::Object(o)) => o.get_mut(k).expect("path exists"),
            (Seg::At(i), Value::Array(a)) => &mut a[*i],
            _ => unreachable!("path exists"),
        };
    }
    match (last, parent, m) {
        (Seg::Key(k), Value::Object(o), Mutation::Delete) => {
            o.remove(k);
        }
        (Seg::Key(k), Value::Object(o), Mutation::Replace(new)) => {
            o.insert(k.clone(), new);
        }
        (Seg::At(i), Value::Array(a), Mutation::Delete) => {
            a.remove(*i);
        }
        (Seg::At(i), Value::Array(a), Mutation::Replace(new)) => a[*i] = new,
        _ => unreachable!("path exists"),
    }
}

/// Strictly inside `entry[i].changes[j].value`, which the envelope keeps raw.
fn inside_change_value(path: &[Seg]) -> bool {
    matches!(
        path,
        [Seg::Key(e), Seg::At(_), Seg::Key(c), Seg::At(_), Seg::Key(v), _, ..]
            if e == "entry" && c == "changes" && v == "value"
    )
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        1 => Just(Mutation::Delete),
        2 => arb_json().prop_map(Mutation::Replace),
    ]
    .boxed()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Meta webhooks

#[test]
fn meta_fixtures_still_parse() {
    let mut events = 0;
    for (name, body) in fixtures() {
        let parsed = parse_webhook(&serde_json::to_vec(body).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        events += parsed.len();
    }
    assert!(events > 0, "the fixtures gave no event at all");
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn meta_webhook_arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..1024)) {
        match parse_webhook(&body) {
            Ok(events) => check_events(&events)?,
            Err(e) => clear_text("meta webhook", &e.to_string())?,
        }
    }

    #[test]
    fn meta_webhook_arbitrary_json_never_panics(v in arb_json()) {
        match parse_webhook(&serde_json::to_vec(&v).unwrap()) {
            Ok(events) => check_events(&events)?,
            Err(e) => clear_text("meta webhook", &e.to_string())?,
        }
    }

    /// Items that do not fit are skipped: a body of the envelope's shape always parses.
    #[test]
    fn meta_webhook_shaped_json_parses(v in meta_envelope()) {
        let events = parse_webhook(&serde_json::to_vec(&v).unwrap());
        prop_assert!(events.is_ok(), "{v}: {events:?}");
        check_events(&events.unwrap())?;
    }

    /// Real bodies with fields deleted or replaced by any JSON: never a panic; a change
    /// inside a change's `value` never makes the body an error.
    #[test]
    fn meta_webhook_mutated_fixtures_never_panic(
        case in any::<Index>(),
        edits in vec((any::<Index>(), mutation()), 1..4),
    ) {
        let all = fixtures();
        let (name, original) = &all[case.index(all.len())];
        let mut body = original.clone();
        let mut deep_only = true;
        for (at, m) in edits {
            let ps = paths(&body);
            if ps.is_empty() {
                break;
            }
            let path = &ps[at.index(ps.len())];
            deep_only &= inside_change_value(path);
            mutate(&mut body, path, m);
        }
        match parse_webhook(&serde_json::to_vec(&body).unwrap()) {
            Ok(events) => check_events(&events)?,
            Err(e) => {
                prop_assert!(!deep_only, "{name} mutated inside a value: {e}\n{body}");
                clear_text("meta webhook", &e.to_string())?;
            }
        }
    }

    #[test]
    fn meta_template_list_answers_never_panic(
        status in prop_oneof![Just(200u16), any::<u16>()],
        body in prop_oneof![
            vec(any::<u8>(), 0..256),
            arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            array(arb_json(), 4).prop_map(|d| serde_json::to_vec(&json!({"data": d})).unwrap()),
        ],
        item in arb_json(),
    ) {
        match interpret_page(status, &body) {
            Ok(page) => {
                for t in page.templates {
                    prop_assert!(!t.name.is_empty() && !t.language.is_empty(), "{t:?}");
                }
            }
            Err(e) => clear_text("template list", &e.reason)?,
        }
        if let Some(t) = parse_template(&item) {
            prop_assert!(!t.name.is_empty() && !t.language.is_empty(), "{t:?}");
        }
    }

    #[test]
    fn meta_signature_and_handshake_never_panic(
        body in vec(any::<u8>(), 0..256),
        secret in vec(any::<u8>(), 0..40),
        header in proptest::option::of(prop_oneof![
            any::<String>(),
            "sha256=[0-9a-fA-F]{0,70}",
            "sha256=.{0,8}",
        ]),
        mode in proptest::option::of(prop_oneof![Just("subscribe".to_owned()), text()]),
        token in proptest::option::of(text()),
        challenge in proptest::option::of(text()),
        expected in text(),
    ) {
        let _ = verify_signature(&secret, &body, header.as_deref());
        let good = signature_header(&secret, &body);
        prop_assert_eq!(verify_signature(&secret, &body, Some(&good)), !secret.is_empty());
        let echoed = verify_handshake(mode.as_deref(), token.as_deref(), challenge.as_deref(), &expected);
        if echoed.is_some() {
            prop_assert_eq!(mode.as_deref(), Some("subscribe"));
            prop_assert_eq!(token.as_deref(), Some(expected.as_str()));
            prop_assert_eq!(echoed, challenge);
        }
    }

    /// The queue format between the webhook and the worker reads back what was written,
    /// and any message at all is read or refused with a reason.
    #[test]
    fn queued_webhooks_read_back_and_never_panic(
        message in prop_oneof![
            any::<String>(),
            (arb_json(), any::<String>()).prop_map(|(h, b)| format!("{h}\n{b}")),
            (
                prop_oneof![
                    any::<u64>(),
                    select(vec![0, 1, 2, u64::from(u32::MAX), 1 << 32, (1 << 32) + 1, u64::MAX]),
                ],
                select(&["meta", "kaleyra", "other"][..]),
                any::<String>(),
            )
                .prop_map(|(v, p, b)| format!(
                    "{{\"v\":{v},\"provider\":\"{p}\",\"received_at\":\"2026-03-01T09:00:00Z\"}}\n{b}"
                )),
        ],
        kaleyra in any::<bool>(),
        secs in 0i64..4_000_000_000,
        nanos in 0u32..1_000_000_000,
        sid in proptest::option::of(any::<String>()),
        body in prop_oneof![any::<String>(), webhook_body().prop_map(|b| String::from_utf8_lossy(&b).into_owned())],
    ) {
        match QueuedWebhook::decode(&message) {
            Ok(w) => {
                prop_assert!(w.header.v <= FORMAT_VERSION);
                let _ = w.events();
            }
            Err(e) => {
                clear_text("queued webhook", &e.to_string())?;
                if let DecodeError::Newer(n) = e {
                    // The version as written, however large.
                    let v: Option<u64> = serde_json::from_str::<Value>(message.split_once('\n').unwrap().0)
                        .ok()
                        .and_then(|h| h.get("v").and_then(Value::as_u64));
                    prop_assert!(n > FORMAT_VERSION, "{message:?} refused as format {n}");
                    prop_assert_eq!(Some(n), v);
                }
            }
        }
        let provider = if kaleyra { WebhookProvider::Kaleyra } else { WebhookProvider::Meta };
        let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
        check_queued(&QueuedWebhook::new(provider, at, sid, body))?;
    }
}

proptest! {
    #![proptest_config(config(SLOW_CASES))]

    /// The signed route: a correct signature is always taken (200), whatever the body; any
    /// other is a 401 that says why; what is taken parses without panicking.
    #[test]
    fn meta_webhook_route_never_panics(
        body in webhook_body(),
        sig in prop_oneof![
            2 => Just(None),
            1 => Just(Some(String::new())),
            1 => "[ -~]{0,80}".prop_map(Some),
            1 => "sha256=[0-9a-f]{64}".prop_map(Some),
        ],
    ) {
        let sink = Arc::new(Recorder::default());
        let app = router(Arc::new(WebhookState {
            sink: sink.clone(),
            app_secret: APP_SECRET.into(),
            verify_token: "verify".into(),
        }));
        let signed = sig.is_none();
        let header = sig.unwrap_or_else(|| signature_header(APP_SECRET.as_bytes(), &body));
        let req = Request::builder()
            .method("POST")
            .uri("/webhooks/meta")
            .header("x-hub-signature-256", header)
            .body(Body::from(body.clone()))
            .unwrap();
        let (status, answer_body) = block_on(answer(app, req));
        if signed {
            prop_assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer_body));
        } else {
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            clear_answer(status, &answer_body)?;
        }
        let taken = sink.taken();
        prop_assert_eq!(taken.len(), usize::from(signed && json_text(&body).is_some()));
        for w in &taken {
            prop_assert_eq!(w.header.provider, WebhookProvider::Meta);
            check_queued(w)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Kaleyra callbacks

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn kaleyra_callback_arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..1024)) {
        match parse_kaleyra_callback_received(&body, chrono::Utc::now()) {
            Ok(events) => check_events(&events)?,
            Err(e) => clear_text("kaleyra callback", &e.to_string())?,
        }
    }

    /// Only a body that is not JSON is an error: any JSON value parses.
    #[test]
    fn kaleyra_callback_any_json_parses(v in prop_oneof![arb_json(), kaleyra_callback()]) {
        let events = parse_kaleyra_callback_received(&serde_json::to_vec(&v).unwrap(), chrono::Utc::now());
        prop_assert!(events.is_ok(), "{v}: {events:?}");
        check_events(&events.unwrap())?;
    }

    /// The callback's query and token: any strings, never a panic; the token of a SID
    /// opens the route for that SID exactly when there is a secret and a SID.
    #[test]
    fn kaleyra_tokens_and_senders_never_panic(
        secret in prop_oneof![Just(String::new()), text()],
        sid in proptest::option::of(text()),
        given in proptest::option::of(text()),
        sender in prop_oneof![
            any::<String>(),
            "[ ]?[A-Za-z0-9_-]{0,70}[ ]?:[ ]?[+]?[0-9]{0,17}[ ]?",
            text(),
        ],
    ) {
        let _ = verify_kaleyra_callback(&secret, sid.as_deref(), given.as_deref());
        let _ = verify_kaleyra_token(&secret, given.as_deref());
        if let Some(sid) = &sid {
            let token = callback_token(&secret, sid.trim());
            prop_assert_eq!(
                verify_kaleyra_callback(&secret, Some(sid), Some(&token)),
                !secret.is_empty() && !sid.trim().is_empty()
            );
        }
        if let Some(s) = KaleyraSender::parse(&sender) {
            prop_assert!(s.from.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(KaleyraSender::parse(&format!("{}:{}", s.sid, s.from)), Some(s));
        }
    }

    /// Callback data: anything is read or ignored; ours reads back what was written.
    #[test]
    fn entry_refs_never_panic_and_read_back(
        s in entry_ref_text(),
        tenant in "[a-z0-9_-]{1,12}",
        campaign in "[a-z0-9_-]{1,12}",
        shard in any::<u16>(),
        phone in "[1-9][0-9]{4,14}",
        attempt in proptest::option::of(any::<u32>()),
    ) {
        if let Some((r, a)) = EntryRef::decode_attempt(&s) {
            prop_assert_eq!(EntryRef::decode(&s), Some(r));
            prop_assert!(a.is_none() || s.matches('|').count() == 5);
        }
        let r = EntryRef { tenant, campaign_id: campaign, shard, phone: PhoneNumber::parse(&phone).unwrap() };
        let written = match attempt {
            Some(a) => r.encode_attempt(a),
            None => r.encode(),
        };
        prop_assert_eq!(EntryRef::decode_attempt(&written), Some((r, attempt)));
    }
}

proptest! {
    #![proptest_config(config(SLOW_CASES))]

    /// The callback route with any query (any keys and values, duplicates, broken
    /// percent-encoding) and any body: 200 only with the SID's token, 401 or 400 with a
    /// reason otherwise; what is taken parses without panicking.
    #[test]
    fn kaleyra_route_any_query_never_panics(
        pairs in vec(
            (
                prop_oneof![
                    3 => select(&["token", "sid", "Token", "x", ""][..]).prop_map(str::to_owned),
                    1 => any::<String>(),
                ],
                text(),
            ),
            0..4,
        ),
        valid in proptest::option::of(prop_oneof![text(), "[A-Za-z0-9_-]{1,12}"]),
        raw in proptest::option::of("[A-Za-z0-9%&=+._~-]{0,24}"),
        header in proptest::option::of("[ -~]{0,70}"),
        body in webhook_body(),
    ) {
        let mut parts: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        if let Some(sid) = &valid {
            let token = callback_token(KALEYRA_SECRET, sid.trim());
            parts.push(format!("sid={}", percent_encode(sid)));
            parts.push(format!("token={token}"));
        }
        parts.extend(raw);
        let uri = if parts.is_empty() {
            "/webhooks/kaleyra".to_owned()
        } else {
            format!("/webhooks/kaleyra?{}", parts.join("&"))
        };
        let mut req = Request::builder().method("POST").uri(&uri);
        if let Some(h) = &header {
            req = req.header("x-kaleyra-token", h.as_str());
        }
        let req = req.body(Body::from(body.clone())).unwrap();
        let sink = Arc::new(Recorder::default());
        let app = kaleyra_router(Arc::new(KaleyraHookState {
            sink: sink.clone(),
            token: KALEYRA_SECRET.into(),
        }));
        let (status, answer_body) = block_on(answer(app, req));
        match status {
            StatusCode::OK => prop_assert!(
                valid.as_ref().is_some_and(|sid| !sid.trim().is_empty()),
                "{uri} opened the route without the SID's token"
            ),
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => clear_answer(status, &answer_body)?,
            other => prop_assert!(false, "{uri}: unexpected {other}"),
        }
        let taken = sink.taken();
        prop_assert_eq!(taken.len(), usize::from(status == StatusCode::OK && json_text(&body).is_some()));
        for w in &taken {
            prop_assert_eq!(w.header.provider, WebhookProvider::Kaleyra);
            check_queued(w)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Phone numbers

proptest! {
    #![proptest_config(config(CASES))]

    /// Any text: a number of 1 to 15 digits that reads back as itself, or an error on
    /// `phone` that says why; what is asked of a number never panics.
    #[test]
    fn phone_parse_never_panics(input in phone_input()) {
        match PhoneNumber::parse(&input) {
            Ok(p) => {
                let s = p.as_str();
                prop_assert!(!s.is_empty() && s.len() <= MAX_DIGITS, "{input:?} -> {s:?}");
                prop_assert!(s.bytes().all(|b| b.is_ascii_digit()), "{input:?} -> {s:?}");
                // The normal form is a fixed point: it reads back as itself, stored too.
                prop_assert!(!s.starts_with("00"), "{input:?} -> {s:?}");
                prop_assert_eq!(PhoneNumber::parse(s), Ok(p.clone()), "{:?}", input);
                let json = serde_json::to_value(&p).unwrap();
                prop_assert_eq!(serde_json::from_value::<PhoneNumber>(json).ok(), Some(p.clone()));
                prop_assert_eq!(p.masked().len(), s.len());
                let _ = p.is_dialable();
                let _ = p.region();
                match p.validate("contacts[2].phone") {
                    Ok(region) => {
                        prop_assert!(p.is_dialable());
                        prop_assert_eq!(region, p.region());
                    }
                    Err(e) => prop_assert_eq!(invalid_field(&e)?, "contacts[2].phone"),
                }
            }
            Err(e) => prop_assert_eq!(invalid_field(&e)?, "phone"),
        }
        if let Err(e) = PhoneNumber::parse_valid(&input, "mobile") {
            prop_assert_eq!(invalid_field(&e)?, "mobile");
        }
        // Stored numbers are read through the same parser.
        let _ = serde_json::from_value::<PhoneNumber>(Value::String(input));
    }
}

// ---------------------------------------------------------------------------------------
// 4. CSV import

/// A header is mapped, or refused naming `header` or `mapping.<column>`.
fn check_header(
    header: &[String],
    mapping: Option<&BTreeMap<String, String>>,
) -> Result<Option<ColumnMap>, TestCaseError> {
    match ColumnMap::from_header(header, mapping) {
        Ok(map) => {
            prop_assert_eq!(map.columns.len(), header.len());
            Ok(Some(map))
        }
        Err(e) => {
            let field = invalid_field(&e)?;
            prop_assert!(
                field == "header" || field.starts_with("mapping."),
                "{header:?}: {e:?}"
            );
            Ok(None)
        }
    }
}

/// A row is a contact with a number to key it by, or refused with a reason naming what
/// is wrong.
fn check_row(map: &ColumnMap, cells: &[String]) -> Result<(), TestCaseError> {
    match map.row(cells.iter().map(String::as_str)) {
        Ok(c) => {
            let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
            prop_assert!(!(blank(&c.phone) && blank(&c.mobile)), "{cells:?}: {c:?}");
            match c.checked_key() {
                Ok(k) => {
                    // A number too short to dial is kept, flagged, with no region (R4.4);
                    // any other passed its country's numbering plan.
                    if k.phone.is_dialable() {
                        prop_assert!(k.phone.validate("phone").is_ok(), "{k:?}");
                    } else {
                        prop_assert!(k.region.is_none(), "{k:?}");
                    }
                    prop_assert!(k.phone.as_str().bytes().all(|b| b.is_ascii_digit()));
                }
                Err(e) => {
                    let field = invalid_field(&e)?;
                    prop_assert!(field == "phone" || field == "mobile", "{e:?}");
                }
            }
        }
        Err(reason) => clear_text("row", &reason)?,
    }
    Ok(())
}

/// The importer's rows: what is left after a header, with blank lines skipped.
fn csv_records(file: &[u8]) -> Vec<Result<Vec<String>, String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut out = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {
                if rec.len() == 1 && rec[0].is_empty() {
                    continue;
                }
                out.push(
                    rec.iter()
                        .map(|f| std::str::from_utf8(f).map(str::to_owned))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string()),
                );
            }
            Ok(false) => break,
            Err(e) => {
                out.push(Err(e.to_string()));
                break;
            }
        }
    }
    out
}

/// The lines the data rows of `file` start on (the header is line 1; `\n`, `\r\n` and a
/// lone `\r` each end a line; blank lines are no rows), from the csv reader's record
/// positions.
fn row_start_lines(file: &[u8]) -> Vec<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut rec = csv::ByteRecord::new();
    let mut out = Vec::new();
    while let Ok(true) = rdr.read_byte_record(&mut rec) {
        if rec.len() == 1 && rec[0].is_empty() {
            continue;
        }
        // A record's position may point at the rest of the previous line end (the `\n`
        // of a `\r\n`) and at blank lines the reader skipped before it.
        let mut at = rec.position().map_or(0, |p| p.byte() as usize);
        while matches!(file.get(at), Some(b'\n' | b'\r')) {
            at += 1;
        }
        out.push(1 + line_breaks(&file[..at]));
    }
    out.into_iter().skip(1).collect()
}

/// The line breaks in `bytes`: each `\n`, `\r\n` and lone `\r`.
fn line_breaks(bytes: &[u8]) -> u64 {
    let mut n = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\r' || (*b == b'\n' && (i == 0 || bytes[i - 1] != b'\r')) {
            n += 1;
        }
    }
    n
}

fn operator() -> Operator {
    Operator::new(OperatorPorts {
        table: Arc::new(MemoryTable::new()),
        scheduler: Arc::new(MemoryScheduler::default()),
        bus: Arc::new(MemoryBus::default()),
        clock: Arc::new(ManualClock::system()),
    })
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn csv_header_and_rows_never_panic(
        header in vec(header_cell(), 0..6),
        mapping in mapping(),
        rows in vec(vec(csv_cell(), 0..8), 1..4),
    ) {
        if let Some(m) = &mapping {
            if let Err(e) = check_mapping(m) {
                prop_assert!(invalid_field(&e)?.starts_with("mapping."), "{e:?}");
            }
        }
        if let Some(map) = check_header(&header, mapping.as_ref())? {
            for cells in &rows {
                check_row(&map, cells)?;
            }
        }
    }

    /// Whole files as the importer reads them (`csv`, no header handling, ragged rows).
    #[test]
    fn csv_files_never_panic(file in csv_file(), mapping in mapping()) {
        let mut records = csv_records(&file).into_iter();
        let Some(Ok(header)) = records.next() else { return Ok(()) };
        if let Some(map) = check_header(&header, mapping.as_ref())? {
            for cells in records.flatten() {
                check_row(&map, &cells)?;
            }
        }
    }

    #[test]
    fn import_object_keys_never_panic(key in prop_oneof![
        any::<String>(),
        "imports/[a-z0-9_/-]{0,10}/(imp_)?[a-z0-9_.-]{0,10}(\\.csv)?",
    ]) {
        if let Some((tenant, id)) = parse_object_key(&key) {
            prop_assert_eq!(object_key(&tenant, &id), key);
        }
    }

    #[test]
    fn importer_events_never_panic(v in prop_oneof![
        arb_json(),
        (text(), text()).prop_map(|(t, i)| json!({"action": "continue", "tenant": t, "import_id": i})),
        text().prop_map(|k| json!({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": k}}}]})),
    ]) {
        if let Err(e) = ImporterEvent::parse(v) {
            clear_text("importer event", &e)?;
        }
    }
}

proptest! {
    #![proptest_config(config(SLOW_CASES))]

    /// A whole file through the inline import, its parser thread included: it completes
    /// with every row imported or reported by line with a reason, or is refused naming the
    /// header, the mapping or the body.
    #[test]
    fn inline_import_never_panics(file in csv_file(), mapping in mapping()) {
        watch_panics();
        take_panics();
        let op = operator();
        let tenant = TenantId::parse("acme").unwrap();
        WATCHED.with(|w| w.set(true));
        let res = block_on(op.audience.import_inline(&tenant, Bytes::from(file.clone()), None, mapping.clone()));
        WATCHED.with(|w| w.set(false));
        let panics = take_panics();
        prop_assert!(panics.is_empty(), "the import panicked: {panics:?}");
        match res {
            Ok(view) => {
                let imp = &view.import;
                prop_assert_eq!(imp.status, ImportStatus::Completed, "{:?}", imp);
                prop_assert_eq!(imp.imported + imp.invalid, imp.rows, "{:?}", imp);
                for e in &view.errors {
                    prop_assert!(e.line >= 1, "row error on line {}: {:?}", e.line, e);
                    clear_text("row error", &e.reason)?;
                }
                // Each invalid row is reported on the line where it starts, whatever the
                // line ends (`\n`, `\r\n`, `\r`) and however the last field ends.
                let lines: Vec<u64> = view.errors.iter().map(|e| e.line).collect();
                let starts = row_start_lines(&file);
                prop_assert!(
                    lines.iter().all(|l| starts.contains(l)),
                    "row errors on lines {:?}; rows start on {:?}", lines, starts
                );
                prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "lines {:?}", lines);
                prop_assert_eq!(lines.len() as u64, imp.invalid.min(20), "{:?}", imp);
            }
            Err(AppError::Domain(e)) => {
                let field = invalid_field(&e)?;
                prop_assert!(
                    field == "header" || field == "body" || field.starts_with("mapping."),
                    "{e:?}"
                );
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. Templates

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn placeholder_count_never_panics(body in template_body()) {
        match placeholder_count(&body) {
            Ok(n) => prop_assert!(n <= body.matches("{{").count()),
            Err(e) => prop_assert_eq!(invalid_field(&e)?, "body"),
        }
    }

    /// Any stored body with any variables and contact: the parameters of every
    /// placeholder, each non-blank, or an error naming the placeholder.
    #[test]
    fn render_never_panics(
        body in template_body(),
        vars in variables(),
        contact in contact_data(),
        header in proptest::option::of(media_header()),
        status in template_status(),
    ) {
        let mut t = stored_template(body);
        let count = placeholder_count(&t.body);
        match t.render(&vars, None, &contact) {
            Ok(r) => {
                prop_assert_eq!(Ok(r.params.len()), count.clone());
                prop_assert!(r.params.iter().all(|p| !p.trim().is_empty()), "{:?}", r.params);
                // Every placeholder counted is filled: with values free of braces, no
                // placeholder (nor anything that reads like one) is left in the text.
                if r.params.iter().all(|p| !p.contains(['{', '}'])) {
                    prop_assert_eq!(placeholder_count(&r.text), Ok(0), "{:?} -> {:?}", t.body, r.text);
                    prop_assert!(!r.text.contains("{{"), "{:?} -> {:?}", t.body, r.text);
                }
            }
            Err(msg) => {
                clear_text("render", &msg)?;
                prop_assert!(count.is_err() || msg.contains("{{"), "{msg}");
            }
        }
        t.header = header;
        t.status = status;
        if let Err(e) = t.check_usable(&vars, None) {
            clear_domain(&e)?;
        }
    }

    /// Registering a template by hand: any input is a template whose body is valid, or
    /// refused naming the field.
    #[test]
    fn template_create_never_panics(
        account_id in proptest::option::of(text()),
        name in proptest::option::of(prop_oneof![3 => "[a-z0-9_]{1,12}", 1 => any::<String>()]),
        language in proptest::option::of(prop_oneof![
            3 => select(&["en", "en_US", "pt-BR", "x", "toolonglanguagecode"][..]).prop_map(str::to_owned),
            1 => any::<String>(),
        ]),
        category in proptest::option::of(category()),
        body in proptest::option::of(template_body()),
        header in proptest::option::of(media_header()),
        quick_replies in vec(button_text(), 0..12),
        call_to_action in vec(call_to_action(), 0..3),
        status in proptest::option::of(template_status()),
        quality in proptest::option::of(quality()),
        provider_id in proptest::option::of(text()),
    ) {
        let input = NewTemplate {
            account_id,
            name,
            language,
            category,
            body,
            header,
            quick_replies,
            call_to_action,
            status,
            quality,
            provider_id,
        };
        match Template::create("t", input, chrono::Utc::now()) {
            Ok(t) => {
                prop_assert!(placeholder_count(&t.body).is_ok(), "{:?}", t.body);
                prop_assert!(!t.body.trim().is_empty() && t.body.chars().count() <= MAX_BODY_CHARS);
            }
            Err(e) => {
                invalid_field(&e)?;
            }
        }
    }

    /// Editing a stored template: any edit is applied keeping a valid body, or refused
    /// with a reason.
    #[test]
    fn template_edit_never_panics(
        from in template_status(),
        category in proptest::option::of(category()),
        body in proptest::option::of(template_body()),
        header in proptest::option::of(proptest::option::of(media_header())),
        quick_replies in proptest::option::of(vec(button_text(), 0..12)),
        call_to_action in proptest::option::of(vec(call_to_action(), 0..3)),
        status in proptest::option::of(template_status()),
        quality in proptest::option::of(quality()),
    ) {
        let mut t = Template::create(
            "t",
            NewTemplate {
                account_id: Some("acc".into()),
                name: Some("offer".into()),
                language: Some("en".into()),
                category: Some(Category::Marketing),
                body: Some("Hi {{1}}, {{2}} off".into()),
                quick_replies: vec!["Yes".into(), "No".into()],
                status: Some(from),
                ..Default::default()
            },
            chrono::Utc::now(),
        )
        .unwrap();
        let edit = TemplateEdit { category, body, header, quick_replies, call_to_action, status, quality };
        match t.edit(edit, chrono::Utc::now()) {
            Ok(_) => prop_assert!(placeholder_count(&t.body).is_ok(), "{:?}", t.body),
            Err(e) => clear_domain(&e)?,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Findings kept as regressions

/// Finding (not a panic): `PhoneNumber::parse` dropped one leading `00` (international
/// prefix), so an input with two (`0000 91 98123 45678`) gave `00919812345678`, which
/// parsed again to `919812345678`: the normal form was not a fixed point (a stored number
/// starting with `00` changed when read back, and `00`, from `0000`, was refused when read
/// back, as `PhoneNumber` deserialises through `parse`). Fixed by refusing a doubled `00`
/// prefix with an error on `phone`: no normal form starts with `00`.
#[test]
fn phone_with_a_doubled_00_prefix_reads_back() {
    for input in ["0000 91 98123 45678", "0000", "+00 00 91 98123 45678"] {
        let e = PhoneNumber::parse(input).unwrap_err();
        assert_eq!(invalid_field(&e).unwrap(), "phone", "{input}");
        assert!(e.to_string().contains("00"), "{input}: {e}");
        assert!(serde_json::from_value::<PhoneNumber>(json!(input)).is_err());
    }
    let p = PhoneNumber::parse("0091 98123 45678").unwrap();
    assert_eq!(p.as_str(), "919812345678");
    assert_eq!(PhoneNumber::parse(p.as_str()), Ok(p.clone()));
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(serde_json::from_value::<PhoneNumber>(json).ok(), Some(p));
}

/// Finding (not a panic): `QueuedWebhook::decode` reported a header version above
/// `u32::MAX` as `DecodeError::Newer(v as u32)`, which wrapped: version 2^32 was refused
/// as "queued webhook format 0 is newer than this worker's". Versions are `u64` now.
#[test]
fn queued_webhook_version_beyond_u32_is_named_newer() {
    let message =
        "{\"v\":4294967296,\"provider\":\"meta\",\"received_at\":\"2026-03-01T09:00:00Z\"}\n{}";
    match QueuedWebhook::decode(message) {
        Err(e @ DecodeError::Newer(n)) => {
            assert!(n > FORMAT_VERSION, "refused as format {n}");
            assert_eq!(n, 1 << 32);
            assert!(e.to_string().contains("4294967296"), "{e}");
        }
        other => panic!("expected Newer, got {other:?}"),
    }
}

/// Finding (not a panic): with Windows line ends (`\r\n`, what Excel's "CSV" export
/// writes) the inline and uploaded imports reported each invalid row one line too early:
/// the first data row was reported on line 1, the header's line. (The line was computed
/// from `csv`'s own count, which had not consumed the `\n` of the row's `\r\n` yet when it
/// returned the row; the importer now counts the line breaks it hands to `csv`.)
#[test]
fn import_rows_of_a_crlf_file_are_reported_on_their_lines() {
    let lines = inline_import_error_lines("phone\r\nx1\r\nx2\r\n");
    assert_eq!(lines, vec![2, 3]);
}

/// Finding (not a panic): with old Mac line ends (`\r` alone) every row was reported on
/// line 1 (`csv` counts `\n` only), so the invalid rows overwrote each other: the import
/// counted 2 invalid rows but kept the reason of one only.
#[test]
fn import_rows_of_a_cr_file_are_each_reported() {
    let lines = inline_import_error_lines("phone\rx1\rx2\r");
    assert_eq!(lines, vec![2, 3]);
}

/// The lines of the invalid rows the inline import reports for `file`.
fn inline_import_error_lines(file: &'static str) -> Vec<u64> {
    let op = operator();
    let tenant = TenantId::parse("acme").unwrap();
    let view = block_on(
        op.audience
            .import_inline(&tenant, Bytes::from(file), None, None),
    )
    .expect("imports");
    assert_eq!(view.import.invalid, 2, "{:?}", view.import);
    view.errors.iter().map(|e| e.line).collect()
}

/// Finding (not a panic): a row whose quoted field is never closed (it runs to the end of
/// a file that ends with a line break) was reported one line too early; after a header,
/// on the header's line 1: the final `\n` was counted twice, once inside the field and
/// once as the row's line end. A row that ends with the file has no line end of its own.
#[test]
fn import_row_with_an_unclosed_quote_is_reported_on_its_line() {
    let op = operator();
    let tenant = TenantId::parse("acme").unwrap();
    let file = "phone\n+91 98123 45678,\"\n";
    let view = block_on(
        op.audience
            .import_inline(&tenant, Bytes::from(file), None, None),
    )
    .expect("imports");
    let lines: Vec<u64> = view.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2], "{:?}", view.errors);
}

/// Finding (not a panic): `placeholder_count` read the number inside `{{ }}` trimmed and
/// through `usize::from_str`, so `{{ 1 }}`, `{{01}}` and `{{+1}}` were accepted as
/// placeholder 1 by `Template::create`, but `Template::render` only replaced the exact
/// text `{{1}}`: the parameter was sent, while the rendered text (the conversation view)
/// kept `{{ 1 }}`. A placeholder is now written as Meta writes it (`{{1}}`, digits only,
/// no leading zero); other spellings, which Meta refuses, are refused naming `body`, and
/// render fills exactly the placeholders that are counted.
#[test]
fn render_fills_every_placeholder_it_counts() {
    let vars = [VariableSource::Text {
        value: "Asha".into(),
    }];
    let input = |body: &str| NewTemplate {
        account_id: Some("acc".into()),
        name: Some("offer".into()),
        language: Some("en".into()),
        category: Some(Category::Marketing),
        body: Some(body.into()),
        ..Default::default()
    };
    for body in ["Hi {{ 1 }}", "Hi {{01}}", "Hi {{+1}}"] {
        let e = Template::create("t", input(body), chrono::Utc::now()).unwrap_err();
        assert_eq!(invalid_field(&e).unwrap(), "body", "{body}");
        assert!(e.to_string().contains("{{1}}"), "{body}: {e}");
        assert_eq!(
            invalid_field(&placeholder_count(body).unwrap_err()).unwrap(),
            "body"
        );
        // A stored copy with such a body is not sent with a half-filled text.
        let stored = stored_template(body.into());
        let msg = stored
            .render(&vars, None, &ContactData::default())
            .unwrap_err();
        assert!(msg.contains("{{"), "{body}: {msg}");
        assert!(stored.check_usable(&vars, None).is_err(), "{body}");
    }
    let t = Template::create("t", input("Hi {{1}}"), chrono::Utc::now()).expect("accepted");
    let r = t
        .render(&vars, None, &ContactData::default())
        .expect("renders");
    assert_eq!(r.text, "Hi Asha");
    assert_eq!(r.params, ["Asha"]);
}
