//! Label-smoothed cross-entropy that ignores padding the way PyTorch does.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::ops::dispatch;

/// The parts of a label-smoothed cross-entropy over a batch of tokens.
pub struct SmoothedCrossEntropy<B: Backend> {
    /// The objective: mean over non-padding rows of `(1 − ε)·(−log p_y) + ε·mean_c(−log p_c)`, `[1]`.
    pub loss: Tensor<B, 1>,
    /// `Σ −log p_y` over non-padding rows (no smoothing), `[1]`: the perplexity's numerator.
    pub nll_sum: Tensor<B, 1>,
}

/// `torch.nn.functional.cross_entropy(logits, targets, ignore_index=pad, label_smoothing=ε)`:
/// the smoothing term spreads ε uniformly over all `C` classes, and the mean is taken over the
/// rows whose target is not `pad` only. (Burn's `CrossEntropyLoss` with pad tokens divides by
/// all rows instead.)
///
/// `logits: [rows, classes]`, `targets: [rows]`. With every row padding, the loss is 0.
pub fn label_smoothed_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    smoothing: f64,
    pad: Option<usize>,
) -> SmoothedCrossEntropy<B> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => {
            let kept = match pad {
                Some(pad) => targets
                    .clone()
                    .not_equal_elem(pad as i64)
                    .int()
                    .sum()
                    .float(),
                None => Tensor::<B, 1>::from_floats([targets.dims()[0] as f32], &targets.device()),
            };
            let sums = crate::ops::ndarray::cross_entropy::cross_entropy_sums(
                native, logits, targets, smoothing, pad,
            );
            let loss_sum = sums.clone().narrow(0, 0, 1);
            SmoothedCrossEntropy {
                loss: loss_sum.div(kept.clamp_min(1.0)),
                nll_sum: sums.narrow(0, 1, 1),
            }
        }
        _ => tensor_op_cross_entropy(logits, targets, smoothing, pad),
    }
}

/// `Σ_i −log softmax(logits_i)[targets_i]`, `[1]`: the summed negative log-likelihood alone,
/// without the smoothing term and the mean that [`label_smoothed_cross_entropy`] also computes
/// (the adaptive softmax's head and clusters). `logits: [rows, classes]`, `targets: [rows]`.
pub(crate) fn nll_sum<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    match dispatch::native::<B>() {
        #[cfg(feature = "ndarray-kernels")]
        Some(native) => crate::ops::ndarray::cross_entropy::cross_entropy_sums(
            native, logits, targets, 0.0, None,
        )
        .narrow(0, 1, 1),
        _ => {
            let rows = logits.dims()[0];
            log_softmax(logits, 1)
                .gather(1, targets.reshape([rows, 1]))
                .sum()
                .neg()
        }
    }
}

