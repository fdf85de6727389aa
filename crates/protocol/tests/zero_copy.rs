//! The passthrough path moves payload bytes from a Fetch response to a
//! Produce request without copying one of them.
//!
//! The proof counts bytes: every chunk of the encoded Produce request either
//! lies inside the received Fetch frame (moved, not copied) or was written
//! by kmirror. The written bytes must be exactly the framing and the
//! 61-byte headers; every payload byte must be found in place.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_response as kp;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kmirror_protocol::Compression;
use kmirror_protocol::messages::fetch::decode_fetch_response;
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
};
use kmirror_protocol::record::{
    BATCH_HEADER_LEN, BatchBuilder, Disposition, LogEntry, PassthroughPolicy, ProducerStamp,
    RecordBatches, classify, rewrite_for_produce,
};

/// A fetched partition's records: `batches` batches of `per_batch` 1 KiB
/// records each, with the given codec, at consecutive offsets.
fn source_records(codec: Compression, batches: usize, per_batch: usize) -> Bytes {
    let mut out = BytesMut::new();
    let mut offset = 0i64;
    let value = vec![b'x'; 1024];
    for _ in 0..batches {
        let mut b = BatchBuilder::new(codec);
        for i in 0..per_batch {
            b.push(
                1_700_000_000_000 + i as i64,
                Some(format!("key-{i}").as_bytes()),
                Some(&value),
                std::iter::empty(),
            )
            .unwrap();
        }
        let built = b.build(ProducerStamp::NONE).unwrap();
        let mut bytes = built.to_bytes().to_vec();
        bytes[..8].copy_from_slice(&offset.to_be_bytes());
        offset += per_batch as i64;
        out.extend_from_slice(&bytes);
    }
    out.freeze()
}

fn fetch_frame(records: Bytes) -> Bytes {
    let resp = kp::FetchResponse::default().with_responses(vec![
        kp::FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("mirrored")))
            .with_partitions(vec![
                kp::PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(1_000)
                    .with_records(Some(records)),
            ]),
    ]);
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, 12).unwrap();
    buf.freeze()
}

#[test]
fn passthrough_copies_zero_payload_bytes_per_payload_byte() {
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let frame = fetch_frame(source_records(codec, 4, 64));
        let frame_range = frame.as_ptr_range();

        let response = decode_fetch_response(frame.clone(), 12).unwrap();
        let partition = &response.topics[0].partitions[0];
        let records = partition.records.clone().unwrap();

        let policy = PassthroughPolicy::at(0);
        let mut produce_partitions = Vec::new();
        let mut payload_total = 0usize;
        for (i, entry) in RecordBatches::new(records).enumerate() {
            let LogEntry::Batch(view) = entry.unwrap() else {
                panic!("v2 expected")
            };
            assert_eq!(
                classify(view.header(), &policy, false),
                Disposition::Passthrough
            );
            let stamp = ProducerStamp {
                producer_id: 1,
                producer_epoch: 0,
                base_sequence: i as i32 * 64,
            };
            let batch = rewrite_for_produce(&view, stamp);
            payload_total += batch.payload().len();
            // One batch per partition per request (Kafka's rule): use four
            // partitions of the destination for the four source batches.
            produce_partitions.push(ProducePartition {
                index: i as i32,
                batch,
            });
        }
        let request = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topics: vec![ProduceTopic {
                name: StrBytes::from_static_str("mirrored"),
                partitions: produce_partitions,
            }],
        };
        let produce = encode_produce_request(&request, 9, 1, Some("kmirror")).unwrap();

        let mut in_place = 0usize;
        let mut written = 0usize;
        for chunk in produce.chunks() {
            let r = chunk.as_ptr_range();
            if frame_range.start <= r.start && r.end <= frame_range.end {
                in_place += chunk.len();
            } else {
                written += chunk.len();
            }
        }
        let copied_payload_bytes = payload_total - in_place;
        assert_eq!(
            copied_payload_bytes, 0,
            "{codec}: copies per payload byte must be 0"
        );
        assert_eq!(in_place + written, produce.len());
        // What kmirror wrote is framing plus one 61-byte header per batch,
        // independent of the payload size.
        assert!(
            written < 4 * BATCH_HEADER_LEN + 200,
            "{codec}: wrote {written} bytes"
        );
    }
}

#[test]
fn written_bytes_do_not_grow_with_payload_size() {
    let written = |per_batch: usize| {
        let frame = fetch_frame(source_records(Compression::None, 1, per_batch));
        let response = decode_fetch_response(frame.clone(), 12).unwrap();
        let records = response.topics[0].partitions[0].records.clone().unwrap();
        let Some(Ok(LogEntry::Batch(view))) = RecordBatches::new(records).next() else {
            panic!()
        };
        let request = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 1,
            topics: vec![ProduceTopic {
                name: StrBytes::from_static_str("t"),
                partitions: vec![ProducePartition {
                    index: 0,
                    batch: rewrite_for_produce(&view, ProducerStamp::NONE),
                }],
            }],
        };
        let produce = encode_produce_request(&request, 9, 1, None).unwrap();
        let range = frame.as_ptr_range();
        produce
            .chunks()
            .iter()
            .filter(|c| !(range.start <= c.as_ptr() && c.as_ptr_range().end <= range.end))
            .map(Bytes::len)
            .sum::<usize>()
    };
    // Only the varint length prefix of the records may grow (by at most 4
    // bytes); nothing kmirror writes scales with the payload.
    let (small, large) = (written(1), written(900));
    assert!(
        large >= small && large - small <= 4,
        "{small} vs {large} bytes written"
    );
}
