//! [`Adam2k`]: the paper's control experiment for the variance hypothesis (Liu et al. 2020, §3.2).
//!
//! For the first `k` steps only the second moment `v_t` is updated; the parameters θ and the
//! first moment `m_t` stay frozen. After that it is Adam. If Adam's early trouble comes from the
//! large variance of the adaptive learning rate while `v_t` has seen few gradients, giving `v_t` a
//! head start should cure it as warmup does — which is what the paper observes. Burn has no such
//! optimizer; this is it, following the code behind the paper's figure (`Adam2` in
//! `nmt/my_module/adam2.py` of github.com/LiyuanLucasLiu/RAdam, with `adam_1k` in its name).

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{LearningRate, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use radam_core::{Adam2kHyper, Adam2kPlan, RAdamConfigError};

use crate::config::adaptor;

// `Adam2kConfig` itself — its fields with their documented defaults, `with_*`, `fields` and
// `validate` — is written once, in radam-core's `adam_2k_config!`, and expanded here and in
// radam-burn-022.
radam_core::adam_2k_config!(radam_burn);

impl Adam2kConfig {
    /// Builds the optimizer, wrapped for Burn's `LearnerBuilder` like `AdamConfig::init`.
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate); use
    /// [`try_init`](Self::try_init) to get it as a value.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> OptimizerAdaptor<Adam2k, M, B> {
        self.try_init().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<OptimizerAdaptor<Adam2k, M, B>, RAdamConfigError> {
        self.validate()?;
        let optimizer = Adam2k {
            hyper: self.fields().hyper(),
        };
        Ok(adaptor(optimizer, &self.grad_clipping))
    }
}

/// Adam that spends its first `k` steps estimating `v_t` with θ and `m_t` frozen (the paper's
/// "Adam-2k" for `k = 2000`). Build it with [`Adam2kConfig::init`].
///
/// Step `t` (counting every step, frozen ones included), as the reference code computes it:
/// - every step: `v_t ← β2·v_{t−1} + (1 − β2)·g_t²`;
/// - `t ≤ k`: θ and `m` unchanged;
/// - `t > k`: `θ ← θ − α·λ·θ`, `m ← β1·m + (1 − β1)·g_t`,
///   `θ ← θ − α·sqrt(1 − β2^t)/(1 − β1^t) · m / (sqrt(v_t) + ε)`.
///
/// Both bias corrections use the total step `t`, although `m` has averaged only `t − k`
/// gradients: the reference does so, and this follows it. The maths is `radam-core`'s
/// ([`Adam2kPlan`] and `adam_2k_step!`), shared with the Burn 0.22 adaptor.
#[derive(Clone, Debug)]
pub struct Adam2k {
    hyper: Adam2kHyper,
}

