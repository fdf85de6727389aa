//! The consumer protocol's payloads, as a group leader reads them from
//! other members.
//!
//! Input: a `ConsumerProtocolSubscription` or `ConsumerProtocolAssignment`
//! with its version header (the bytes inside JoinGroup's member metadata
//! or SyncGroup's assignment). Both `Subscription::decode` and
//! `Assignment::decode` run on it and must never panic. Whatever decodes
//! must encode back to the same bytes (the format is canonical): the input
//! up to the end of the fields its version knows, under the version header
//! clamped to 0..=3 as Java's reader does.
#![no_main]

use kmirror_fuzz::within_alloc_budget;
use kmirror_protocol::messages::consumer_protocol::{
    Assignment, CONSUMER_PROTOCOL_MAX_VERSION, Subscription,
};
use libfuzzer_sys::fuzz_target;

/// Checks that `encoded` is `data` with the version header clamped and the
/// bytes after the known fields dropped.
fn check_canonical(data: &[u8], encoded: &[u8], what: &str) {
    let (Some((version, fields)), Some((header, rest))) = (
        data.split_first_chunk::<2>(),
        encoded.split_first_chunk::<2>(),
    ) else {
        panic!("{what}: decoded without a version header");
    };
    let clamped = i16::from_be_bytes(*version).clamp(0, CONSUMER_PROTOCOL_MAX_VERSION);
    assert_eq!(i16::from_be_bytes(*header), clamped, "{what}: version");
    assert_eq!(
        fields.get(..rest.len()),
        Some(rest),
        "{what}: fields re-encode differently"
    );
}

fuzz_target!(|data: &[u8]| {
    within_alloc_budget(data.len(), || {
        let version = data
            .split_first_chunk::<2>()
            .map(|(v, _)| i16::from_be_bytes(*v));
        if let Ok(subscription) = Subscription::decode(data) {
            let v = version.expect("a subscription decoded from fewer than 2 bytes");
            let encoded = subscription.encode(v);
            check_canonical(data, &encoded, "subscription");
            assert_eq!(Subscription::decode(&encoded).ok(), Some(subscription));
        }
        match (Assignment::decode(data), version) {
            (Ok(assignment), None) => {
                assert!(data.is_empty(), "an assignment decoded from one byte");
                assert_eq!(assignment, Assignment::default());
            }
            (Ok(assignment), Some(v)) => {
                let encoded = assignment.encode(v);
                check_canonical(data, &encoded, "assignment");
                assert_eq!(Assignment::decode(&encoded).ok(), Some(assignment));
            }
            (Err(_), _) => {}
        }
    });
});
