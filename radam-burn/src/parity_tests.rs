//! Parity with the reference implementations, through a real Burn module and the
//! `OptimizerAdaptor` that `RAdamConfig::init` returns.
//!
//! The reference trajectories come from `tools/radam_reference.py` (PyTorch's `torch.optim.RAdam`
//! and float32 re-implementations of the paper's and the official presets), committed as
//! `radam-core/testdata/radam_reference.json` (read through `radam_core::reference_data`).

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use radam_core::reference_data::{
    Case, Stepped, assert_close, assert_moment, assert_relative, reference, replay_trajectories,
};

use crate::{RAdam, RAdamConfig, RAdamState, rectification};

type TestBackend = Autodiff<NdArray<f32>>;

/// The config of a reference case.
fn config_of(case: &Case) -> RAdamConfig {
    RAdamConfig::from_fields(&case.fields())
}

/// A module whose only parameter is `w`; `loss = sum(w ⊙ G)` makes its gradient exactly `G`.
#[derive(Module, Debug)]
struct Weights<B: Backend> {
    w: Param<Tensor<B, 2>>,
}

impl<B: Backend> Weights<B> {
    fn new(values: &[f32], shape: [usize; 2], device: &B::Device) -> Self {
        let tensor = Tensor::from_data(TensorData::new(values.to_vec(), shape), device);
        Self {
            w: Param::from_tensor(tensor),
        }
    }

    fn values(&self) -> Vec<f32> {
        self.w.val().into_data().to_vec().unwrap()
    }
}

fn gradients_of(model: &Weights<TestBackend>, grad: &[f32], shape: [usize; 2]) -> GradientsParams {
    let device = Default::default();
    let g = Tensor::<TestBackend, 2>::from_data(TensorData::new(grad.to_vec(), shape), &device);
    let loss = model.w.val().mul(g).sum();
    GradientsParams::from_grads(loss.backward(), model)
}

type Adaptor = OptimizerAdaptor<RAdam, Weights<TestBackend>, TestBackend>;

fn state_of(optimizer: &Adaptor) -> RAdamState<NdArray<f32>, 2> {
    let record = optimizer.to_record();
    assert_eq!(record.len(), 1, "one parameter, one state");
    record.into_values().next().unwrap().into_state()
}

/// The optimizer of `config`, fused (the default on ndarray) or with tensor operations only.
fn optimizer(config: &RAdamConfig, fused: bool) -> Adaptor {
    let radam = config.build().expect("valid config");
    OptimizerAdaptor::from(if fused {
        radam
    } else {
        radam.tensor_ops_only()
    })
}

#[test]
fn trajectories_match_the_references() {
    for fused in [true, false] {
        trajectories_match_the_references_on(fused);
    }
}

fn trajectories_match_the_references_on(fused: bool) {
    let device = Default::default();
    let worst = replay_trajectories(
        |case| {
            let model = Weights::<TestBackend>::new(&case.theta0, case.shape, &device);
            (model, optimizer(&config_of(case), fused), case.shape)
        },
        |(model, optimizer, shape), lr, grad| {
            let grads = gradients_of(model, grad, *shape);
            *model = optimizer.step(lr, model.clone(), grads);
            let state = state_of(optimizer);
            Stepped {
                theta: model.values(),
                m: state.m.into_data().to_vec().unwrap(),
                v: state.v.into_data().to_vec().unwrap(),
                time: state.time,
            }
        },
    );
    println!(
        "worst scaled parameter error over all reference trajectories (fused: {fused}): {worst:e}"
    );
}

#[test]
fn linear_regression_matches_pytorch_and_candle_optimisers() {
    // Published (candle-optimisers, checked there against PyTorch) to 4 decimals: RADAM.md.
    let published = [
        ([2.2128, 1.2819], 0.2923),
        ([2.2117, 1.2812], 0.2921),
        ([2.1294, 1.2331], 0.2818),
    ];
    for (reference, (published_weight, published_bias)) in
        reference().linear_regression.iter().zip(published)
    {
        let device = Default::default();
        let xs = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(vec![2.0_f32, 1.0, 7.0, 4.0, -4.0, 12.0, 5.0, 8.0], [4, 2]),
            &device,
        );
        let ys = Tensor::<TestBackend, 2>::from_data(
            TensorData::new(vec![5.0_f32, 23.0, -2.0, 21.0], [4, 1]),
            &device,
        );
        let mut model: Linear<TestBackend> = LinearConfig::new(2, 1).init(&device);
        model.weight = model.weight.map(|w| w.zeros_like().require_grad());
        model.bias = model.bias.map(|b| b.map(|b| b.zeros_like().require_grad()));
        let mut optimizer = RAdamConfig::new()
            .with_weight_decay(reference.weight_decay)
            .with_decoupled_weight_decay(reference.decoupled_weight_decay)
            .init();
        for _ in 0..100 {
            let loss = (model.forward(xs.clone()) - ys.clone())
                .powi_scalar(2)
                .sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3, model, grads);
        }
        let weight: Vec<f32> = model.weight.val().into_data().to_vec().unwrap();
        let bias: Vec<f32> = model
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        let what = format!("linear regression, weight decay {}", reference.weight_decay);
        assert_close(&weight, &reference.weight, 1e-5, &what);
        assert_close(&bias, &reference.bias, 1e-5, &what);
        assert_close(&weight, &published_weight, 1e-4, &what);
        assert_close(&bias, &[published_bias], 1e-4, &what);
    }
}

