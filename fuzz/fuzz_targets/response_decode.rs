//! Response decoding: framing, response headers and every response body
//! kmirror reads.
//!
//! Input: `[api selector, version selector, frame...]`. The first byte picks
//! an API of `SUPPORTED_APIS` (modulo its length), the second a version in
//! that API's `ours` range (modulo its width); the rest is a response frame
//! without its size prefix, decoded as the connection layer does: response
//! header, then body. A Fetch response's record bytes are then walked like
//! the mirror's fast path does. Independently, the whole input is fed to a
//! `FrameDecoder` as a receive buffer.
#![no_main]

use bytes::{Bytes, BytesMut};
use kmirror_fuzz::{exercise_log_entries, within_alloc_budget};
use kmirror_protocol::SUPPORTED_APIS;
use kmirror_protocol::frame::FrameDecoder;
use kmirror_protocol::header::{decode_response_header, peek_correlation_id};
use kmirror_protocol::messages::{ResponseBody, decode_response_body};
use libfuzzer_sys::fuzz_target;

/// The frame size limit of the decoder under test.
const MAX_FRAME: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    within_alloc_budget(data.len(), || {
        cut_frames(data);
        decode_response(data);
    });
});

/// Cuts frames out of `data` until the decoder wants more bytes or fails.
fn cut_frames(data: &[u8]) {
    let decoder = FrameDecoder::new(MAX_FRAME);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= MAX_FRAME);
                assert_eq!(buf.len(), before - 4 - frame.len());
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                if let Ok(Some(size)) = decoder.announced_size(&buf) {
                    assert!(size > buf.len() - 4, "a complete frame was left");
                }
                break;
            }
            Err(_) => break,
        }
    }
}

fn decode_response(data: &[u8]) {
    let [api_sel, version_sel, frame @ ..] = data else {
        return;
    };
    let spec = &SUPPORTED_APIS[usize::from(*api_sel) % SUPPORTED_APIS.len()];
    let width = u16::try_from(spec.ours.max - spec.ours.min + 1).unwrap_or(1);
    let version = spec.ours.min + (u16::from(*version_sel) % width) as i16;
    let frame = Bytes::copy_from_slice(frame);

    let Ok((correlation_id, body)) = decode_response_header(frame.clone(), spec.key, version)
    else {
        return;
    };
    assert_eq!(peek_correlation_id(&frame), Some(correlation_id));
    assert!(body.len() <= frame.len() - 4);
    let Ok(response) = decode_response_body(spec.key, version, body) else {
        return;
    };
    if let ResponseBody::Fetch(fetch) = response {
        for partition in fetch.topics.iter().flat_map(|t| &t.partitions) {
            if let Some(records) = &partition.records {
                exercise_log_entries(records, &mut partition.aborted_filter());
            }
        }
    }
}
