//! The models' initial weights are drawn as their references draw them, tested by their moments:
//! over at least 10⁵ draws of each law, the sample mean within three standard errors of 0, the
//! sample variance within three standard errors (`√((μ₄ − σ⁴)/n)`) of the law's, and a uniform
//! law's bounds held.
//!
//! - The CIFAR ResNet as the RAdam repository's CIFAR code (`cifar/models/resnet.py`, from
//!   bearpaw's pytorch-classification): every convolution `N(0, 2/n)`, `n = k·k·out_channels`;
//!   batch norm γ = 1, β = 0; the classifier as `nn.Linear`: weight and bias
//!   `U(−1/√in, 1/√in)`.
//! - The LSTM as `torch.nn.LSTM` (`reset_parameters`): every weight and bias `U(−1/√h, 1/√h)`.
//! - The Transformer with `TransformerInit::Fairseq` (the paper preset's) as fairseq's
//!   `transformer_iwslt_de_en` (2019): query, key and value projections `U(±√(6/4d))`, output
//!   and feed-forward projections Xavier uniform, projection biases 0, embeddings `N(0, 1/d)`
//!   with the padding row 0, layer norms 1 and 0.
//!
//! A test binary of its own, seeding Burn's process-wide generator first, so that the draws —
//! and the verdict — are the same on every run (three standard errors would otherwise fail one
//! check in about 370 by chance).

use burn::backend::NdArray;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use radam_models::lstm::StackedLstmConfig;
use radam_models::resnet::{CifarResNetConfig, Shortcut};
use radam_models::transformer::{TransformerInit, TransformerNmtConfig};

type B = NdArray<f32>;

/// A distribution the initial weights are drawn from, by its reference's formula.
#[derive(Clone, Copy, Debug)]
enum Law {
    /// `U(−bound, bound)`.
    Uniform { bound: f64 },
    /// `N(0, std²)`.
    Normal { std: f64 },
}

impl Law {
    /// Variance and fourth central moment.
    fn moments(self) -> (f64, f64) {
        match self {
            Law::Uniform { bound } => (bound * bound / 3.0, bound.powi(4) / 5.0),
            Law::Normal { std } => (std * std, 3.0 * std.powi(4)),
        }
    }
}

/// Asserts that `values` look drawn from `law` (see the module); prints the sample moments.
fn assert_drawn_from(values: &[f32], law: Law, what: &str) {
    let n = values.len() as f64;
    assert!(n >= 1e5, "{what}: {n} draws, too few to test the moments");
    let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    let (sigma2, mu4) = law.moments();
    let mean_error = 3.0 * (sigma2 / n).sqrt();
    let variance_error = 3.0 * ((mu4 - sigma2 * sigma2) / n).sqrt();
    println!(
        "{what}: {n} draws, mean {mean:e} (0 ± {mean_error:e}), variance {variance:e} ({sigma2:e} ± {variance_error:e}), {law:?}"
    );
    assert!(mean.abs() <= mean_error, "{what}: mean {mean:e}");
    assert!(
        (variance - sigma2).abs() <= variance_error,
        "{what}: variance {variance:e}"
    );
    if let Law::Uniform { bound } = law {
        let largest = values.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            largest as f64 <= bound,
            "{what}: {largest} outside ±{bound}"
        );
    }
}

/// Every float tensor of a module with its path (Burn's module and field names) and shape.
#[derive(Default)]
struct Tensors {
    path: Vec<String>,
    found: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor<B> for Tensors {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        self.found.push((
            self.path.join("."),
            shape,
            tensor.into_data().to_vec().unwrap(),
        ));
    }
}

fn tensors<M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut visitor = Tensors::default();
    module.visit(&mut visitor);
    visitor.found
}