/// With a constant gradient of 1, `m̂_t = 1` and `v_t = 1 − β2^t`, so a momentum step moves θ by
/// exactly α and a rectified step by `α·r_t·sqrt(1 − β2^t)/(sqrt(1 − β2^t) + ε) ≈ α·r_t`.
fn decrements(config: RAdamConfig, steps: usize) -> Vec<f64> {
    let device = Default::default();
    let mut model = Weights::<TestBackend>::new(&[0.0], [1, 1], &device);
    let mut optimizer: Adaptor = config.init();
    let mut previous = 0.0_f64;
    let mut result = Vec::new();
    for _ in 0..steps {
        let grads = gradients_of(&model, &[1.0], [1, 1]);
        model = optimizer.step(1e-3, model, grads);
        let current = model.values()[0] as f64;
        result.push(previous - current);
        previous = current;
    }
    result
}

fn assert_decrement(decrement: f64, expected: f64, what: &str) {
    assert!(
        (decrement - expected).abs() <= 1e-9 + 1e-5 * expected.abs(),
        "{what}: θ moved by {decrement:e}, expected {expected:e}"
    );
}

#[test]
fn each_preset_starts_adapting_at_its_documented_step() {
    let lr = 1e-3;
    let default = decrements(RAdamConfig::new(), 7);
    for (t, &d) in default.iter().enumerate().take(5) {
        assert_decrement(d, lr, &format!("default, step {}", t + 1));
    }
    assert_decrement(
        default[5],
        lr * rectification(0.999, 6, 5.0).unwrap(),
        "default, step 6",
    );

    let paper = decrements(RAdamConfig::paper(), 6);
    for (t, &d) in paper.iter().enumerate().take(4) {
        assert_decrement(d, lr, &format!("paper, step {}", t + 1));
    }
    assert_decrement(
        paper[4],
        lr * rectification(0.999, 5, 4.0).unwrap(),
        "paper, step 5",
    );

    let official = decrements(RAdamConfig::official(), 7);
    for (t, &d) in official.iter().enumerate().take(5) {
        assert_decrement(d, 0.0, &format!("official, step {}", t + 1));
    }
    assert_decrement(
        official[5],
        lr * rectification(0.999, 6, 5.0).unwrap(),
        "official, step 6",
    );
}

#[test]
fn small_beta_2_stays_in_the_momentum_phase_without_nan() {
    let decrements = decrements(RAdamConfig::new().with_beta_2(0.5), 200);
    for (t, d) in decrements.iter().enumerate() {
        assert_decrement(*d, 1e-3, &format!("β2 = 0.5, step {}", t + 1));
    }
}

