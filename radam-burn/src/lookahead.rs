//! [`Lookahead`] (Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step
//! back", NeurIPS 2019) over any Burn optimizer, and [`RangerConfig`]: RAdam + Lookahead.
//!
//! Lookahead keeps a second, slow copy `φ` of the trainable parameters. The wrapped ("fast")
//! optimizer takes its steps as usual; after every `k` of them the slow weights move a fraction
//! `α` of the way towards the fast ones, and the fast weights restart from there:
//! `φ ← φ + α·(θ − φ)`, `θ ← φ` (the paper's Algorithm 1). `φ` starts at the parameters' values
//! before the first step.

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, LearningRate, Optimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::radam::RAdam;
use radam_core::{LookaheadFields, RAdamConfigError};

// `LookaheadConfig` and `RangerConfig` themselves — fields, documented defaults, `with_*`,
// `fields` and `validate` — are written once, in radam-core's `lookahead_config!`, and expanded
// here and in radam-burn-022.
radam_core::lookahead_config!(radam_burn);

impl LookaheadConfig {
    /// Wraps `inner` (any Burn optimizer: ours, or one of Burn's such as
    /// `AdamConfig::new().init()`) in Lookahead.
    ///
    /// ```
    /// use burn::backend::{Autodiff, NdArray};
    /// use burn::nn::Linear;
    /// use burn::optim::AdamConfig;
    /// use radam_burn::LookaheadConfig;
    ///
    /// type B = Autodiff<NdArray>;
    /// // Lookahead over Burn's own Adam.
    /// let optimizer = LookaheadConfig::new().init::<_, Linear<B>, B>(AdamConfig::new().init());
    /// # drop(optimizer);
    /// ```
    ///
    /// # Panics
    /// If the config is invalid, with the message of [`validate`](Self::validate); use
    /// [`try_init`](Self::try_init) to get it as a value.
    pub fn init<O, M, B>(&self, inner: O) -> Lookahead<O, M, B>
    where
        O: Optimizer<M, B>,
        M: AutodiffModule<B>,
        B: AutodiffBackend,
    {
        self.try_init(inner)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init<O, M, B>(&self, inner: O) -> Result<Lookahead<O, M, B>, RAdamConfigError>
    where
        O: Optimizer<M, B>,
        M: AutodiffModule<B>,
        B: AutodiffBackend,
    {
        self.validate()?;
        Ok(Lookahead {
            inner,
            fields: self.fields(),
            steps: 0,
            slow: HashMap::new(),
            module: PhantomData,
        })
    }
}

/// Lookahead over the optimizer `O`: every `k` steps of `O`, `φ ← φ + α·(θ − φ)` and `θ ← φ`.
/// Build it with [`LookaheadConfig::init`]; it is a Burn [`Optimizer`], so `LearnerBuilder`
/// takes it like any other.
///
/// Only trainable parameters (those that require a gradient) have slow weights; running
/// statistics such as batch norm's are left to the model, as PyTorch leaves buffers. Steps are
/// counted per optimizer, so every parameter synchronises on the same step.
pub struct Lookahead<O, M, B: AutodiffBackend> {
    inner: O,
    /// `k` and `α`.
    fields: LookaheadFields,
    /// Fast steps taken since the start of training.
    steps: usize,
    /// `φ` per parameter, flattened.
    slow: HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    module: PhantomData<fn() -> M>,
}

impl<O: Clone, M, B: AutodiffBackend> Clone for Lookahead<O, M, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fields: self.fields.clone(),
            steps: self.steps,
            slow: self.slow.clone(),
            module: PhantomData,
        }
    }
}

/// The state of [`Lookahead`] in a checkpoint: the wrapped optimizer's record, the step count
/// (where in its cycle of `k` a resumed run is) and the slow weights, so that resuming is exact.
#[derive(Record)]
pub struct LookaheadRecord<B: Backend, R>
where
    R: Record<B>,
{
    /// The record of the wrapped optimizer.
    pub inner: R,
    /// Fast steps taken.
    pub steps: usize,
    /// The slow weights `φ`, flattened, each under the id of its parameter.
    pub slow: Vec<Param<Tensor<B, 1>>>,
}

