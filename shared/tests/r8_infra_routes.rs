//! R8.1/R8.3 in AWS: every path of the operator API reaches the api function, and the
//! template deploys every function. API Gateway only forwards paths the SAM template
//! routes, so a route served locally but missing from `infra/template.yaml` would answer
//! 404 in production while every local test passes.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// The `Path:` values of the template's HttpApi events.
fn routed_paths() -> BTreeSet<String> {
    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let text = std::fs::read_to_string(&template).expect("infra/template.yaml");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Path:"))
        .map(|p| p.trim().to_owned())
        .collect()
}

/// Whether an API Gateway route pattern (`/a`, `/a/{proxy+}`) matches an OpenAPI path.
fn routes(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix("/{proxy+}") {
        Some(prefix) => path.starts_with(&format!("{prefix}/")),
        None => pattern == path,
    }
}

#[test]
fn r8_1_every_documented_api_path_is_routed_by_the_sam_template() {
    let routed = routed_paths();
    assert!(routed.contains("/campaigns"), "template parsed: {routed:?}");
    let doc = shared::http::openapi::document();
    let missing: Vec<String> = doc
        .paths
        .paths
        .keys()
        .filter(|p| !routed.iter().any(|r| routes(r, p)))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "paths the api serves but API Gateway would not forward: {missing:?}"
    );
}

/// R8.3: the SAM template deploys every Lambda package of the workspace (each
/// `functions/*` except the local runner is built as a `Binary` of a function resource),
/// with the data it needs: the table, the queues, the bus and the schedules.
#[test]
fn r8_3_template_deploys_every_function_and_the_resources_they_use() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap();
    let binaries: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary:"))
        .map(|b| b.trim().to_owned())
        .collect();
    let packages: BTreeSet<String> = std::fs::read_dir(root.join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "local")
        .collect();
    assert_eq!(binaries, packages, "every function package is deployed");
    for resource in [
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Events::EventBus",
        "AWS::Scheduler::ScheduleGroup",
        "AWS::Serverless::HttpApi",
    ] {
        assert!(text.contains(resource), "the template declares {resource}");
    }
}

/// The lines of one top-level resource (or parameter) of the template: from `  name:` to
/// the next line at the same indent.
fn resource_block(text: &str, name: &str) -> String {
    let head = format!("  {name}:");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != head);
    let mut out = vec![lines.next().unwrap_or_else(|| panic!("{name} is declared"))];
    out.extend(
        lines.take_while(|l| {
            l.is_empty() || l.starts_with("    ") || l.trim_start().starts_with('#')
        }),
    );
    out.join("\n")
}

/// Issue 13, finding 12: a flood of unsigned webhook POSTs cannot take the account's
/// concurrency from the sender, the HTTP API is throttled, both dead-letter queues and the
/// age of the oldest send raise alarms, and each function may use only the DynamoDB
/// actions it calls (the webhook reads one account item, for Twilio's signatures).
#[test]
fn infrastructure_limits_floods_alarms_on_dead_letters_and_narrows_policies() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap();
    let webhook = resource_block(&text, "WebhookFunction");
    assert!(
        webhook.contains("ReservedConcurrentExecutions:"),
        "{webhook}"
    );
    // It reads one item (the Twilio account a callback names) and writes none.
    let actions: Vec<&str> = webhook
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Action: dynamodb:"))
        .collect();
    assert_eq!(
        actions,
        ["GetItem"],
        "the webhook only reads an account: {webhook}"
    );
    assert!(!webhook.contains("- dynamodb:"), "{webhook}");
    let api = resource_block(&text, "HttpApi");
    for setting in [
        "DefaultRouteSettings:",
        "ThrottlingBurstLimit:",
        "ThrottlingRateLimit:",
    ] {
        assert!(api.contains(setting), "HttpApi sets {setting}");
    }
    let alarms: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_owned())
        .map(|name| resource_block(&text, &name))
        .filter(|b| b.contains("Type: AWS::CloudWatch::Alarm"))
        .collect();
    for (queue, metric) in [
        ("SendDeadLetterQueue", "ApproximateNumberOfMessagesVisible"),
        (
            "InboundDeadLetterQueue",
            "ApproximateNumberOfMessagesVisible",
        ),
        ("SendQueue.QueueName", "ApproximateAgeOfOldestMessage"),
    ] {
        assert!(
            alarms
                .iter()
                .any(|a| a.contains(metric) && a.contains(&format!("!GetAtt {queue}"))),
            "an alarm on {metric} of {queue}"
        );
    }
    assert!(
        !text.contains("DynamoDBCrudPolicy"),
        "no blanket CRUD policy"
    );
    let writes = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    ];
    for (function, deletes) in [
        ("ApiFunction", true),
        ("SweeperFunction", true),
        ("ImporterFunction", true),
        ("LauncherFunction", false),
        ("SenderFunction", false),
        ("InboundFunction", false),
    ] {
        let block = resource_block(&text, function);
        for action in writes {
            assert!(block.contains(action), "{function} may {action}");
        }
        assert_eq!(block.contains("dynamodb:DeleteItem"), deletes, "{function}");
        assert!(
            !block.contains("dynamodb:Scan") && !block.contains("dynamodb:*"),
            "{function}"
        );
    }
}