/// [`label_smoothed_cross_entropy`] with Burn tensor operations (every backend without a native
/// kernel, and the reference the kernel is tested against).
pub(crate) fn tensor_op_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    smoothing: f64,
    pad: Option<usize>,
) -> SmoothedCrossEntropy<B> {
    let [rows, classes] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let nll = log_p
        .clone()
        .gather(1, targets.clone().reshape([rows, 1]))
        .reshape([rows])
        .neg();
    let uniform = log_p
        .sum_dim(1)
        .reshape([rows])
        .div_scalar(classes as f64)
        .neg();
    let per_row = nll.clone().mul_scalar(1.0 - smoothing) + uniform.mul_scalar(smoothing);
    match pad {
        Some(pad) => {
            let keep = targets.not_equal_elem(pad as i64).float();
            let count = keep.clone().sum().clamp_min(1.0);
            SmoothedCrossEntropy {
                loss: (per_row * keep.clone()).sum().div(count),
                nll_sum: (nll * keep).sum(),
            }
        }
        None => SmoothedCrossEntropy {
            loss: per_row.mean(),
            nll_sum: nll.sum(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestBackend;
    use burn::tensor::TensorData;
    use serde::Deserialize;

    fn run(
        logits: Vec<f32>,
        shape: [usize; 2],
        targets: Vec<i64>,
        smoothing: f64,
        pad: Option<usize>,
    ) -> (f32, f32) {
        let device = Default::default();
        let rows = shape[0];
        let result = label_smoothed_cross_entropy::<TestBackend>(
            Tensor::from_data(TensorData::new(logits, shape), &device),
            Tensor::from_data(TensorData::new(targets, [rows]), &device),
            smoothing,
            pad,
        );
        (result.loss.into_scalar(), result.nll_sum.into_scalar())
    }

    #[test]
    fn hand_computed_values() {
        // p = [1/4, 3/4], target 1, ε = 0.2:
        // 0.8·(−ln 3/4) + 0.2·(ln 4 − ln 3/4)/2 = 0.230146 + 0.167397.
        let ln3 = 3.0_f32.ln();
        let (loss, nll) = run(vec![0.0, ln3], [1, 2], vec![1], 0.2, None);
        assert!((loss - 0.397_543).abs() < 1e-5, "{loss}");
        assert!((nll - 0.287_682).abs() < 1e-5, "{nll}");
        // Uniform logits: every term is ln C, whatever ε.
        let (loss, _) = run(vec![0.0; 8], [2, 4], vec![0, 3], 0.1, None);
        assert!((loss - 4.0_f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn padding_rows_are_left_out_of_the_mean() {
        let ln3 = 3.0_f32.ln();
        // Row 0 is the hand-computed row above, rows 1 and 2 are padding (id 0): same loss.
        let logits = vec![0.0, ln3, 5.0, -1.0, 2.0, 2.0];
        let (loss, nll) = run(logits, [3, 2], vec![1, 0, 0], 0.2, Some(0));
        assert!((loss - 0.397_543).abs() < 1e-5, "{loss}");
        assert!((nll - 0.287_682).abs() < 1e-5, "{nll}");
        // All padding: zero, not NaN.
        let (loss, nll) = run(vec![1.0, 2.0], [1, 2], vec![0], 0.1, Some(0));
        assert_eq!((loss, nll), (0.0, 0.0));
    }

    #[test]
    fn native_kernel_gradients_match_tensor_operations() {
        use crate::test_support::{TestAutodiffBackend, assert_tensors_close};
        use burn::tensor::Distribution;
        let device = Default::default();
        let logits = Tensor::<TestAutodiffBackend, 2>::random(
            [9, 7],
            Distribution::Normal(0.0, 2.0),
            &device,
        );
        let targets = Tensor::<TestAutodiffBackend, 1, Int>::from_data(
            TensorData::new(vec![0i64, 3, 6, 1, 0, 2, 5, 4, 0], [9]),
            &device,
        );
        for (smoothing, pad) in [(0.0, None), (0.1, Some(0)), (0.3, Some(4))] {
            let gradient = |native: bool| {
                let logits = logits.clone().detach().require_grad();
                let result = if native {
                    label_smoothed_cross_entropy(logits.clone(), targets.clone(), smoothing, pad)
                } else {
                    tensor_op_cross_entropy(logits.clone(), targets.clone(), smoothing, pad)
                };
                // Both outputs feed the loss, with different weights.
                let total =
                    result.loss.clone().mul_scalar(3.0) + result.nll_sum.clone().mul_scalar(0.5);
                let grads = total.backward();
                (
                    result.loss.into_scalar(),
                    result.nll_sum.into_scalar(),
                    logits.grad(&grads).unwrap(),
                )
            };
            let (loss_a, nll_a, grad_a) = gradient(true);
            let (loss_b, nll_b, grad_b) = gradient(false);
            assert!(
                (loss_a - loss_b).abs() < 1e-5 && (nll_a - nll_b).abs() < 1e-4,
                "ε = {smoothing}"
            );
            assert_tensors_close(grad_a, grad_b, 1e-5);
        }
    }

    #[derive(Deserialize)]
    struct Reference {
        rows: usize,
        classes: usize,
        logits: Vec<f32>,
        targets: Vec<i64>,
        pad: usize,
        smoothing: f64,
        loss: f32,
    }

    #[test]
    fn matches_pytorch() {
        let cases: Vec<Reference> =
            serde_json::from_str(include_str!("../../testdata/label_smoothing.json")).unwrap();
        for case in cases {
            let (loss, _) = run(
                case.logits,
                [case.rows, case.classes],
                case.targets,
                case.smoothing,
                Some(case.pad),
            );
            assert!(
                (loss - case.loss).abs() < 1e-5 * case.loss.abs().max(1.0),
                "{loss} vs {}",
                case.loss
            );
        }
    }
}
