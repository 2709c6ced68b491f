//! Pure types and rules of the campaign engine. No I/O lives here: the use cases in
//! `crate::app` load state through the ports, ask these types what to do, and store the
//! answer.

pub mod account;
pub mod answer;
pub mod blocklist;
pub mod campaign;
pub mod contact;
pub mod conversation;
pub mod country_rules;
pub mod cursor;
pub mod eligibility;
pub mod error;
pub mod events;
pub mod hopper;
pub mod hopper_view;
pub mod idempotency;
pub mod ids;
pub mod import;
pub mod inbound;
pub mod operation;
pub mod outcome;
pub mod pacing;
pub mod phone;
pub mod portfolio;
pub mod pricing;
pub mod sms;
pub mod stats;
pub mod template;
pub mod tenant;
pub mod voice;

pub use error::DomainError;

/// Instants are UTC everywhere inside the engine.
pub type Time = chrono::DateTime<chrono::Utc>;

/// Stable 64-bit FNV-1a hash: shard numbers must not change between processes or
/// compiler versions (std's `DefaultHasher` promises neither).
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A new random identifier with a short prefix naming its kind (`cmp_…`, `acc_…`).
pub fn new_id(prefix: &str) -> String {
    if let Some(id) = SEEDED_IDS.with(|s| {
        s.borrow_mut().as_mut().map(|n| {
            *n += 1;
            format!("{prefix}_{:032x}", *n)
        })
    }) {
        return id;
    }
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

thread_local! {
    static SEEDED_IDS: std::cell::RefCell<Option<u128>> = const { std::cell::RefCell::new(None) };
}

/// Makes [`new_id`] on this thread count up from a value derived from `seed` instead of
/// drawing random ids, so a seeded simulation (one thread) replays with the same ids;
/// `None` goes back to random ids. Nothing in the product calls it.
pub fn seed_ids(seed: Option<u64>) {
    SEEDED_IDS.with(|s| *s.borrow_mut() = seed.map(|v| u128::from(v) << 64));
}