/// Issue 18: AWS End User Messaging Social's events reach the inbound worker through an SNS
/// topic only the service may publish on, subscribed by the inbound queue with raw
/// delivery (the worker reads the event itself); only the sender may send, from the
/// account's numbers, and the topic is an output to set as each WABA's event destination.
#[test]
fn aws_social_events_reach_the_inbound_queue_through_a_closed_topic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap();
    let policy = resource_block(&text, "WhatsAppEventsTopicPolicy");
    assert!(
        policy.contains("social-messaging.amazonaws.com"),
        "{policy}"
    );
    assert!(policy.contains("aws:SourceAccount"), "{policy}");
    let sub = resource_block(&text, "WhatsAppEventsSubscription");
    for line in [
        "Protocol: sqs",
        "!GetAtt InboundQueue.Arn",
        "RawMessageDelivery: true",
    ] {
        assert!(sub.contains(line), "{sub}");
    }
    let queue_policy = resource_block(&text, "InboundQueuePolicy");
    assert!(
        queue_policy.contains("aws:SourceArn: !Ref WhatsAppEventsTopic"),
        "{queue_policy}"
    );
    let sender = resource_block(&text, "SenderFunction");
    assert!(
        sender.contains("social-messaging:SendWhatsAppMessage"),
        "{sender}"
    );
    assert!(sender.contains(":phone-number-id/*"), "{sender}");
    for other in [
        "ApiFunction",
        "InboundFunction",
        "WebhookFunction",
        "LauncherFunction",
    ] {
        assert!(
            !resource_block(&text, other).contains("social-messaging:"),
            "{other} sends nothing"
        );
    }
    let outputs = &text[text.find("\nOutputs:").expect("outputs")..];
    assert!(outputs.contains("  WhatsAppEventsTopicArn:"));
}

/// Issue 15: the console's files reach the api function without a token (the page signs
/// in first), and only they: every other route keeps the JWT authorizer.
#[test]
fn console_files_are_routed_without_the_authorizer() {
    use utoipa::OpenApi;
    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let text = std::fs::read_to_string(&template).expect("infra/template.yaml");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let open_paths: BTreeSet<String> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let path = l.strip_prefix("Path:")?.trim();
            let next = lines.get(i + 1..i + 4)?;
            next.iter()
                .any(|l| l.starts_with("Authorizer: NONE"))
                .then(|| path.to_owned())
        })
        .collect();
    let console = shared::http::console::ConsoleApi::openapi();
    for path in console.paths.paths.keys() {
        assert!(
            open_paths.iter().any(|r| routes(r, path)),
            "{path} is not routed without the authorizer: {open_paths:?}"
        );
    }
    let expected: BTreeSet<String> = ["/", "/console", "/console/{proxy+}", "/openapi.json"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        open_paths, expected,
        "only the console and the API description go without a token"
    );
}
