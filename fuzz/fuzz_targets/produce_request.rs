//! The Produce request decoder and the conformance checker built on it.
//!
//! Input: a Produce request frame without its size prefix (header first).
//! `decode_produce_request` and `ConformanceChecker::check` must never
//! panic. The checker is stateful across requests (producer sequences), so
//! the request is checked twice, the second time by a checker that knows
//! topic rules for the request's first topic, which exercises the
//! sequence-tracking branches and the topic-config rules.
#![no_main]

use bytes::Bytes;
use kmirror_fuzz::within_alloc_budget;
use kmirror_protocol::conformance::{ConformanceChecker, TopicRules};
use kmirror_protocol::messages::produce::decode_produce_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    within_alloc_budget(data.len(), || {
        let request = Bytes::copy_from_slice(data);
        let decoded = decode_produce_request(request.clone());

        let mut checker = ConformanceChecker::new();
        let violations = checker.check(request.clone());
        if decoded.is_err() {
            assert_eq!(
                violations.len(),
                1,
                "an unparseable request is one violation"
            );
        }

        let first_topic = decoded
            .ok()
            .and_then(|d| d.topics.first().map(|(name, _)| name.to_string()));
        if let Some(topic) = first_topic {
            let rules = TopicRules {
                max_message_bytes: Some(data.len() / 2),
                log_append_time: true,
                compacted: true,
            };
            let mut checker = checker.with_topic(&topic, rules);
            let _ = checker.check(request.clone());
            let _ = checker.check(request);
        }
    });
});
