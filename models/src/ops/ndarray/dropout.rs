//! Dropout masks drawn natively: one counter-based hash per element (SplitMix64's output
//! function of `key + index · γ`), in parallel chunks, where Burn 0.19.1's ndarray backend draws
//! a Bernoulli sample per element from a ChaCha generator on one thread. The key of each mask
//! comes from Burn's own seeded generator, so `Backend::seed` still makes runs repeatable. The
//! mask is applied natively too (`x ⊙ mask`, and `∂y ⊙ mask` backward), on the threads.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use super::ELEMENTS_PER_TASK;
use super::bridge::{
    Ad, Inner, f32_array, nd_tensor, primitive_of, register_input_gradient, slice, tensor_of,
};
use super::fill::{filled, zip_map};
use crate::ops::dispatch::Native;

/// SplitMix64's increment γ (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective mix of all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fresh 48-bit key from Burn's ndarray generator (two uniform draws of 24 random bits each).
fn key() -> u64 {
    let draws = Tensor::<Inner, 1>::random([2], Distribution::Default, &Default::default())
        .into_data()
        .to_vec::<f32>()
        .expect("f32 draws");
    // A uniform f32 in [0, 1) is a multiple of 2⁻²⁴.
    let bits = |u: f32| (u * (1u32 << 24) as f32) as u64;
    bits(draws[0]) << 24 | bits(draws[1])
}

/// `len` mask values of key `key`: 0 where an element is dropped (probability `prob`), else
/// `1 / (1 − prob)`.
pub(crate) fn mask_values(len: usize, prob: f64, key: u64) -> Vec<f32> {
    // Dropped when the hash's high 32 bits fall under prob · 2³².
    let threshold = (prob * 4_294_967_296.0) as u64;
    let scale = (1.0 / (1.0 - prob)) as f32;
    filled(
        len,
        ELEMENTS_PER_TASK,
        #[inline(always)]
        |chunk, values| {
            let start = (chunk * ELEMENTS_PER_TASK) as u64;
            for (offset, value) in values.iter_mut().enumerate() {
                let index = start + offset as u64;
                let hash = mix(key.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)));
                if hash >> 32 >= threshold {
                    *value = scale;
                }
            }
        },
    )
}

/// `len` mask values under a fresh key from Burn's generator.
pub(crate) fn mask_values_drawn(len: usize, prob: f64) -> Vec<f32> {
    mask_values(len, prob, key())
}

/// `x ⊙ mask`, element by element on the threads.
fn times_mask(x: &[f32], mask: &[f32]) -> Vec<f32> {
    zip_map(x, mask, |x, mask| x * mask)
}

/// The autodiff step of [`dropped`]: `∂x = ∂y ⊙ mask`.
#[derive(Debug)]
struct DropoutBackward;

impl Backward<Inner, 1> for DropoutBackward {
    /// The mask.
    type State = Vec<f32>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        register_input_gradient(ops, grads, |grad, mask| {
            nd_tensor(times_mask(slice(&grad), mask), grad.shape())
        });
    }
}

/// `x ⊙ mask` for a fresh dropout mask (`1 / (1 − prob)` where kept, 0 where dropped), `B`
/// being the ndarray backend `native`: what `x * mask` computed with Burn's operations (the same
/// products, bit for bit), in one pass each way on the threads.
pub(crate) fn dropped<B: Backend, const D: usize>(
    native: Native,
    x: Tensor<B, D>,
    prob: f64,
) -> Tensor<B, D> {
    let mask = mask_values_drawn(x.shape().num_elements(), prob);
    if native == Native::NdArray {
        let x = f32_array(primitive_of::<Inner, _, D>(x));
        return tensor_of::<Inner, _, D>(nd_tensor(times_mask(slice(&x), &mask), x.shape()));
    }
    let x = primitive_of::<Ad, _, D>(x);
    let values = f32_array(x.primitive.clone());
    let output = nd_tensor(times_mask(slice(&values), &mask), values.shape());
    let y = match DropoutBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(mask, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    tensor_of::<Ad, _, D>(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_drops_the_requested_fraction_and_scales_the_rest() {
        let (len, prob) = (200_000, 0.3);
        let values = mask_values(len, prob, 12345);
        let scale = (1.0 / 0.7f64) as f32;
        assert!(values.iter().all(|&v| v == 0.0 || v == scale));
        let dropped = values.iter().filter(|&&v| v == 0.0).count() as f64 / len as f64;
        // Binomial std ≈ 0.001: 0.005 is five of them.
        assert!((dropped - prob).abs() < 0.005, "dropped {dropped}");
        // Neighbours (within and across chunks) are independent: both kept ≈ 0.49.
        let both = values
            .windows(2)
            .filter(|w| w[0] != 0.0 && w[1] != 0.0)
            .count() as f64
            / (len - 1) as f64;
        assert!((both - 0.49).abs() < 0.005, "both kept {both}");
    }

    #[test]
    fn masks_differ_by_key_and_repeat_with_it() {
        let a = mask_values(50_000, 0.5, 1);
        let b = mask_values(50_000, 0.5, 2);
        assert_eq!(a, mask_values(50_000, 0.5, 1));
        let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / 50_000.0;
        assert!(
            (agree - 0.5).abs() < 0.02,
            "masks of two keys agree on {agree}"
        );
        assert!(mask_values(1000, 0.0, 7).iter().all(|&v| v == 1.0));
    }
}
