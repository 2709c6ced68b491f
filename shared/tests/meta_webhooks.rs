//! Meta webhook parsing and authentication against real-shaped bodies
//! (`tests/fixtures/meta-webhooks`, from pywa, MIT; see the README there).

use serde_json::Value;
use shared::domain::inbound::{EntryRef, Inbound, InboundMessage, StatusKind, StatusUpdate};
use shared::domain::phone::PhoneNumber;
use shared::providers::meta::{
    parse_webhook, signature_header, verify_handshake, verify_signature,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

const SECRET: &[u8] = b"test-app-secret";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta-webhooks")
}

/// Every fixture file: name -> (case -> webhook body).
fn all_fixtures() -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(fixture_dir()).expect("fixture folder") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let cases: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.insert(name, cases);
    }
    out
}

fn case(file: &str, name: &str) -> Value {
    let path = fixture_dir().join(format!("{file}.json"));
    let mut cases: BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    cases
        .remove(name)
        .unwrap_or_else(|| panic!("no case {file}/{name}"))
}

fn parse(body: &Value) -> Vec<Inbound> {
    parse_webhook(&serde_json::to_vec(body).unwrap()).expect("parses")
}

fn only_status(file: &str, name: &str) -> StatusUpdate {
    match parse(&case(file, name)).as_slice() {
        [Inbound::Status(s)] => s.clone(),
        other => panic!("{file}/{name}: expected one status, got {other:?}"),
    }
}

fn only_message(file: &str, name: &str) -> InboundMessage {
    match parse(&case(file, name)).as_slice() {
        [Inbound::Message(m)] => m.clone(),
        other => panic!("{file}/{name}: expected one message, got {other:?}"),
    }
}

fn epoch(secs: i64) -> shared::domain::Time {
    chrono::DateTime::from_timestamp(secs, 0).unwrap()
}

#[test]
fn fixture_folder_keeps_its_license_note() {
    let readme = std::fs::read_to_string(fixture_dir().join("README.md")).unwrap();
    assert!(readme.contains("MIT License") && readme.contains("pywa"));
}