impl<O, M, B> Lookahead<O, M, B>
where
    O: Optimizer<M, B>,
    M: AutodiffModule<B>,
    B: AutodiffBackend,
{
    /// The wrapped (fast) optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Fast steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

impl<O, M, B> Optimizer<M, B> for Lookahead<O, M, B>
where
    O: Optimizer<M, B>,
    M: AutodiffModule<B>,
    B: AutodiffBackend,
{
    type Record = LookaheadRecord<B, O::Record>;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        // φ_0 ← θ_0 for every trainable parameter not seen before.
        module.visit(&mut StartSlowWeights {
            slow: &mut self.slow,
        });
        // θ ← one step of the fast optimizer.
        let module = self.inner.step(lr, module, grads);
        self.steps += 1;
        if !self.fields.synchronises_after(self.steps) {
            return module;
        }
        // φ ← φ + α·(θ − φ); θ ← φ   (Algorithm 1, after k inner steps)
        module.map(&mut Synchronise {
            slow: &mut self.slow,
            alpha: self.fields.alpha,
        })
    }

    fn to_record(&self) -> Self::Record {
        let mut slow: Vec<Param<Tensor<B, 1>>> = self
            .slow
            .iter()
            .map(|(id, phi)| Param::initialized(*id, Tensor::from_inner(phi.clone())))
            .collect();
        // In a fixed order, so that the same state always gives the same file.
        slow.sort_by_cached_key(|phi| phi.id.serialize());
        LookaheadRecord {
            inner: self.inner.to_record(),
            steps: self.steps,
            slow,
        }
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.inner = self.inner.load_record(record.inner);
        self.steps = record.steps;
        self.slow = record
            .slow
            .into_iter()
            .map(|phi| (phi.id, phi.into_value().inner()))
            .collect();
        self
    }
}

/// Copies each trainable parameter without slow weights into `slow`.
struct StartSlowWeights<'a, B: AutodiffBackend> {
    slow: &'a mut HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for StartSlowWeights<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.slow.contains_key(&param.id) {
            return;
        }
        let theta = param.val();
        if theta.is_require_grad() {
            self.slow.insert(param.id, theta.inner().flatten(0, D - 1));
        }
    }
}

/// Moves each slow weight towards its parameter and restarts the parameter from it.
struct Synchronise<'a, B: AutodiffBackend> {
    slow: &'a mut HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    alpha: f32,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Synchronise<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(phi) = self.slow.get_mut(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.shape().dims::<D>();
        let theta = tensor.inner().flatten::<1>(0, D - 1);
        // φ on θ's device (a loaded record may sit elsewhere), for both of its uses.
        let phi_now = phi.clone().to_device(&theta.device());
        let phi_next = radam_core::lookahead_sync!(phi_now, theta, self.alpha);
        *phi = phi_next.clone();
        let theta = Tensor::from_inner(phi_next.reshape(dims)).require_grad();
        Param::from_mapped_value(id, theta, mapper)
    }
}

/// Ranger: [`RAdam`] with [`Lookahead`] over it (L. Wright's combination of the two, 2019).
pub type Ranger<M, B> = Lookahead<OptimizerAdaptor<RAdam, M, B>, M, B>;

