//! Scaled dot-product attention between the projections of Burn's [`MultiHeadAttention`], as
//! that module computes it: natively on ndarray (one task per sentence, its own backward), with
//! Burn's tensor operations on every other backend.

use burn::nn::attention::MultiHeadAttention;
use burn::tensor::activation::{quiet_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use crate::ops::dispatch;
use crate::ops::dropout::dropout;
use crate::ops::reshape::reshape;

/// The heads of projections `[rows, length, d_model]`: `[rows, heads, length, d_k]`.
pub(crate) fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [rows, length, d_model] = x.dims();
    reshape(x, [rows, length, heads, d_model / heads]).swap_dims(1, 2)
}

/// The inverse of [`split_heads`].
fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [rows, heads, length, d_k] = x.dims();
    x.swap_dims(1, 2).reshape([rows, length, heads * d_k])
}

/// The context `[rows, queries, d_model]` of `attention`'s heads of `query` over `keys` and
/// `values` (`[rows, heads, length, d_k]` each), with Burn's tensor operations: scores masked
/// where any of `masks` (broadcast to `[rows, heads, queries, keys]`) is true and, as Burn's
/// `MultiHeadAttention` does, dropped *before* the masks and the softmax.
pub(crate) fn context_of_heads<B: Backend>(
    attention: &MultiHeadAttention<B>,
    query: Tensor<B, 4>,
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
    masks: &[Tensor<B, 4, Bool>],
) -> Tensor<B, 3> {
    let scores = query
        .matmul(keys.transpose())
        .div_scalar((attention.d_k as f32).sqrt());
    let mut scores = dropout(&attention.dropout, scores);
    for mask in masks {
        scores = scores.mask_fill(mask.clone(), attention.min_float);
    }
    let weights = if attention.quiet_softmax {
        quiet_softmax(scores, 3)
    } else {
        softmax(scores, 3)
    };
    merge_heads(weights.matmul(values))
}

/// Whether each of `masks` (`[rows or 1, heads or 1, queries or 1, keys or 1]`) is the same for
/// every head, and, if so, their union as one flag per score `[rows, queries, keys]`.
fn masks_per_score<B: Backend>(
    masks: &[Tensor<B, 4, Bool>],
    [rows, queries, keys]: [usize; 3],
) -> Option<Vec<bool>> {
    let mut masked = vec![false; rows * queries * keys];
    for mask in masks {
        if mask.dims()[1] != 1 {
            return None;
        }
        let flags = mask
            .clone()
            .expand([rows, 1, queries, keys])
            .into_data()
            .to_vec::<bool>()
            .ok()?;
        for (masked, flag) in masked.iter_mut().zip(flags) {
            *masked |= flag;
        }
    }
    Some(masked)
}