/// The per-parameter state of [`Adam2k`]: the step count and both moments. It derives
/// [`Record`], so checkpoints save and resume it.
#[derive(Record, Clone, Debug)]
pub struct Adam2kState<B: Backend, const D: usize> {
    /// Steps taken, frozen ones included: `t`.
    pub time: usize,
    /// The first moment, not bias-corrected; zero until step `k + 1`.
    pub m: Tensor<B, D>,
    /// The second moment, not bias-corrected.
    pub v: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for Adam2k {
    type State<const D: usize> = Adam2kState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<B, D>,
        g_t: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(0, |state| state.time) + 1;
        let plan = Adam2kPlan::new(&self.hyper, time, lr);
        let moments = state.map(|state| (state.m, state.v));
        let (theta, m, v) = radam_core::adam_2k_step!(&plan, theta, g_t, moments);
        (theta, Some(Adam2kState { time, m, v }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        Adam2kState {
            time: state.time,
            m: state.m.to_device(device),
            v: state.v.to_device(device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::grad_clipping::GradientClippingConfig;
    use burn::optim::{AdamConfig, Optimizer};
    use burn::tensor::TensorData;
    use radam_core::reference_data::adam_2k::cases;
    use radam_core::reference_data::two_parameters::{B_SHAPE, Pair, W_SHAPE};

    use crate::two_parameter_model::{B, TwoParameters};

    /// Through the adaptor `init` returns, on a module: θ within the tolerance of the reference
    /// after every step, and exactly unchanged during the frozen steps.
    #[test]
    fn trajectories_match_the_reference() {
        for case in cases() {
            let mut optimizer = Adam2kConfig::from_fields(&case.fields()).init::<B, _>();
            let mut model = Some(TwoParameters::new(&case.trajectory.initial));
            let worst = case.replay(|lr, grads| {
                let current = model.take().unwrap();
                let grads = current.gradients(grads);
                let next = model.insert(optimizer.step(lr, current, grads));
                next.values()
            });
            println!("{}: worst scaled error {worst:e}", case.trajectory.name);
        }
    }

    /// Through the per-tensor `SimpleOptimizer`, one tensor per parameter: θ after every step
    /// (and unchanged during the frozen ones), and `t`, `m_t` and `v_t` after the last step.
    #[test]
    fn moments_match_the_reference() {
        type Inner = burn::backend::NdArray<f32>;
        /// θ of rank `D` and its state, stepped in place by `step`.
        type Parameter<const D: usize> = (Tensor<Inner, D>, Option<Adam2kState<Inner, D>>);
        fn start<const D: usize>(values: &[f32], shape: [usize; D]) -> Parameter<D> {
            let data = TensorData::new(values.to_vec(), shape);
            (Tensor::from_data(data, &Default::default()), None)
        }
        fn step<const D: usize>(
            adam_2k: &Adam2k,
            lr: f64,
            (theta, state): &mut Parameter<D>,
            grad: &[f32],
        ) -> Vec<f32> {
            let grad = Tensor::from_data(
                TensorData::new(grad.to_vec(), theta.dims()),
                &theta.device(),
            );
            let (next, next_state) = adam_2k.step(lr, theta.clone(), grad, state.take());
            (*theta, *state) = (next, next_state);
            flat(theta.clone())
        }
        fn flat<const D: usize>(tensor: Tensor<Inner, D>) -> Vec<f32> {
            tensor.into_data().to_vec::<f32>().unwrap()
        }
        for case in cases() {
            let adam_2k = Adam2k {
                hyper: case.fields().hyper(),
            };
            let initial = &case.trajectory.initial;
            let (mut w, mut b) = (start(&initial.w, W_SHAPE), start(&initial.b, B_SHAPE));
            case.replay(|lr, grads| Pair {
                w: step(&adam_2k, lr, &mut w, grads.w),
                b: step(&adam_2k, lr, &mut b, grads.b),
            });
            let (w, b) = (w.1.unwrap(), b.1.unwrap());
            case.assert_final_state(
                Pair {
                    w: w.time,
                    b: b.time,
                },
                Pair {
                    w: flat(w.m),
                    b: flat(b.m),
                },
                Pair {
                    w: flat(w.v),
                    b: flat(b.v),
                },
            );
        }
    }

    #[test]
    fn with_no_frozen_steps_it_is_burns_adam() {
        let trajectory = &cases()[0].trajectory;
        let (mut ours, mut burns) = (
            TwoParameters::new(&trajectory.initial),
            TwoParameters::new(&trajectory.initial),
        );
        let mut adam_2k = Adam2kConfig::new().with_frozen_steps(0).init::<B, _>();
        let mut adam = AdamConfig::new().with_epsilon(1e-8).init::<B, _>();
        for step in 0..trajectory.steps {
            let grads = ours.gradients(trajectory.grads_at(step));
            ours = adam_2k.step(1e-2, ours, grads);
            let grads = burns.gradients(trajectory.grads_at(step));
            burns = adam.step(1e-2, burns, grads);
        }
        let (ours, burns) = (ours.values(), burns.values());
        for (a, b) in ours
            .w
            .iter()
            .chain(&ours.b)
            .zip(burns.w.iter().chain(&burns.b))
        {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{a} vs Burn's Adam {b}"
            );
        }
    }

    #[test]
    fn invalid_configs_are_errors_naming_the_field() {
        let error = Adam2kConfig::new()
            .with_beta_2(1.0)
            .try_init::<B, TwoParameters<B>>()
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "invalid Adam2kConfig: beta_2 = 1.0 must lie in [0, 1)"
        );
        let error = |config: Adam2kConfig| config.validate().unwrap_err().to_string();
        assert_eq!(
            error(Adam2kConfig::new().with_weight_decay(f32::NAN)),
            "invalid Adam2kConfig: weight_decay = NaN must be finite and ≥ 0"
        );
        assert_eq!(
            error(Adam2kConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(0.0)))),
            "invalid Adam2kConfig: grad_clipping (Norm) = 0.0 must be finite and > 0"
        );
    }

    #[test]
    #[should_panic(expected = "invalid Adam2kConfig: beta_2 = 1.0 must lie in [0, 1)")]
    fn init_panics_with_the_validation_message() {
        let _ = Adam2kConfig::new()
            .with_beta_2(1.0)
            .init::<B, TwoParameters<B>>();
    }
}
