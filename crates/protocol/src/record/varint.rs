//! Zig-zag varints as used inside v2 records (signed, unlike the unsigned
//! varints of the flexible message format).

use bytes::{Buf, BufMut};

/// Reads a zig-zag varint of at most 5 bytes; `None` if truncated or too long.
pub(crate) fn read_varint(buf: &mut impl Buf) -> Option<i32> {
    let mut raw: u32 = 0;
    for i in 0..5 {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        if i == 4 && b > 0x0f {
            return None;
        }
        raw |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    None
}

/// Reads a zig-zag varlong of at most 10 bytes; `None` if truncated or too long.
pub(crate) fn read_varlong(buf: &mut impl Buf) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        if i == 9 && b > 0x01 {
            return None;
        }
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Appends a zig-zag varint.
pub(crate) fn put_varint(buf: &mut impl BufMut, v: i32) {
    let mut raw = ((v << 1) ^ (v >> 31)) as u32;
    while raw >= 0x80 {
        buf.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.put_u8(raw as u8);
}

/// Appends a zig-zag varlong.
pub(crate) fn put_varlong(buf: &mut impl BufMut, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        buf.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.put_u8(raw as u8);
}

/// Encoded size of a zig-zag varint.
pub(crate) fn varint_len(v: i32) -> usize {
    let raw = ((v << 1) ^ (v >> 31)) as u32;
    (32 - raw.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Encoded size of a zig-zag varlong.
pub(crate) fn varlong_len(v: i64) -> usize {
    let raw = ((v << 1) ^ (v >> 63)) as u64;
    (64 - raw.leading_zeros() as usize).div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_roundtrip_and_lengths() {
        for v in [0, 1, -1, 63, -64, 64, 8191, -8192, i32::MAX, i32::MIN] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
            assert_eq!(read_varint(&mut &buf[..]), Some(v));
        }
        for v in [0i64, -1, 1 << 40, i64::MAX, i64::MIN] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v), "{v}");
            assert_eq!(read_varlong(&mut &buf[..]), Some(v));
        }
    }

    #[test]
    fn kafka_examples() {
        // From Kafka's ByteUtilsTest: -1 is 0x01, 1 is 0x02, 300 is [0xd8, 0x04].
        assert_eq!(read_varint(&mut &[0x01u8][..]), Some(-1));
        assert_eq!(read_varint(&mut &[0x02u8][..]), Some(1));
        assert_eq!(read_varint(&mut &[0xd8u8, 0x04][..]), Some(300));
    }

    #[test]
    fn overlong_and_truncated_are_refused() {
        assert_eq!(
            read_varint(&mut &[0x80u8, 0x80, 0x80, 0x80, 0x80, 0x01][..]),
            None
        );
        assert_eq!(read_varint(&mut &[0x80u8][..]), None);
        assert_eq!(read_varlong(&mut &[0xffu8; 11][..]), None);
    }
}
