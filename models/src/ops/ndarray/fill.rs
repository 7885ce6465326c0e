//! Output buffers written by the threads. A kernel's output used to be allocated with
//! `vec![0.0; len]`, which zero-fills the whole buffer (and takes its page faults) on the calling
//! thread while the other threads wait, before the parallel pass overwrites it. Here each task
//! zeroes its own chunk just before it writes it, while the chunk is in its cache; [`zip_map`]
//! is the element-wise pass of two inputs on it (GELU, dropout). Each fill runs
//! [`vectorized`], so that its loops use the CPU's vector width.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::ELEMENTS_PER_TASK;
use super::simd::vectorized;

/// The fewest values [`filled`] hands to rayon's threads; shorter buffers are written in order on
/// the calling thread.
const PARALLEL_LEN: usize = 2 * ELEMENTS_PER_TASK;

/// `len` values, in chunks of `chunk` values (the last may be shorter), each zeroed and then
/// passed to `fill(index, chunk)` on rayon's threads (from [`PARALLEL_LEN`] values on), `index`
/// counting the chunks from 0. The fill runs [`vectorized`]; mark a closure that holds a loop
/// `#[inline(always)]`, so that its body is compiled into the wide copy (a closure the compiler
/// leaves out of line runs four lanes wide).
pub(crate) fn filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let mut values: Vec<f32> = Vec::with_capacity(len);
    let task = |(index, uninit): (usize, &mut [MaybeUninit<f32>])| {
        for value in uninit.iter_mut() {
            value.write(0.0);
        }
        // SAFETY: every element of `uninit` was initialised just above, and `MaybeUninit<f32>`
        // has the layout of `f32`.
        let chunk = unsafe { &mut *(uninit as *mut [MaybeUninit<f32>] as *mut [f32]) };
        vectorized(
            #[inline(always)]
            || fill(index, chunk),
        );
    };
    let uninit = &mut values.spare_capacity_mut()[..len];
    if len < PARALLEL_LEN {
        // Handing a small buffer to the pool and waiting for it costs more than writing it.
        uninit.chunks_mut(chunk.max(1)).enumerate().for_each(task);
    } else {
        uninit
            .par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(task);
    }
    // SAFETY: the chunks above cover `0..len` and each was initialised by its task.
    unsafe { values.set_len(len) };
    values
}

/// `len` zeros, written by rayon's threads.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    filled(len, ELEMENTS_PER_TASK, |_, _| {})
}

/// `f(a[i], b[i])` for every `i`, written by [`filled`].
pub(crate) fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Vec<f32> {
    filled(
        a.len(),
        ELEMENTS_PER_TASK,
        #[inline(always)]
        |chunk, out| {
            let start = chunk * ELEMENTS_PER_TASK;
            for ((out, &a), &b) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
                *out = f(a, b);
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_zeroed_then_filled_once_in_place() {
        // Written in order on this thread, and in parallel (from PARALLEL_LEN on).
        for (len, chunk) in [
            (0, 4),
            (1, 4),
            (10, 4),
            (12, 4),
            (100_003, 1 << 14),
            (5, 0),
            (70_001, 3),
        ] {
            let values = filled(len, chunk, |index, values| {
                for (offset, value) in values.iter_mut().enumerate() {
                    assert_eq!(*value, 0.0, "not zeroed before the fill");
                    *value += (index * chunk.max(1) + offset) as f32;
                }
            });
            let expected: Vec<f32> = (0..len).map(|i| i as f32).collect();
            assert_eq!(values, expected, "len {len}, chunk {chunk}");
        }
        assert_eq!(zeros(70_000), vec![0.0; 70_000]);
    }
}
