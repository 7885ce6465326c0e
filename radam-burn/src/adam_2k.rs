//! [`Adam2k`]: the paper's control experiment for the variance hypothesis (Liu et al. 2020, §3.2).
//!
//! For the first `k` steps only the second moment `v_t` is updated; the parameters θ and the
//! first moment `m_t` stay frozen. After that it is Adam. If Adam's early trouble comes from the
//! large variance of the adaptive learning rate while `v_t` has seen few gradients, giving `v_t` a
//! head start should cure it as warmup does — which is what the paper observes. Burn has no such
//! optimizer; this is it.

use burn::config::Config;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{LearningRate, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// Configuration of [`Adam2k`]: Adam whose first `frozen_steps` steps only update `v_t`.
///
/// ```
/// use radam_burn::Adam2kConfig;
///
/// // The paper's Adam-2k: v_t alone for the first 2000 steps, then Adam.
/// let config = Adam2kConfig::new().with_frozen_steps(2000);
/// assert_eq!(config.epsilon, 1e-8);
/// ```
#[derive(Config, Debug)]
pub struct Adam2kConfig {
    /// Exponential decay rate of the first moment `m_t`.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Exponential decay rate of the second moment `v_t`.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to `sqrt(v̂_t)` in the denominator (PyTorch's Adam default).
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// L2 weight decay `λ`: `g_t ← g_t + λ·θ` (as `torch.optim.Adam`), also during the frozen
    /// steps, so that `v_t` sees the same gradients Adam would.
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// `k`: the number of first steps that update `v_t` only. `0` is plain Adam.
    #[config(default = 2000)]
    pub frozen_steps: usize,
    /// Gradient clipping, applied per parameter tensor before the step (Burn's semantics).
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl Adam2kConfig {
    /// Builds the optimizer, wrapped for Burn's `LearnerBuilder` like `AdamConfig::init`.
    ///
    /// # Panics
    /// If a β is outside `[0, 1)` or `ε`, `λ` is negative (the message names the field).
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> OptimizerAdaptor<Adam2k, M, B> {
        for (name, beta) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            assert!(
                (0.0..1.0).contains(&beta),
                "invalid Adam2kConfig: {name} = {beta} must lie in [0, 1)"
            );
        }
        for (name, value) in [
            ("epsilon", self.epsilon),
            ("weight_decay", self.weight_decay),
        ] {
            assert!(
                value >= 0.0,
                "invalid Adam2kConfig: {name} = {value} must be >= 0"
            );
        }
        let optimizer = Adam2k {
            beta_1: self.beta_1 as f64,
            beta_2: self.beta_2 as f64,
            epsilon: self.epsilon as f64,
            weight_decay: self.weight_decay as f64,
            frozen_steps: self.frozen_steps,
        };
        let mut adaptor = OptimizerAdaptor::from(optimizer);
        if let Some(clipping) = &self.grad_clipping {
            adaptor = adaptor.with_grad_clipping(clipping.init());
        }
        adaptor
    }
}

/// Adam that spends its first `k` steps estimating `v_t` with θ and `m_t` frozen (the paper's
/// "Adam-2k" for `k = 2000`). Build it with [`Adam2kConfig::init`].
///
/// Step `t` (counting every step, frozen ones included):
/// - `t ≤ k`: `v_t ← β2·v_{t−1} + (1 − β2)·g_t²`; θ and `m` unchanged.
/// - `t > k`: Adam with `s = t − k` momentum steps: `m_s ← β1·m_{s−1} + (1 − β1)·g_t`,
///   `θ ← θ − α·(m_s / (1 − β1^s)) / (sqrt(v_t / (1 − β2^t)) + ε)`. Each moment is bias-corrected
///   by the number of gradients it has averaged, so both estimates stay unbiased.
#[derive(Clone, Debug)]
pub struct Adam2k {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
    frozen_steps: usize,
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
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(0, |state| state.time) + 1;
        // g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}   (L2 weight decay)
        let g_t = if self.weight_decay != 0.0 {
            grad + theta.clone().mul_scalar(self.weight_decay)
        } else {
            grad
        };
        let (m_prev, v_prev) = match state {
            Some(state) => (state.m, state.v.mul_scalar(self.beta_2)),
            None => (theta.zeros_like(), theta.zeros_like()),
        };
        // v_t ← β2·v_{t−1} + (1 − β2)·g_t²   (Adam's second moment, updated on every step)
        let v_t = v_prev.add(g_t.clone().powi_scalar(2).mul_scalar(1.0 - self.beta_2));
        if time <= self.frozen_steps {
            // θ and m frozen while v_t gathers its first k gradients (Adam-2k, §3.2)
            let state = Adam2kState {
                time,
                m: m_prev,
                v: v_t,
            };
            return (theta, Some(state));
        }
        let momentum_steps = (time - self.frozen_steps) as i32;
        // m_s ← β1·m_{s−1} + (1 − β1)·g_t
        let m_t = m_prev
            .mul_scalar(self.beta_1)
            .add(g_t.mul_scalar(1.0 - self.beta_1));
        // θ_t ← θ_{t−1} − α·m̂_t / (sqrt(v̂_t) + ε)   (Adam, Kingma & Ba 2015, Algorithm 1)
        let m_correction = 1.0 - self.beta_1.powi(momentum_steps);
        let v_correction = 1.0 - self.beta_2.powi(time as i32);
        let denominator = v_t
            .clone()
            .div_scalar(v_correction)
            .sqrt()
            .add_scalar(self.epsilon);
        let theta = theta - m_t.clone().mul_scalar(lr / m_correction).div(denominator);
        let state = Adam2kState {
            time,
            m: m_t,
            v: v_t,
        };
        (theta, Some(state))
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
    fn first_update_after_the_frozen_steps_matches_hand_computation() {
        // A single scalar parameter with gradients 1, 2, 3 (loss = g·θ with a changing g):
        // k = 2, so step 3 is the first update, with m_1 = 0.1·3 (s = 1) and
        // v_3 = 0.001·(0.999²·1 + 0.999·4 + 9).
        let device = Default::default();
        let adam_2k = Adam2k {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            frozen_steps: 2,
        };
        let mut theta = Tensor::<NdArray, 1>::from_floats([1.0], &device);
        let mut state = None;
        for g in [1.0f32, 2.0, 3.0] {
            let grad = Tensor::<NdArray, 1>::from_floats([g], &device);
            let (next, next_state) =
                SimpleOptimizer::<NdArray>::step(&adam_2k, 0.5, theta, grad, state);
            theta = next;
            state = next_state;
        }
        let v_3: f64 = 0.001 * (0.999f64.powi(2) + 0.999 * 4.0 + 9.0);
        let v_hat = v_3 / (1.0 - 0.999f64.powi(3));
        let m_hat = (0.1 * 3.0) / (1.0 - 0.9);
        let expected = 1.0 - 0.5 * m_hat / (v_hat.sqrt() + 1e-8);
        let got = theta.into_data().to_vec::<f32>().unwrap()[0] as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        let state = state.unwrap();
        assert_eq!(state.time, 3);
        let v = state.v.into_data().to_vec::<f32>().unwrap()[0] as f64;
        assert!((v - v_3).abs() < 1e-9, "{v} vs {v_3}");
    }

    #[test]
    #[should_panic(expected = "invalid Adam2kConfig: beta_2 = 1 must lie in [0, 1)")]
    fn invalid_beta_is_rejected_with_the_field_name() {
        let _ = Adam2kConfig::new().with_beta_2(1.0).init::<B, Linear<B>>();
    }
}