/// The context `[rows, queries, d_model]` of `attention` for the projections `query` (`[rows,
/// queries, d_model]`), `keys` and `values` (`[rows, keys, d_model]`), scores masked where any of
/// `masks` (broadcast to `[rows, heads, queries, keys]`) is true: what `MultiHeadAttention`
/// feeds its output projection.
pub(crate) fn context<B: Backend>(
    attention: &MultiHeadAttention<B>,
    query: Tensor<B, 3>,
    keys: Tensor<B, 3>,
    values: Tensor<B, 3>,
    masks: &[Tensor<B, 4, Bool>],
) -> Tensor<B, 3> {
    let [rows, queries, _] = query.dims();
    let shared = masks.iter().all(|mask| mask.dims()[1] == 1);
    match dispatch::attention::<B>(attention.quiet_softmax, shared) {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => {
            let masked = masks_per_score(masks, [rows, queries, keys.dims()[1]])
                .expect("masks shared by the heads");
            let dropout = if B::ad_enabled() {
                attention.dropout.prob
            } else {
                0.0
            };
            use crate::ops::ndarray::attention::{ScoreRule, attention_context};
            let rule = ScoreRule {
                masked,
                fill: attention.min_float as f32,
                dropout,
            };
            attention_context(native, [query, keys, values], attention.n_heads, rule)
        }
        _ => {
            let heads = attention.n_heads;
            context_of_heads(
                attention,
                split_heads(query, heads),
                split_heads(keys, heads),
                split_heads(values, heads),
                masks,
            )
        }
    }
}

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::test_support::{TestAutodiffBackend as Ad, TestBackend, relative_error};
    use burn::module::AutodiffModule;
    use burn::nn::attention::MultiHeadAttentionConfig;
    use burn::tensor::Distribution;

    /// Burn's tensor operations in f64: the reference.
    type Reference = burn::backend::Autodiff<burn::backend::NdArray<f64>>;

    /// Random projections `[rows, length, d_model]`.
    fn projections(shape: [usize; 3]) -> Tensor<TestBackend, 3> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.5), &Default::default())
    }

    /// The context and the gradients of the query, keys and values on `A`, natively or with the
    /// tensor operations, for a loss that weighs every output differently; in f32.
    fn context_and_gradients<A: burn::tensor::backend::AutodiffBackend>(
        native: bool,
        attention: &MultiHeadAttention<A>,
        inputs: [&Tensor<TestBackend, 3>; 3],
        masks: &[Tensor<TestBackend, 4, Bool>],
    ) -> [Tensor<TestBackend, 3>; 4] {
        let device = Default::default();
        let [query, keys, values] = inputs.map(|x| {
            Tensor::<A, 3>::from_data(x.to_data().convert::<A::FloatElem>(), &device).require_grad()
        });
        let masks: Vec<Tensor<A, 4, Bool>> = masks
            .iter()
            .map(|mask| Tensor::from_data(mask.to_data(), &device))
            .collect();
        // Both draw their dropout masks from the same seed.
        A::seed(&device, 7);
        let y = if native {
            context(
                attention,
                query.clone(),
                keys.clone(),
                values.clone(),
                &masks,
            )
        } else {
            let heads = attention.n_heads;
            context_of_heads(
                attention,
                split_heads(query.clone(), heads),
                split_heads(keys.clone(), heads),
                split_heads(values.clone(), heads),
                &masks,
            )
        };
        let weights = y.clone().inner().cos();
        let grads = (y.clone() * Tensor::from_inner(weights)).sum().backward();
        let f32_of = |x: Tensor<A::InnerBackend, 3>| {
            Tensor::<TestBackend, 3>::from_data(x.into_data().convert::<f32>(), &Default::default())
        };
        [
            f32_of(y.inner()),
            f32_of(query.grad(&grads).unwrap()),
            f32_of(keys.grad(&grads).unwrap()),
            f32_of(values.grad(&grads).unwrap()),
        ]
    }

    /// The largest difference between `actual` and `expected`, over `expected`'s largest element.
    fn error(actual: &Tensor<TestBackend, 3>, expected: &Tensor<TestBackend, 3>) -> f32 {
        let values = |x: &Tensor<TestBackend, 3>| x.to_data().to_vec::<f32>().unwrap();
        relative_error(&values(actual), &values(expected))
    }

    /// A padding mask `[rows, 1, 1, keys]` with the given lengths.
    fn padding(lengths: &[usize], keys: usize) -> Tensor<TestBackend, 4, Bool> {
        let flags: Vec<bool> = lengths
            .iter()
            .flat_map(|&length| (0..keys).map(move |key| key >= length))
            .collect();
        Tensor::<TestBackend, 1, Bool>::from_data(flags.as_slice(), &Default::default()).reshape([
            lengths.len(),
            1,
            1,
            keys,
        ])
    }

    /// The causal mask `[1, 1, length, length]`.
    fn causal(length: usize) -> Tensor<TestBackend, 4, Bool> {
        let flags: Vec<bool> = (0..length * length)
            .map(|index| index % length > index / length)
            .collect();
        Tensor::<TestBackend, 1, Bool>::from_data(flags.as_slice(), &Default::default())
            .reshape([1, 1, length, length])
    }

    /// Native attention against the f64 reference; returns Burn's f32 error for comparison.
    fn check_against_f64(
        heads: usize,
        inputs: [&Tensor<TestBackend, 3>; 3],
        masks: &[Tensor<TestBackend, 4, Bool>],
    ) -> f32 {
        let device = Default::default();
        let d_model = inputs[0].dims()[2];
        let config = MultiHeadAttentionConfig::new(d_model, heads).with_dropout(0.0);
        let native = context_and_gradients(true, &config.init::<Ad>(&device), inputs, masks);
        let burn = context_and_gradients(false, &config.init::<Ad>(&device), inputs, masks);
        let reference =
            context_and_gradients(false, &config.init::<Reference>(&device), inputs, masks);
        let mut burn_error = 0.0f32;
        for (index, ((native, burn), reference)) in
            native.iter().zip(&burn).zip(&reference).enumerate()
        {
            let native_error = error(native, reference);
            assert!(
                native_error <= 2e-6,
                "{heads} heads, output {index}: native error {native_error} (Burn's f32 {})",
                error(burn, reference)
            );
            burn_error = burn_error.max(error(burn, reference));
        }
        burn_error
    }

    #[test]
    fn native_attention_matches_an_f64_reference_of_burns_operations() {
        // Self-attention with padding and the causal mask; cross-attention of 5 queries over 9
        // keys with padding; 1 and 4 heads; a sentence that is all padding.
        let mut burn_error = 0.0f32;
        for heads in [1, 4] {
            let x = projections([3, 7, 32]);
            let masks = [padding(&[7, 4, 1], 7), causal(7)];
            burn_error = burn_error.max(check_against_f64(
                heads,
                [&x, &x.clone().sin(), &x.clone().cos()],
                &masks,
            ));
            let (query, memory) = (projections([3, 5, 32]), projections([3, 9, 32]));
            let masks = [padding(&[9, 2, 0], 9)];
            let inputs = [&query, &memory, &memory.clone().tanh()];
            burn_error = burn_error.max(check_against_f64(heads, inputs, &masks));
        }
        // Burn's own f32 operations lose more in the softmax's backward (measured 3e-5 to 1e-4).
        assert!(burn_error > 2e-6, "Burn's f32 error {burn_error}");
    }

    #[test]
    fn scores_are_dropped_where_burns_operations_drop_them() {
        // The same seed draws the same masks, in the same layout, on both paths; Burn's own f32
        // error (above) bounds the difference.
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(32, 4)
            .with_dropout(0.3)
            .init::<Ad>(&device);
        let x = projections([3, 7, 32]);
        let inputs = [&x, &x.clone().sin(), &x.clone().cos()];
        let masks = [padding(&[7, 4, 1], 7), causal(7)];
        // Each path seeds the backend's one process-wide generator before it draws; a test on
        // another thread that draws in between changes the masks of this one. So a mismatch is
        // tried again, up to 5 times: masks that differ in layout fail every time.
        let worst = |native: &[Tensor<TestBackend, 3>; 4], burn: &[Tensor<TestBackend, 3>; 4]| {
            let errors = native.iter().zip(burn).map(|(n, b)| error(n, b));
            errors.fold(0.0f32, f32::max)
        };
        let mut attempts = Vec::new();
        let native = loop {
            let native = context_and_gradients(true, &attention, inputs, &masks);
            let burn = context_and_gradients(false, &attention, inputs, &masks);
            attempts.push(worst(&native, &burn));
            if attempts.last() <= Some(&5e-4) || attempts.len() == 5 {
                break native;
            }
        };
        assert!(
            attempts.last() <= Some(&5e-4),
            "native against Burn's dropped scores, worst error per attempt: {attempts:?}"
        );
        // And they drop something: the context differs from the one without dropout.
        let plain = MultiHeadAttentionConfig::new(32, 4)
            .with_dropout(0.0)
            .init::<Ad>(&device);
        let kept = context_and_gradients(true, &plain, inputs, &masks);
        assert!(error(&native[0], &kept[0]) > 0.05, "dropout had no effect");
    }

    #[test]
    fn inference_drops_nothing_and_matches_burns_operations() {
        let device = Default::default();
        let attention = MultiHeadAttentionConfig::new(16, 2)
            .with_dropout(0.5)
            .init::<Ad>(&device)
            .valid();
        let x = projections([2, 6, 16]);
        let native = context(&attention, x.clone(), x.clone(), x.clone(), &[]);
        let heads = split_heads(x, 2);
        let burn = context_of_heads(&attention, heads.clone(), heads.clone(), heads, &[]);
        assert!(
            error(&native, &burn) <= 2e-6,
            "error {}",
            error(&native, &burn)
        );
    }

    #[test]
    fn masks_that_differ_by_head_keep_the_tensor_operations() {
        let masks = [Tensor::<TestBackend, 4, Bool>::empty(
            [1, 2, 3, 3],
            &Default::default(),
        )];
        assert!(masks_per_score(&masks, [1, 3, 3]).is_none());
        assert!(dispatch::attention::<TestBackend>(false, false).is_none());
        assert!(dispatch::attention::<TestBackend>(true, true).is_none());
        assert!(dispatch::attention::<TestBackend>(false, true).is_some());
    }
}
