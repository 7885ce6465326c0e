//! [`Adam2k`]: the paper's control experiment for the variance hypothesis (Liu et al. 2020, §3.2).
//!
//! For the first `k` steps only the second moment `v_t` is updated; the parameters θ and the
//! first moment `m_t` stay frozen. After that it is Adam. If Adam's early trouble comes from the
//! large variance of the adaptive learning rate while `v_t` has seen few gradients, giving `v_t` a
//! head start should cure it as warmup does — which is what the paper observes. Burn has no such
//! optimizer; this is it, following the code behind the paper's figure (`Adam2` in
//! `nmt/my_module/adam2.py` of github.com/LiyuanLucasLiu/RAdam, with `adam_1k` in its name).

use burn::config::Config;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{LearningRate, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use radam_core::{Adam2kFields, Adam2kHyper, Adam2kPlan, RAdamConfigError};

/// Configuration of [`Adam2k`]: Adam whose first `frozen_steps` steps only update `v_t`.
///
/// ```
/// use radam_burn::Adam2kConfig;
///
/// // The paper's Adam-2k: v_t alone for the first 2000 steps, then Adam.
/// let config = Adam2kConfig::new().with_frozen_steps(2000);
/// assert_eq!(config.epsilon, 1e-8);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Config, Debug)]
pub struct Adam2kConfig {
    /// Exponential decay rate of the first moment `m_t`. Must lie in `[0, 1)`.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Exponential decay rate of the second moment `v_t`. Must lie in `[0, 1)`.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to `sqrt(v_t)` (un-corrected, as the reference and PyTorch's Adam do). Must be `≥ 0`.
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// Decoupled weight decay `λ`: `θ ← θ − α·λ·θ` on every step that updates θ (none during the
    /// frozen steps), as the reference does. Must be `≥ 0`.
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// `k`: the number of first steps that update `v_t` only. `0` is plain Adam.
    #[config(default = 2000)]
    pub frozen_steps: usize,
    /// Gradient clipping, applied per parameter tensor before the step (Burn's semantics).
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl Adam2kConfig {
    /// Checks every hyper-parameter, naming the first field that is unusable.
    pub fn validate(&self) -> Result<(), RAdamConfigError> {
        self.fields().validate()
    }

    /// The fields that define the maths, for `radam-core`.
    fn fields(&self) -> Adam2kFields {
        Adam2kFields {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            frozen_steps: self.frozen_steps,
        }
    }

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
        let adaptor = OptimizerAdaptor::from(optimizer);
        Ok(match &self.grad_clipping {
            Some(clipping) => adaptor.with_grad_clipping(clipping.init()),
            None => adaptor,
        })
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
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};

    type B = Autodiff<NdArray>;

    /// A Linear(3 → 2) with fixed weights, and a loss whose gradient changes with θ.
    fn model() -> Linear<B> {
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(3, 2).init(&device);
        model.load_record(burn::nn::LinearRecord {
            weight: burn::module::Param::from_tensor(Tensor::from_floats(
                [[0.5, -1.0], [0.25, 2.0], [-0.75, 0.1]],
                &device,
            )),
            bias: Some(burn::module::Param::from_tensor(Tensor::from_floats(
                [0.3, -0.2],
                &device,
            ))),
        })
    }

    fn grads_at(model: &Linear<B>, step: usize) -> GradientsParams {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats(
            [[1.0, 2.0, -1.0], [0.5 * step as f32, -1.0, 3.0]],
            &device,
        );
        let loss = model.forward(x).powi_scalar(2).mean();
        GradientsParams::from_grads(loss.backward(), model)
    }

    fn weights(model: &Linear<B>) -> Vec<f32> {
        let mut values: Vec<f32> = model.weight.val().into_data().to_vec().unwrap();
        values.extend(
            model
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        );
        values
    }

    #[test]
    fn frozen_steps_leave_the_parameters_unchanged_and_accumulate_v() {
        let mut model = model();
        let start = weights(&model);
        // Decoupled decay, too, waits for the end of the frozen steps.
        let mut optimizer = Adam2kConfig::new()
            .with_frozen_steps(5)
            .with_weight_decay(0.1)
            .init::<B, Linear<B>>();
        for step in 0..5 {
            let grads = grads_at(&model, step);
            model = optimizer.step(0.1, model, grads);
            assert_eq!(
                weights(&model),
                start,
                "θ moved during frozen step {}",
                step + 1
            );
        }
        // The sixth step moves θ.
        let grads = grads_at(&model, 5);
        model = optimizer.step(0.1, model, grads);
        assert_ne!(weights(&model), start);
    }

    #[test]
    fn with_no_frozen_steps_it_is_adam() {
        let (mut ours, mut burns) = (model(), model());
        let mut adam_2k = Adam2kConfig::new()
            .with_frozen_steps(0)
            .init::<B, Linear<B>>();
        let mut adam = AdamConfig::new().with_epsilon(1e-8).init::<B, Linear<B>>();
        for step in 0..20 {
            let grads = grads_at(&ours, step);
            ours = adam_2k.step(1e-2, ours, grads);
            let grads = grads_at(&burns, step);
            burns = adam.step(1e-2, burns, grads);
        }
        for (a, b) in weights(&ours).iter().zip(weights(&burns)) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{a} vs Burn's Adam {b}"
            );
        }
    }

    #[test]
    fn first_updates_after_the_frozen_steps_match_the_reference_formula() {
        // One scalar parameter, gradients 1, 2, 3, 4, k = 2, decoupled decay 0.1 at lr 0.5:
        // steps 3 and 4 update, each bias-corrected with the total step t.
        let device = Default::default();
        let adam_2k = Adam2k {
            hyper: Adam2kHyper {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.1,
                frozen_steps: 2,
            },
        };
        let mut theta = Tensor::<NdArray, 1>::from_floats([1.0], &device);
        let mut state = None;
        let (mut m, mut v, mut expected) = (0.0f64, 0.0f64, 1.0f64);
        for (t, g) in [1.0f64, 2.0, 3.0, 4.0].into_iter().enumerate() {
            let t = t as i32 + 1;
            v = 0.999 * v + 0.001 * g * g;
            if t > 2 {
                expected -= 0.5 * 0.1 * expected;
                m = 0.9 * m + 0.1 * g;
                let step_size = 0.5 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                expected -= step_size * m / (v.sqrt() + 1e-8);
            }
            let grad = Tensor::<NdArray, 1>::from_floats([g as f32], &device);
            let (next, next_state) =
                SimpleOptimizer::<NdArray>::step(&adam_2k, 0.5, theta, grad, state);
            theta = next;
            state = next_state;
            let got = theta.to_data().to_vec::<f32>().unwrap()[0] as f64;
            assert!(
                (got - expected).abs() < 1e-6,
                "step {t}: {got} vs {expected}"
            );
        }
        let state = state.unwrap();
        assert_eq!(state.time, 4);
        let v_4 = state.v.into_data().to_vec::<f32>().unwrap()[0] as f64;
        assert!((v_4 - v).abs() < 1e-7 * v, "{v_4} vs {v}");
    }

    #[test]
    fn invalid_configs_are_errors_naming_the_field() {
        let error = Adam2kConfig::new()
            .with_beta_2(1.0)
            .try_init::<B, Linear<B>>()
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "invalid Adam2kConfig: beta_2 = 1.0 must lie in [0, 1)"
        );
        assert_eq!(
            Adam2kConfig::new()
                .with_weight_decay(f32::NAN)
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid Adam2kConfig: weight_decay = NaN must be finite and ≥ 0"
        );
    }

    #[test]
    #[should_panic(expected = "invalid Adam2kConfig: beta_2 = 1.0 must lie in [0, 1)")]
    fn init_panics_with_the_validation_message() {
        let _ = Adam2kConfig::new().with_beta_2(1.0).init::<B, Linear<B>>();
    }
}
