//! Recycled buffers for large response frames.
//!
//! A Fetch response's record batches are forwarded as slices of the frame
//! they arrived in (zero copy), so a frame lives until the destination has
//! acknowledged its last batch. Read into a fresh allocation each time,
//! every large frame is new memory from the OS: each page faults on first
//! touch and is zeroed, and is unmapped again when freed. Here a large frame
//! is read into a buffer of at least its size taken from a small pool
//! (allocated in size classes an eighth of the next power of two apart, so
//! that frames of varying sizes find a buffer to reuse), and
//! the buffer goes back to the pool when the last slice of the frame is
//! dropped ([`Bytes::from_owner`]), so steady-state mirroring reuses memory
//! that is already mapped. The pool keeps at most [`POOL_BYTES`] of idle
//! buffers.

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

/// Frames at least this large are read into pooled buffers.
pub(crate) const LARGE_FRAME: usize = 256 * 1024;
/// Idle bytes the pool keeps at most: more than one Fetch response of the
/// largest size kmirror asks for by default (`fetch.max.bytes`, 50 MiB,
/// capped at half of the 64 MiB `buffer.memory`), so that even fetches of
/// many partitions reuse mapped memory. (With 32 MiB, 64 partitions of
/// 16 KiB batches spent a quarter of kmirror's CPU on page faults.)
const POOL_BYTES: usize = 64 * 1024 * 1024;
/// Idle buffers the pool keeps at most.
const POOL_BUFFERS: usize = 32;

/// Idle buffers, to be reused for frames of about their size.
#[derive(Debug, Default)]
pub(crate) struct FrameBuffers {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl FrameBuffers {
    /// The process-wide pool.
    pub(crate) fn global() -> &'static FrameBuffers {
        static POOL: OnceLock<FrameBuffers> = OnceLock::new();
        POOL.get_or_init(FrameBuffers::default)
    }

    /// An empty buffer with room for `size` bytes: an idle one of at most
    /// twice that capacity if there is one, else a new one.
    pub(crate) fn take(&self, size: usize) -> Vec<u8> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let best = idle
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= size && b.capacity() / 2 <= size)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut buffer = idle.swap_remove(i);
                buffer.clear();
                buffer
            }
            None => Vec::with_capacity(size_class(size)),
        }
    }

    /// `buffer` as [`Bytes`] that returns it to the pool when the last
    /// slice of it is dropped.
    pub(crate) fn freeze(&'static self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buffer, pool: self })
    }

    fn give_back(&self, buffer: Vec<u8>) {
        if buffer.capacity() > POOL_BYTES {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = idle.iter().map(Vec::capacity).sum();
        if idle.len() < POOL_BUFFERS && held + buffer.capacity() <= POOL_BYTES {
            idle.push(buffer);
        }
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A frame's buffer, handed back to its pool on drop.
/// The capacity a new buffer for a `size`-byte frame gets: `size` rounded
/// up to a quarter of its power of two (at most a quarter more memory),
/// so that buffers come in few sizes and serve the next frames of about
/// the same size.
fn size_class(size: usize) -> usize {
    let step = (size.checked_next_power_of_two().unwrap_or(size) / 8).max(1);
    size.div_ceil(step).saturating_mul(step).max(size)
}

struct Pooled {
    buffer: Vec<u8>,
    pool: &'static FrameBuffers,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static FrameBuffers {
        Box::leak(Box::default())
    }

    #[test]
    fn a_buffer_comes_back_when_the_last_slice_is_dropped_and_is_reused() {
        let pool = pool();
        let mut buffer = pool.take(1000);
        buffer.extend_from_slice(&[7; 1000]);
        let address = buffer.as_ptr();
        let frame = pool.freeze(buffer);
        let slice = frame.slice(10..20);
        drop(frame);
        assert_eq!(pool.idle(), 0, "a slice still holds it");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(900);
        assert_eq!(again.as_ptr(), address, "reused, not reallocated");
        assert!(again.is_empty());
    }

    #[test]
    fn buffers_far_larger_than_needed_are_not_used_for_small_frames() {
        let pool = pool();
        pool.give_back(Vec::with_capacity(10_000));
        assert!(pool.take(1_000).capacity() < 10_000);
        assert_eq!(pool.idle(), 1);
        assert!(pool.take(6_000).capacity() >= 10_000);
    }

    #[test]
    fn new_buffers_come_in_size_classes_that_serve_nearby_sizes() {
        for size in [1, 1000, LARGE_FRAME, 300_000, 1_048_577, 5_000_000] {
            let class = size_class(size);
            assert!(
                class >= size && class <= size + size / 4,
                "{size} -> {class}"
            );
        }
        assert_eq!(size_class(1_000_000), size_class(1_040_000));
        let pool = pool();
        let buffer = pool.take(1_000_000);
        let address = buffer.as_ptr();
        drop(pool.freeze(buffer));
        let again = pool.take(1_040_000);
        assert_eq!(
            again.as_ptr(),
            address,
            "a slightly larger frame reuses the buffer"
        );
    }

    #[test]
    fn the_pool_keeps_a_bounded_amount() {
        let pool = pool();
        for _ in 0..POOL_BUFFERS + 5 {
            pool.give_back(Vec::with_capacity(1024));
        }
        assert_eq!(pool.idle(), POOL_BUFFERS);
        pool.give_back(Vec::with_capacity(POOL_BYTES + 1));
        assert_eq!(pool.idle(), POOL_BUFFERS);
    }
}
