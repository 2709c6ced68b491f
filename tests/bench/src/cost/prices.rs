//! AWS list prices the cost per million messages is computed from: us-east-1, on-demand,
//! first pricing tier, no free tier (a campaign engine at a million messages is past
//! every free tier). Read on 2026-11-21; each price names where it was read.

/// When the prices below were read.
pub const READ_ON: &str = "2026-11-21";

/// One list price.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    pub what: &'static str,
    /// US dollars per `unit`.
    pub usd: f64,
    pub unit: &'static str,
    pub source: &'static str,
}

/// DynamoDB on-demand, Standard table class: per write request unit (1 KB).
pub const DYNAMO_WRU: Price = Price {
    what: "DynamoDB on-demand write request unit",
    usd: 0.625 / 1e6,
    unit: "WRU (write of up to 1 KB)",
    source: "https://aws.amazon.com/dynamodb/pricing/on-demand/ ($0.625 per million WRU since the 2024-11-01 50% cut; as quoted by airbyte.com/data-engineering-resources/dynamodb-pricing, 2025-07-21)",
};

/// DynamoDB on-demand: per read request unit (4 KB strongly consistent, 8 KB eventually).
pub const DYNAMO_RRU: Price = Price {
    what: "DynamoDB on-demand read request unit",
    usd: 0.125 / 1e6,
    unit: "RRU (strongly consistent read of up to 4 KB)",
    source:
        "https://aws.amazon.com/dynamodb/pricing/on-demand/ ($0.125 per million RRU; same sources)",
};

/// Lambda requests (both architectures).
pub const LAMBDA_REQUEST: Price = Price {
    what: "Lambda request",
    usd: 0.20 / 1e6,
    unit: "invocation",
    source: "https://aws.amazon.com/lambda/pricing/ ($0.20 per million requests; as tabulated in artillery's lib/platform/aws-lambda/prices.js and docs/lambdas-md/lambda-13-cost.md of lambda_local_runner, 2026-05-11)",
};

/// Lambda duration on arm64 (Graviton), first 6 billion GB-seconds a month.
pub const LAMBDA_GB_S_ARM: Price = Price {
    what: "Lambda duration, arm64",
    usd: 0.000_013_333_4,
    unit: "GB-second",
    source: "https://aws.amazon.com/lambda/pricing/ ($0.0000133334 per GB-s; same sources)",
};

/// Lambda duration on x86_64, first 6 billion GB-seconds a month.
pub const LAMBDA_GB_S_X86: Price = Price {
    what: "Lambda duration, x86_64",
    usd: 0.000_016_666_7,
    unit: "GB-second",
    source: "https://aws.amazon.com/lambda/pricing/ ($0.0000166667 per GB-s; same sources)",
};

/// API Gateway HTTP API, first 300 million requests a month (metered per 512 KB).
pub const HTTP_API_REQUEST: Price = Price {
    what: "API Gateway HTTP API request",
    usd: 1.00 / 1e6,
    unit: "request (up to 512 KB)",
    source: "https://aws.amazon.com/api-gateway/pricing/ ($1.00 per million, first 300M; as quoted by awsforengineers.com/blog/aws-api-gateway-pricing-explained, 2025-05-19)",
};

/// SQS standard queue requests, first 100 billion a month (each 64 KB chunk a request).
pub const SQS_REQUEST: Price = Price {
    what: "SQS standard request",
    usd: 0.40 / 1e6,
    unit: "request (up to 64 KB, 1-10 messages)",
    source: "https://aws.amazon.com/sqs/pricing/ ($0.40 per million; as quoted by cloudburn.io/blog/amazon-sqs-pricing, 2026-03-14)",
};

/// EventBridge custom events put on a bus (each 64 KB chunk an event).
pub const EVENTBRIDGE_EVENT: Price = Price {
    what: "EventBridge custom event",
    usd: 1.00 / 1e6,
    unit: "event (up to 64 KB)",
    source: "https://aws.amazon.com/eventbridge/pricing/ ($1.00 per million custom events; as quoted by cloudburn.io/blog/amazon-eventbridge-pricing, 2026-03-13)",
};

/// SNS standard topic publishes (AWS End User Messaging Social's events reach the
/// deployment through its SNS topic); deliveries to SQS are not charged.
pub const SNS_PUBLISH: Price = Price {
    what: "SNS publish",
    usd: 0.50 / 1e6,
    unit: "publish (up to 64 KB; first million a month free)",
    source: "https://aws.amazon.com/sns/pricing/ ($0.50 per million requests, standard topics; no charge for deliveries to SQS)",
};

/// EventBridge Scheduler invocations (the launcher's tick and the sweeper's schedule).
pub const SCHEDULER_INVOCATION: Price = Price {
    what: "EventBridge Scheduler invocation",
    usd: 1.00 / 1e6,
    unit: "invocation (after 14M free a month)",
    source: "https://aws.amazon.com/eventbridge/pricing/ ($1.00 per million after 14M free; same source)",
};

/// Every price used, for the report.
pub const ALL: [Price; 10] = [
    DYNAMO_WRU,
    DYNAMO_RRU,
    LAMBDA_REQUEST,
    LAMBDA_GB_S_ARM,
    LAMBDA_GB_S_X86,
    HTTP_API_REQUEST,
    SQS_REQUEST,
    EVENTBRIDGE_EVENT,
    SCHEDULER_INVOCATION,
    SNS_PUBLISH,
];

/// The functions' memory (infra/template.yaml, Globals: MemorySize 128).
pub const LAMBDA_MEMORY_GB: f64 = 128.0 / 1024.0;

/// The price as text: "$0.625 per million WRU (write of up to 1 KB)".
pub fn describe(p: &Price) -> String {
    let per_million = p.usd * 1e6;
    if per_million >= 0.01 {
        format!("${per_million:.3} per million {}", p.unit)
    } else {
        format!("${:.10} per {}", p.usd, p.unit)
    }
}
