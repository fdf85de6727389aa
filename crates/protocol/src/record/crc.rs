//! CRC-32C of a concatenation from the CRCs of its parts, in O(log n).
//!
//! The passthrough rewrite needs two CRCs over the same payload behind two
//! different 40-byte header prefixes (the source's, to verify it, and the
//! rewritten one, to seal it). Computing the payload's CRC once and
//! combining it with each prefix keeps the hot path at one pass over the
//! payload. The crc32c crate's own combine walks the length and costs more
//! than the CRC itself, hence this one: zlib's method (multiplication by
//! `x^(8n)` modulo the polynomial, by squaring), with the Castagnoli
//! polynomial.

/// CRC-32C (Castagnoli), reflected.
const POLY: u32 = 0x82f6_3b78;

/// `x^(2^k) mod P` for k = 0..32, reflected.
const X2N: [u32; 32] = x2n_table();

/// Multiplies `a` and `b` modulo P (reflected bit order).
const fn mult_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut p: u32 = 0;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        if m == 0 {
            break;
        }
    }
    p
}

// Evaluated at compile time only; `k < 32` bounds the index.
#[allow(clippy::indexing_slicing)]
const fn x2n_table() -> [u32; 32] {
    let mut table = [0u32; 32];
    let mut p: u32 = 1 << 30; // x^1
    let mut k = 0;
    while k < 32 {
        table[k] = p;
        p = mult_mod_p(p, p);
        k += 1;
    }
    table
}

/// `x^(n * 2^k) mod P`.
fn x2n_mod_p(mut n: u64, mut k: usize) -> u32 {
    let mut p: u32 = 1 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            p = mult_mod_p(X2N.get(k & 31).copied().unwrap_or(0), p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The operator that shifts a CRC over `len` bytes: compute it once to
/// combine several prefixes with the same suffix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrcShift(u32);

impl CrcShift {
    /// The shift over `len` bytes.
    pub(crate) fn over(len: usize) -> Self {
        Self(x2n_mod_p(len as u64, 3))
    }

    /// The CRC-32C of `a ‖ b`, given `crc_a = crc32c(a)`, `crc_b =
    /// crc32c(b)`, for the `b.len()` this shift was made for.
    pub(crate) fn combine(self, crc_a: u32, crc_b: u32) -> u32 {
        self.scale(crc_a) ^ crc_b
    }

    /// `crc_a` moved past the `len` bytes (the linear part of
    /// [`Self::combine`]).
    pub(crate) fn scale(self, crc_a: u32) -> u32 {
        mult_mod_p(self.0, crc_a)
    }
}

/// The CRC-32C of `a ‖ b`, given `crc_a = crc32c(a)`, `crc_b = crc32c(b)`
/// and `len_b = b.len()`.
#[cfg(test)]
fn crc32c_combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    CrcShift::over(len_b).combine(crc_a, crc_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_equals_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (split, end) in [
            (0, 0),
            (0, 1),
            (1, 1),
            (40, 41),
            (40, 1_000),
            (17, 65_537),
            (61, 70_000),
        ] {
            let (a, b) = data[..end].split_at(split);
            assert_eq!(
                crc32c_combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len()),
                crc32c::crc32c(&data[..end]),
                "split {split} of {end}"
            );
        }
    }
}