#[test]
fn resuming_from_a_saved_record_is_bit_identical() {
    let case = reference()
        .cases
        .into_iter()
        .find(|case| case.name == "defaults")
        .unwrap();
    let device = Default::default();
    let (total, split) = (case.grads.len(), 13);

    let mut straight_model = Weights::<TestBackend>::new(&case.theta0, case.shape, &device);
    let mut straight: Adaptor = RAdamConfig::new().init();
    for grad in &case.grads {
        let grads = gradients_of(&straight_model, grad, case.shape);
        straight_model = straight.step(1e-3, straight_model, grads);
    }

    let mut model = Weights::<TestBackend>::new(&case.theta0, case.shape, &device);
    let mut first: Adaptor = RAdamConfig::new().init();
    for grad in &case.grads[..split] {
        let grads = gradients_of(&model, grad, case.shape);
        model = first.step(1e-3, model, grads);
    }
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let dir = std::env::temp_dir().join(format!("radam-burn-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("optimizer");
    recorder.record(first.to_record(), path.clone()).unwrap();
    drop(first);

    let loaded = recorder.load(path, &device).unwrap();
    let mut resumed: Adaptor = RAdamConfig::new()
        .init::<TestBackend, Weights<TestBackend>>()
        .load_record(loaded);
    for grad in &case.grads[split..total] {
        let grads = gradients_of(&model, grad, case.shape);
        model = resumed.step(1e-3, model, grads);
    }
    std::fs::remove_dir_all(&dir).ok();

    let straight_bits: Vec<u32> = straight_model
        .values()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    let resumed_bits: Vec<u32> = model.values().iter().map(|x| x.to_bits()).collect();
    assert_eq!(straight_bits, resumed_bits);
    let (a, b) = (state_of(&straight), state_of(&resumed));
    assert_eq!(a.time, b.time);
    assert_eq!(a.m.into_data(), b.m.into_data());
    assert_eq!(a.v.into_data(), b.v.into_data());
}

#[test]
#[should_panic(expected = "invalid RAdamConfig: beta_1 = 1.5 must lie in [0, 1)")]
fn init_panics_with_the_validation_message() {
    let _: Adaptor = RAdamConfig::new().with_beta_1(1.5).init();
}

#[test]
fn try_init_returns_the_error() {
    let error = RAdamConfig::new()
        .with_epsilon(f32::NAN)
        .try_init::<TestBackend, Weights<TestBackend>>()
        .err()
        .expect("NaN epsilon is rejected");
    assert_eq!(error.field, "epsilon");
}

/// The integer hash of `tools/radam_reference.py` (`mix`), modulo 2^32.
fn mix(i: u64, t: u64) -> u64 {
    const MASK: u64 = (1 << 32) - 1;
    let mut h = (i.wrapping_mul(2_654_435_761) + t * 97_531 + 12_345) & MASK;
    h ^= h >> 13;
    h.wrapping_mul(1_274_126_177) & MASK
}

/// `(mix(i, t) mod 2001) − 1000` for every element, times `scale` (a power of two: exact).
fn hashed(n: usize, t: u64, scale: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| ((mix(i, t) % 2001) as f32 - 1000.0) * scale)
        .collect()
}

#[test]
fn parallel_fused_chunks_match_pytorch() {
    for case in reference().large_cases {
        let device = Default::default();
        let shape = [1, case.n];
        let mut model =
            Weights::<TestBackend>::new(&hashed(case.n, 0, 2f32.powi(-9)), shape, &device);
        let config = RAdamConfig::new()
            .with_weight_decay(case.weight_decay)
            .with_decoupled_weight_decay(case.decoupled_weight_decay);
        // On ndarray this is the fused step, split over threads in chunks of 65,536 elements.
        let mut optimizer = optimizer(&config, true);
        let scales = [1.0, 2f32.powi(-20), 2f32.powi(10)];
        for t in 1..=case.steps {
            let grad = hashed(case.n, t as u64, 2f32.powi(-10) * scales[t % 3]);
            let grads = gradients_of(&model, &grad, shape);
            model = optimizer.step(case.lrs[t - 1], model, grads);
        }
        let pick =
            |values: Vec<f32>| -> Vec<f32> { case.sample.iter().map(|&i| values[i]).collect() };
        let state = state_of(&optimizer);
        let what = |part: &str| format!("{}, {part} after {} steps", case.name, case.steps);
        let worst = assert_close(&pick(model.values()), &case.theta, 5e-6, &what("θ"));
        assert_moment(
            &pick(state.m.into_data().to_vec().unwrap()),
            &case.m,
            1000.0,
            &what("m"),
        );
        assert_relative(
            &pick(state.v.into_data().to_vec().unwrap()),
            &case.v,
            5e-6,
            &what("v"),
        );
        println!(
            "{}: worst scaled θ error {worst:e} over {} sampled elements",
            case.name,
            case.sample.len()
        );
    }
}

#[test]
fn a_non_contiguous_parameter_follows_the_same_trajectory() {
    // The "defaults" case with θ held as the transpose of a [4, 3] tensor: the fused step must
    // read it in logical order (it copies it to a standard layout first).
    let case = reference()
        .cases
        .into_iter()
        .find(|case| case.name == "defaults")
        .expect("the defaults case");
    let device = Default::default();
    let [rows, columns] = case.shape;
    let transposed: Vec<f32> = (0..columns * rows)
        .map(|k| case.theta0[(k % rows) * columns + k / rows])
        .collect();
    let stored =
        Tensor::<TestBackend, 2>::from_data(TensorData::new(transposed, [columns, rows]), &device);
    let theta = stored.transpose();
    assert_eq!(theta.dims(), case.shape);
    let model = Weights {
        w: Param::from_tensor(theta),
    };
    assert_eq!(
        model.values(),
        case.theta0,
        "the logical values are the case's θ0"
    );
    for fused in [true, false] {
        let mut model_run = model.clone();
        let mut optimizer = optimizer(&config_of(&case), fused);
        for (step, (grad, expected)) in case.grads.iter().zip(&case.thetas).enumerate() {
            let grads = gradients_of(&model_run, grad, case.shape);
            model_run = optimizer.step(case.lrs[step], model_run, grads);
            let what = format!("non-contiguous θ (fused: {fused}), step {}", step + 1);
            assert_close(&model_run.values(), expected, 5e-6, &what);
        }
    }
    drop(model);
}