#[test]
fn initial_weights_are_drawn_as_the_references_draw_them() {
    let device = Default::default();
    B::seed(&device, 41);

    // ResNet-20 at width 32 with 1000 classes: 1.07 M convolution weights, 129 k classifier
    // values.
    let resnet = CifarResNetConfig::new(20)
        .with_width(32)
        .with_num_classes(1000)
        .with_shortcut(Shortcut::Projection)
        .init::<B>(&device);
    let mut convolutions = Vec::new();
    let mut classifier = Vec::new();
    let mut classifier_input = 0;
    for (path, shape, values) in tensors(&resnet) {
        match (path.rsplit('.').next().unwrap(), shape.as_slice()) {
            // Each convolution over its own standard deviation √(2/fan_out): one N(0, 1) sample.
            ("weight", [c_out, _, kh, kw]) => {
                let std = (2.0 / (c_out * kh * kw) as f32).sqrt();
                convolutions.extend(values.iter().map(|x| x / std));
            }
            _ if path.starts_with("classifier.") => {
                if let [d_in, _] = shape[..] {
                    classifier_input = d_in;
                }
                classifier.extend(values);
            }
            ("gamma", _) => assert!(values.iter().all(|&g| g == 1.0), "{path}"),
            ("beta", _) => assert!(values.iter().all(|&b| b == 0.0), "{path}"),
            // The running statistics: 0 and 1.
            ("running_mean", _) => assert!(values.iter().all(|&m| m == 0.0), "{path}"),
            ("running_var", _) => assert!(values.iter().all(|&v| v == 1.0), "{path}"),
            _ => panic!("an unexpected tensor {path} {shape:?}"),
        }
    }
    assert_drawn_from(
        &convolutions,
        Law::Normal { std: 1.0 },
        "ResNet convolutions / √(2/fan_out)",
    );
    assert_eq!(classifier_input, 128);
    assert_drawn_from(
        &classifier,
        Law::Uniform {
            bound: 1.0 / (classifier_input as f64).sqrt(),
        },
        "ResNet classifier",
    );

    // Two LSTM layers, 64 → 128 → 128: 4·(64·128 + 128 + 128·128 + 128) + 4·(2·128·128 + 2·128)
    // = 231,424 values.
    let lstm = StackedLstmConfig::new(64, 128, 2).init::<B>(&device);
    let values: Vec<f32> = tensors(&lstm)
        .into_iter()
        .flat_map(|(_, _, values)| values)
        .collect();
    assert_eq!(values.len(), 231_424);
    assert_drawn_from(
        &values,
        Law::Uniform {
            bound: 1.0 / 128f64.sqrt(),
        },
        "LSTM weights and biases",
    );

    // The Transformer, fairseq's initialisation: d 128, feed-forward 512, 2 + 2 layers,
    // vocabulary 1000 (padding id 1). Each projection over its own bound: one U(−1, 1) sample.
    let (d, d_ff, pad) = (128usize, 512usize, 1usize);
    let transformer = TransformerNmtConfig::new(1000, 1000, pad)
        .with_d_model(d)
        .with_d_ff(d_ff)
        .with_encoder_layers(2)
        .with_decoder_layers(2)
        .with_initialisation(TransformerInit::Fairseq)
        .init::<B>(&device);
    let (mut projections, mut embedding) = (Vec::new(), Vec::new());
    for (path, shape, values) in tensors(&transformer) {
        let field = path.rsplit('.').next().unwrap();
        let bound = if path.contains("pwff.") {
            (6.0 / (d + d_ff) as f32).sqrt()
        } else if path.contains(".output.") {
            (6.0 / (2 * d) as f32).sqrt()
        } else {
            (6.0 / (4 * d) as f32).sqrt()
        };
        match field {
            "weight" if path == "source_embedding.weight" => {
                let std = (d as f32).powf(-0.5);
                for (row, values) in values.chunks(d).enumerate() {
                    if row == pad {
                        assert!(values.iter().all(|&x| x == 0.0), "padding row");
                    } else {
                        embedding.extend(values.iter().map(|x| x / std));
                    }
                }
            }
            "weight" => projections.extend(values.iter().map(|x| x / bound)),
            "bias" | "beta" => assert!(values.iter().all(|&b| b == 0.0), "{path}"),
            "gamma" => assert!(values.iter().all(|&g| g == 1.0), "{path}"),
            // Burn's positional encoding, not drawn.
            _ if path.starts_with("positions.") => {}
            _ => panic!("an unexpected tensor {path} {shape:?}"),
        }
    }
    assert_drawn_from(
        &projections,
        Law::Uniform { bound: 1.0 },
        "Transformer projections / their Xavier bound",
    );
    assert_drawn_from(
        &embedding,
        Law::Normal { std: 1.0 },
        "Transformer embeddings · √d",
    );
}