impl RangerConfig {
    /// Builds RAdam wrapped in Lookahead, ready for `LearnerBuilder`.
    ///
    /// ```
    /// use burn::backend::{Autodiff, NdArray};
    /// use burn::nn::Linear;
    /// use radam_burn::{LookaheadConfig, RAdamConfig, RangerConfig};
    ///
    /// type B = Autodiff<NdArray>;
    /// let config = RangerConfig::new(RAdamConfig::new(), LookaheadConfig::new().with_k(6));
    /// let optimizer = config.init::<B, Linear<B>>();
    /// # drop(optimizer);
    /// ```
    ///
    /// # Panics
    /// If either config is invalid; use [`try_init`](Self::try_init) to get the error as a value.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> Ranger<M, B> {
        self.try_init().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`init`](Self::init), but returns an invalid config as an error.
    pub fn try_init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<Ranger<M, B>, RAdamConfigError> {
        self.lookahead.try_init(self.radam.try_init()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::AdamConfig;
    use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
    use radam_core::reference_data::lookahead::{Case, TOLERANCE, cases, ranger_case};

    use crate::RAdamConfig;
    use crate::two_parameter_model::{B, TwoParameters};

    type Model = TwoParameters<B>;

    /// Steps `steps` of `case` with `optimizer`, checking every step against the reference;
    /// the model after them and the worst scaled error.
    fn follow<O: Optimizer<Model, B>>(
        case: &Case,
        steps: std::ops::Range<usize>,
        model: Model,
        optimizer: &mut O,
    ) -> (Model, f32) {
        let mut model = Some(model);
        let worst = case.trajectory.replay(steps, TOLERANCE, |lr, grads| {
            let current = model.take().unwrap();
            let grads = current.gradients(grads);
            let next = optimizer.step(lr, current, grads);
            let values = next.values();
            model = Some(next);
            values
        });
        (model.unwrap(), worst)
    }

    fn config(case: &Case) -> LookaheadConfig {
        LookaheadConfig::new().with_k(case.k).with_alpha(case.alpha)
    }

    fn ranger(case: &Case) -> Ranger<Model, B> {
        assert_eq!(case.inner, "radam");
        RangerConfig::new(RAdamConfig::new(), config(case)).init()
    }

    fn start(case: &Case) -> Model {
        TwoParameters::new(&case.trajectory.initial)
    }

    #[test]
    fn trajectories_match_pytorch_over_several_synchronisations() {
        for case in cases() {
            let steps = case.trajectory.steps;
            assert!(
                steps >= 30 && steps / case.k >= 6,
                "{}",
                case.trajectory.name
            );
            let (_, worst) = match case.inner.as_str() {
                "radam" => follow(&case, 0..steps, start(&case), &mut ranger(&case)),
                "adam" => {
                    let adam = AdamConfig::new().with_epsilon(1e-8).init();
                    follow(&case, 0..steps, start(&case), &mut config(&case).init(adam))
                }
                other => panic!("unknown inner optimizer {other}"),
            };
            println!("{}: worst scaled error {worst:e}", case.trajectory.name);
        }
    }

    #[test]
    fn resuming_mid_cycle_is_exact() {
        let case = ranger_case();
        let steps = case.trajectory.steps;
        // 13 = two synchronisations and three steps into the third cycle (k = 5).
        let interrupted_at = 13;
        assert_ne!(interrupted_at % case.k, 0);
        let (straight, _) = follow(&case, 0..steps, start(&case), &mut ranger(&case));

        let mut first = ranger(&case);
        let (model, _) = follow(&case, 0..interrupted_at, start(&case), &mut first);
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        let bytes = recorder.record(first.to_record(), ()).unwrap();
        drop(first);
        let record = Recorder::<B>::load(&recorder, bytes, &Default::default()).unwrap();
        let mut resumed = ranger(&case).load_record(record);
        assert_eq!(resumed.steps(), interrupted_at);
        let (model, _) = follow(&case, interrupted_at..steps, model, &mut resumed);

        assert_eq!(
            model.values(),
            straight.values(),
            "bit-identical after resuming"
        );
    }

    #[test]
    fn running_statistics_are_left_to_the_model() {
        let case = ranger_case();
        let mut optimizer = ranger(&case);
        let mut model = start(&case);
        for step in 0..2 * case.k {
            // As a forward pass in training mode would.
            model
                .statistic
                .update(Tensor::full([2], step as f32, &Default::default()));
            model.statistic.value_sync();
            let grads = model.gradients(case.trajectory.grads_at(step));
            model = optimizer.step(case.trajectory.lr, model, grads);
            let statistic = model.statistic.value().into_data().to_vec::<f32>().unwrap();
            assert_eq!(statistic, vec![step as f32; 2], "step {step}");
        }
        assert_eq!(
            optimizer.to_record().slow.len(),
            2,
            "slow weights for w and b only"
        );
    }

    #[test]
    fn unusable_settings_are_named() {
        let error = |config: LookaheadConfig| config.validate().unwrap_err().to_string();
        assert_eq!(
            error(LookaheadConfig::new().with_k(0)),
            "invalid LookaheadConfig: k = 0 must be at least 1"
        );
        assert_eq!(
            error(LookaheadConfig::new().with_alpha(1.5)),
            "invalid LookaheadConfig: alpha = 1.5 must lie in (0, 1]"
        );
        let invalid_radam =
            RangerConfig::new(RAdamConfig::new().with_beta_2(1.0), LookaheadConfig::new());
        assert_eq!(invalid_radam.validate().unwrap_err().field, "beta_2");
        let error = invalid_radam.try_init::<B, Model>().err().unwrap();
        assert_eq!(error.field, "beta_2");
        assert!(LookaheadConfig::new().with_alpha(1.0).validate().is_ok());
    }
}