#[test]
fn r6_1_every_case_of_every_fixture_parses() {
    let fixtures = all_fixtures();
    assert!(fixtures.len() >= 7, "fixtures found: {:?}", fixtures.keys());
    let mut n = 0;
    for (file, cases) in &fixtures {
        for (name, body) in cases {
            let bytes = serde_json::to_vec(body).unwrap();
            let parsed = parse_webhook(&bytes).unwrap_or_else(|e| panic!("{file}/{name}: {e}"));
            // Every customer message in these fixtures comes from a phone number.
            if matches!(
                file.as_str(),
                "message" | "callback_button" | "callback_selection"
            ) {
                assert!(
                    matches!(parsed.as_slice(), [Inbound::Message(_)]),
                    "{file}/{name}: expected one message, got {parsed:?}"
                );
            }
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} cases");
}

#[test]
fn r6_1_statuses_parse_from_meta_fixtures() {
    let sent = only_status("message_status", "sent");
    assert_eq!(sent.message_id, "wamid.xyzxyz");
    assert_eq!(sent.status, StatusKind::Sent);
    assert_eq!(sent.at, epoch(1698266945));
    assert_eq!(sent.entry, None);
    assert_eq!(
        only_status("message_status", "delivered").status,
        StatusKind::Delivered
    );
    let read = only_status("message_status", "read");
    assert_eq!(
        (read.status, read.at),
        (StatusKind::Read, epoch(1689380458))
    );
}

#[test]
fn r6_1_failed_status_carries_code_and_reason() {
    let failed = only_status("message_status", "failed");
    match failed.status {
        StatusKind::Failed { code, reason, .. } => {
            assert_eq!(code, Some(130472));
            // Issue 18: Meta's experiment is an outcome of its own, under its own reason.
            assert_eq!(reason, "Meta marketing experiment");
        }
        other => panic!("expected failed, got {other:?}"),
    }
}

#[test]
fn r6_1_undeliverable_failure_uses_the_r4_7_wording() {
    let mut body = case("message_status", "failed");
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"] = 131026.into();
    match parse(&body).as_slice() {
        [Inbound::Status(StatusUpdate {
            status: StatusKind::Failed { code, reason, .. },
            ..
        })] => {
            assert_eq!(*code, Some(131026));
            assert_eq!(reason, "Message Undeliverable");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn r6_1_foreign_callback_data_gives_no_entry_and_ours_decodes() {
    let tracked = only_status("message_status", "with_tracker");
    assert_eq!(tracked.status, StatusKind::Sent);
    assert_eq!(tracked.entry, None, "\"some data\" is not ours");

    let ours = EntryRef {
        tenant: "t1".into(),
        campaign_id: "cmp_42".into(),
        shard: 3,
        phone: PhoneNumber::parse("972987654321").unwrap(),
    };
    let mut body = case("message_status", "with_tracker");
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
        ours.encode().into();
    match parse(&body).as_slice() {
        [Inbound::Status(s)] => assert_eq!(s.entry.as_ref(), Some(&ours)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn r6_1_group_and_played_statuses_are_ignored() {
    assert!(parse(&case("message_status", "group")).is_empty());
    assert!(parse(&case("message_status", "played")).is_empty());
}

#[test]
fn r5_2_quick_reply_tap_gives_payload_and_context() {
    let m = only_message("callback_button", "quick_reply");
    assert_eq!(m.button.as_deref(), Some("callback_data"));
    assert_eq!(m.text.as_deref(), Some("title"));
    assert_eq!(m.context_id.as_deref(), Some("wamid.xyzxyz=="));
    assert_eq!(m.message_id, "wamid.xsidjw");
    assert_eq!(m.sender_id, "1122334455667");
    assert_eq!(m.from.as_str(), "972987654321");
    assert_eq!(m.at, epoch(1698269027));
}

#[test]
fn r5_2_quick_reply_without_context_still_has_the_payload() {
    let m = only_message("callback_button", "quick_reply_without_context");
    assert_eq!(m.context_id, None);
    assert_eq!(m.button.as_deref(), Some("callback_data"));
}

#[test]
fn r5_2_interactive_button_and_list_replies_give_their_ids() {
    let b = only_message("callback_button", "button");
    assert_eq!(
        (b.button.as_deref(), b.text.as_deref()),
        (Some("callback_data"), Some("title"))
    );
    assert_eq!(b.context_id.as_deref(), Some("wamid.xyzxyz"));
    for name in ["callback", "description"] {
        let l = only_message("callback_selection", name);
        assert_eq!(l.button.as_deref(), Some("callback_data"), "{name}");
        assert_eq!(l.text.as_deref(), Some("title"), "{name}");
    }
}

#[test]
fn r5_2_text_message_gives_its_body() {
    let m = only_message("message", "text");
    assert_eq!(m.text.as_deref(), Some("Body Text"));
    assert_eq!((m.button, m.context_id), (None, None));
    assert_eq!(m.sender_id, "1122334455667");
    let reply = only_message("message", "reply");
    assert_eq!(reply.text.as_deref(), Some("replied text"));
    assert_eq!(reply.context_id.as_deref(), Some("wamid.xyzxyz=="));
}

#[test]
fn r5_2_other_message_types_are_replies_without_text() {
    for name in [
        "image",
        "audio",
        "reaction",
        "static_sticker",
        "current_location",
        "unsupported",
        "order",
    ] {
        let m = only_message("message", name);
        assert_eq!(
            (m.text.as_deref(), m.button.as_deref()),
            (None, None),
            "{name}"
        );
        assert_eq!(m.from.as_str(), "972987654321", "{name}");
    }
}

#[test]
fn business_scoped_user_ids_are_carried_where_present() {
    // Issue 18: Meta's `user_id` (2026) rides in `contacts[]` beside `wa_id`.
    let m = only_message("message", "text");
    assert_eq!(m.user_id.as_deref(), Some("US.13491208655302741918"));
    let s = only_status("message_status", "sent");
    assert_eq!(s.user_id.as_deref(), Some("US.13491208655302741918"));
    // A contact listed without one, or another number's, gives none.
    let mut body = case("message_status", "sent");
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "15550000000".into();
    let events = parse(&body);
    let [Inbound::Status(s)] = events.as_slice() else {
        panic!("one status: {events:?}");
    };
    assert_eq!(s.user_id, None);
}

#[test]
fn user_preferences_give_the_contacts_marketing_choice() {
    // Issue 18: once ignored, now a stop or resume of marketing messages (a sign-up
    // through a link resumes them too).
    for (name, stopped) in [("resume", false), ("signup", false)] {
        let events = parse(&case("user_marketing_preferences", name));
        let [Inbound::MarketingChoice(c)] = events.as_slice() else {
            panic!("{name}: {events:?}");
        };
        assert_eq!(
            (c.sender_id.as_str(), c.phone.as_str(), c.stopped),
            ("106540352242922", "16505551234", stopped),
            "{name}"
        );
        assert_eq!(c.at.timestamp(), 1731705721, "{name}");
    }
    let mut other = case("user_marketing_preferences", "resume");
    let pref = &mut other["entry"][0]["changes"][0]["value"]["user_preferences"][0];
    pref["value"] = "stop".into();
    let events = parse(&other);
    let [Inbound::MarketingChoice(c)] = events.as_slice() else {
        panic!("stop: {events:?}");
    };
    assert!(c.stopped);
    // Another category, or a value Meta may add later, is no marketing choice.
    other["entry"][0]["changes"][0]["value"]["user_preferences"][0]["category"] = "other".into();
    assert!(parse(&other).is_empty());
}

#[test]
fn r6_1_foreign_objects_and_garbage() {
    let mut body = case("message", "text");
    body["object"] = "page".into();
    assert!(parse(&body).is_empty());
    assert!(parse_webhook(b"{}").unwrap().is_empty());
    assert!(parse_webhook(b"not json").is_err());
    // A message whose sender is not a phone number is skipped, the rest kept.
    let mut body = case("message", "text");
    let msgs = &mut body["entry"][0]["changes"][0]["value"]["messages"];
    let mut bad = msgs[0].clone();
    bad["from"] = "US.13491208655302741918".into();
    msgs.as_array_mut().unwrap().insert(0, bad);
    assert_eq!(parse(&body).len(), 1);
}

#[test]
fn r7_3_valid_signature_is_accepted() {
    let body = serde_json::to_vec(&case("message_status", "sent")).unwrap();
    let header = signature_header(SECRET, &body);
    assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
    assert!(verify_signature(SECRET, &body, Some(&header)));
}

#[test]
fn r7_3_invalid_signature_is_rejected() {
    let body = serde_json::to_vec(&case("message_status", "sent")).unwrap();
    let header = signature_header(SECRET, &body);
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[pos] = b'2';
    assert!(
        !verify_signature(SECRET, &tampered, Some(&header)),
        "tampered body"
    );
    assert!(
        !verify_signature(b"wrong-secret", &body, Some(&header)),
        "wrong secret"
    );
    assert!(!verify_signature(SECRET, &body, None), "missing header");
    assert!(!verify_signature(SECRET, &body, Some("")), "empty header");
    assert!(
        !verify_signature(SECRET, &body, Some(header.trim_start_matches("sha256="))),
        "no prefix"
    );
    assert!(
        !verify_signature(SECRET, &body, Some("sha256=zz")),
        "not hex"
    );
    assert!(
        !verify_signature(SECRET, &body, Some(&header[..header.len() - 2])),
        "truncated"
    );
    assert!(
        !verify_signature(b"", &body, Some(&signature_header(b"", &body))),
        "empty secret"
    );
}

#[test]
fn r7_3_handshake_echoes_the_challenge_only_for_the_right_token() {
    let ok = verify_handshake(
        Some("subscribe"),
        Some("verify-me"),
        Some("1158201444"),
        "verify-me",
    );
    assert_eq!(ok.as_deref(), Some("1158201444"));
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("wrong"), Some("1"), "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(
            Some("subscribe"),
            Some("verify-me-too"),
            Some("1"),
            "verify-me"
        ),
        None
    );
    assert_eq!(
        verify_handshake(
            Some("unsubscribe"),
            Some("verify-me"),
            Some("1"),
            "verify-me"
        ),
        None
    );
    assert_eq!(
        verify_handshake(None, Some("verify-me"), Some("1"), "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), None, Some("1"), "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("verify-me"), None, "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), Some(""), Some("1"), ""),
        None,
        "no token configured"
    );
}
