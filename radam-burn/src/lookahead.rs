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

use burn::config::Config;
use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, LearningRate, Optimizer};
use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::config::RAdamConfig;
use crate::radam::RAdam;
use radam_core::{LookaheadFields, RAdamConfigError};

/// Configuration of [`Lookahead`]; the defaults are the paper's (`k = 5`, `α = 0.5`).
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
#[derive(Config, Debug)]
pub struct LookaheadConfig {
    /// `k`: fast steps between two synchronisations of the slow weights. Must be `≥ 1`.
    #[config(default = 5)]
    pub k: usize,
    /// `α`: the slow weights' step towards the fast ones, `φ ← φ + α·(θ − φ)`. Must lie in
    /// `(0, 1]`; `1` makes Lookahead the wrapped optimizer itself.
    #[config(default = 0.5)]
    pub alpha: f32,
}

impl LookaheadConfig {
    /// Checks `k` and `α`, naming the first field that is unusable.
    pub fn validate(&self) -> Result<(), RAdamConfigError> {
        self.fields().validate()
    }

    /// The fields, for `radam-core`.
    fn fields(&self) -> LookaheadFields {
        LookaheadFields {
            k: self.k,
            alpha: self.alpha,
        }
    }

    /// Wraps `inner` (any Burn optimizer: ours, or one of Burn's such as
    /// `AdamConfig::new().init()`) in Lookahead.
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

/// Configuration of [`Ranger`]: RAdam (torch's defaults unless set) and Lookahead (`k = 5`,
/// `α = 0.5`). The original Ranger used `β1 = 0.95` and `k = 6`; set them to match it.
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
#[derive(Config, Debug)]
pub struct RangerConfig {
    /// The fast optimizer, RAdam.
    pub radam: RAdamConfig,
    /// The slow weights' schedule.
    pub lookahead: LookaheadConfig,
}

impl RangerConfig {
    /// Builds RAdam wrapped in Lookahead, ready for `LearnerBuilder`.
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
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{Module, RunningState};
    use burn::optim::AdamConfig;
    use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
    use burn::tensor::TensorData;
    use serde::Deserialize;

    type B = Autodiff<NdArray<f32>>;

    const REFERENCE_JSON: &str = include_str!("../testdata/lookahead_reference.json");

    #[derive(Deserialize)]
    struct Reference {
        cases: Vec<Case>,
    }

    /// One trajectory of `tools/lookahead_reference.py`.
    #[derive(Deserialize)]
    struct Case {
        name: String,
        inner: String,
        steps: usize,
        k: usize,
        alpha: f32,
        lr: f64,
        initial: Values,
        grads: Series,
        after: Series,
    }

    #[derive(Deserialize)]
    struct Values {
        w: Vec<f32>,
        b: Vec<f32>,
    }

    #[derive(Deserialize)]
    struct Series {
        w: Vec<Vec<f32>>,
        b: Vec<Vec<f32>>,
    }

    fn reference() -> Vec<Case> {
        let reference: Reference =
            serde_json::from_str(REFERENCE_JSON).expect("testdata/lookahead_reference.json parses");
        reference.cases
    }

    /// Two trainable parameters of the reference's shapes, and a running statistic that no
    /// optimizer may touch.
    #[derive(Module, Debug)]
    struct Model<B: Backend> {
        w: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 1>>,
        statistic: RunningState<Tensor<B, 1>>,
    }

    impl Model<B> {
        fn new(initial: &Values) -> Self {
            let device = Default::default();
            let w = TensorData::new(initial.w.clone(), [3, 4]);
            let b = TensorData::new(initial.b.clone(), [5]);
            Self {
                w: Param::from_tensor(Tensor::from_data(w, &device)),
                b: Param::from_tensor(Tensor::from_data(b, &device)),
                statistic: RunningState::new(Tensor::zeros([2], &device)),
            }
        }

        fn values(&self) -> (Vec<f32>, Vec<f32>) {
            let values = |t: Tensor<B, 1>| t.into_data().to_vec::<f32>().unwrap();
            (values(self.w.val().flatten(0, 1)), values(self.b.val()))
        }

        /// `loss = Σ w ⊙ G_w + Σ b ⊙ G_b`, whose gradients are exactly the reference's.
        fn gradients(&self, case: &Case, step: usize) -> GradientsParams {
            let device = Default::default();
            let g_w = Tensor::<B, 2>::from_data(
                TensorData::new(case.grads.w[step].clone(), [3, 4]),
                &device,
            );
            let g_b = Tensor::<B, 1>::from_data(
                TensorData::new(case.grads.b[step].clone(), [5]),
                &device,
            );
            let loss = self.w.val().mul(g_w).sum() + self.b.val().mul(g_b).sum();
            GradientsParams::from_grads(loss.backward(), self)
        }
    }

