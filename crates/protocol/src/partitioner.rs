//! Java's default partitioner: `(murmur2(key) & 0x7fffffff) % partitions`.
//!
//! This is what Apache Kafka's Java producer (and librdkafka's
//! `murmur2_random`) does for a record with a key, so a mirror that routes
//! keys this way puts every key where a Java producer would have.

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, with
/// Java's signed arithmetic reproduced by wrapping operations.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let len = data.len();
    // Java hashes `int length`; keys longer than i32::MAX bytes cannot exist.
    let mut h: u32 = SEED ^ (len as u32);

    let mut chunks = data.chunks_exact(4);
    for chunk in chunks.by_ref() {
        let mut k = chunk.try_into().map(u32::from_le_bytes).unwrap_or_default();
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if let Some(&b) = tail.get(2) {
        h ^= u32::from(b) << 16;
    }
    if let Some(&b) = tail.get(1) {
        h ^= u32::from(b) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which
/// overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Java's default partitioner gives `key` among `partitions`
/// (`None` if `partitions` is 0).
pub fn partition_for_key(key: &[u8], partitions: u32) -> Option<u32> {
    (to_positive(murmur2(key)) as u32).checked_rem(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Apache Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka_utils_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), *expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        // murmur2("21") is negative: the sign bit is cleared, not negated.
        assert_eq!(
            partition_for_key(b"21", 8),
            Some(((-973_932_308i32 & 0x7fff_ffff) % 8) as u32)
        );
        assert_eq!(partition_for_key(b"21", 0), None);
        assert_eq!(to_positive(i32::MIN), 0);
        for n in 1..64 {
            assert!(partition_for_key(b"any key", n).unwrap() < n);
        }
    }
}