    /// Steps `steps` of `case` with `optimizer`; the worst scaled error against the reference.
    fn follow<O: Optimizer<Model<B>, B>>(
        case: &Case,
        steps: std::ops::Range<usize>,
        mut model: Model<B>,
        optimizer: &mut O,
    ) -> (Model<B>, f32) {
        let mut worst = 0.0_f32;
        for step in steps {
            let grads = model.gradients(case, step);
            model = optimizer.step(case.lr, model, grads);
            let (w, b) = model.values();
            for (actual, expected) in [(&w, &case.after.w[step]), (&b, &case.after.b[step])] {
                for (a, e) in actual.iter().zip(expected) {
                    worst = worst.max((a - e).abs() / e.abs().max(1.0));
                }
            }
        }
        (model, worst)
    }

    fn config(case: &Case) -> LookaheadConfig {
        LookaheadConfig::new().with_k(case.k).with_alpha(case.alpha)
    }

    /// The reference case with RAdam inside.
    fn radam_case() -> Case {
        reference()
            .into_iter()
            .find(|case| case.inner == "radam")
            .expect("a RAdam case in the reference data")
    }

    fn ranger(case: &Case) -> Ranger<Model<B>, B> {
        assert_eq!(case.inner, "radam");
        RangerConfig::new(RAdamConfig::new(), config(case)).init()
    }

    #[test]
    fn trajectories_match_pytorch_over_several_synchronisations() {
        for case in reference() {
            assert!(
                case.steps >= 30 && case.steps / case.k >= 6,
                "{}",
                case.name
            );
            let model = Model::new(&case.initial);
            let (_, worst) = match case.inner.as_str() {
                "radam" => follow(&case, 0..case.steps, model, &mut ranger(&case)),
                "adam" => {
                    let adam = AdamConfig::new().with_epsilon(1e-8).init();
                    follow(&case, 0..case.steps, model, &mut config(&case).init(adam))
                }
                other => panic!("unknown inner optimizer {other}"),
            };
            assert!(worst <= 2e-6, "{}: worst scaled error {worst:e}", case.name);
        }
    }

    #[test]
    fn resuming_mid_cycle_is_exact() {
        let case = radam_case();
        // 13 = two synchronisations and three steps into the third cycle (k = 5).
        let interrupted_at = 13;
        assert_ne!(interrupted_at % case.k, 0);
        let mut straight = ranger(&case);
        let (straight, _) = follow(
            &case,
            0..case.steps,
            Model::new(&case.initial),
            &mut straight,
        );

        let mut first = ranger(&case);
        let (model, _) = follow(
            &case,
            0..interrupted_at,
            Model::new(&case.initial),
            &mut first,
        );
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        let bytes = recorder.record(first.to_record(), ()).unwrap();
        drop(first);
        let record = Recorder::<B>::load(&recorder, bytes, &Default::default()).unwrap();
        let mut resumed = ranger(&case).load_record(record);
        assert_eq!(resumed.steps(), interrupted_at);
        let (model, worst) = follow(&case, interrupted_at..case.steps, model, &mut resumed);

        assert_eq!(
            model.values(),
            straight.values(),
            "bit-identical after resuming"
        );
        assert!(worst <= 2e-6, "worst scaled error {worst:e}");
    }

    #[test]
    fn running_statistics_are_left_to_the_model() {
        let case = radam_case();
        let mut optimizer = ranger(&case);
        let mut model = Model::new(&case.initial);
        for step in 0..2 * case.k {
            // As a forward pass in training mode would.
            model
                .statistic
                .update(Tensor::full([2], step as f32, &Default::default()));
            model.statistic.value_sync();
            let grads = model.gradients(&case, step);
            model = optimizer.step(case.lr, model, grads);
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
        for alpha in [0.0, -0.5, 1.5, f32::NAN] {
            assert_eq!(
                error(LookaheadConfig::new().with_alpha(alpha)),
                format!("invalid LookaheadConfig: alpha = {alpha:?} must lie in (0, 1]")
            );
        }
        let invalid_radam =
            RangerConfig::new(RAdamConfig::new().with_beta_2(1.0), LookaheadConfig::new());
        let error = invalid_radam.try_init::<B, Model<B>>().err().unwrap();
        assert_eq!(error.field, "beta_2");
        assert!(LookaheadConfig::new().with_alpha(1.0).validate().is_ok());
    }
}
