//! The CIFAR ResNet-20 against PyTorch (`tools/model_parity_reference.py`, files in
//! `models/testdata/parity/`): PyTorch's weights loaded through [`ResNet::load_state_dict`],
//! then the loss and every parameter's gradient on one batch, 20 steps of RAdam against
//! `torch.optim.RAdam` (parameters and batch-norm statistics after them), and the loss in
//! evaluation mode; option-A and option-B shortcuts, each convolution algorithm.

use std::path::Path;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, TensorData};
use radam_burn::RAdamConfig;

use super::*;
use crate::state_dict::StateDict;
use crate::test_support::{TestAutodiffBackend as Ad, relative_error as error};

/// The reference file `name`.
fn reference(name: &str) -> StateDict {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/parity")
        .join(format!("{name}.safetensors"));
    StateDict::read(&path).unwrap()
}

/// ResNet-20 of width 8 with PyTorch's weights `weights`.
fn model(shortcut: Shortcut, algorithm: ConvAlgorithm, weights: &StateDict) -> ResNet<Ad> {
    CifarResNetConfig::new(20)
        .with_num_classes(10)
        .with_width(8)
        .with_shortcut(shortcut)
        .with_conv_algorithm(algorithm)
        .init::<Ad>(&Default::default())
        .load_state_dict(weights)
        .unwrap()
}

/// Batch `index` of the reference.
fn batch<B: Backend>(dict: &StateDict, index: usize) -> ImageBatch<B> {
    let device = Default::default();
    let (shape, images) = dict.f32(&format!("batch{index}.images")).unwrap();
    let (_, labels) = dict.i64(&format!("batch{index}.labels")).unwrap();
    ImageBatch {
        images: Tensor::from_data(TensorData::new(images, shape), &device),
        targets: Tensor::<B, 1, Int>::from_data(
            TensorData::new(labels.clone(), [labels.len()]),
            &device,
        ),
    }
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec().unwrap()
}

/// Every parameter's shape and values (or, with gradients, its gradient's), in the order Burn
/// visits them, which is the order of PyTorch's `named_parameters()`.
struct Parameters<'a> {
    gradients: Option<&'a <Ad as AutodiffBackend>::Gradients>,
    tensors: Vec<(Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor<Ad> for Parameters<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
        let tensor = param.val();
        if !tensor.is_require_grad() {
            return; // A running statistic, which Burn visits as well.
        }
        let dims = tensor.dims().to_vec();
        let values = match self.gradients {
            Some(gradients) => values(tensor.grad(gradients).expect("a gradient")),
            None => values(tensor),
        };
        self.tensors.push((dims, values));
    }
}

fn parameters(
    model: &ResNet<Ad>,
    gradients: Option<&<Ad as AutodiffBackend>::Gradients>,
) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut visitor = Parameters {
        gradients,
        tensors: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.tensors
}

/// Every batch norm's running mean and variance, in the model's order.
fn running_statistics(model: &ResNet<Ad>) -> Vec<Vec<f32>> {
    let mut norms = vec![&model.stem_norm];
    for block in &model.blocks {
        norms.extend([&block.norm_1, &block.norm_2]);
        norms.extend(block.projection.as_ref().map(|projection| &projection.norm));
    }
    norms
        .into_iter()
        .flat_map(|norm| {
            [
                values(norm.running_mean.value_sync()),
                values(norm.running_var.value_sync()),
            ]
        })
        .collect()
}

/// The worst errors of one model and convolution algorithm, each over the reference tensor's
/// largest element.
#[derive(Debug)]
struct Errors {
    /// The training-mode loss on batch 0.
    loss: f32,
    /// Every parameter's gradient of that loss.
    gradients: f32,
    /// The parameters after 20 RAdam steps.
    steps: f32,
    /// The batch-norm running means and variances after them.
    running_statistics: f32,
    /// The evaluation-mode loss of our model after the steps.
    eval_after_steps: f32,
    /// The evaluation-mode loss of PyTorch's weights and statistics after the steps, in our model.
    eval_of_reference: f32,
}

fn errors(name: &str, shortcut: Shortcut, algorithm: ConvAlgorithm) -> Errors {
    let dict = reference(name);
    let mut ours = model(shortcut, algorithm, &dict.with_prefix("weights."));
    let output = ours.forward_classification(batch(&dict, 0));
    let (_, loss) = dict.f32("loss.train").unwrap();
    let loss_error = error(&values(output.loss.clone()), &loss);
    let gradients = output.loss.backward();
    let reference_gradients: Vec<(Vec<usize>, Vec<f32>)> = dict
        .with_prefix("grads.")
        .names()
        .iter()
        .map(|name| dict.f32(&format!("grads.{name}")).unwrap())
        .collect();
    let our_gradients = parameters(&ours, Some(&gradients));
    assert_eq!(
        our_gradients.len(),
        reference_gradients.len(),
        "{name}: parameter count"
    );
    let mut gradient_error = 0.0f32;
    for ((our_shape, ours), (shape, reference)) in our_gradients.iter().zip(&reference_gradients) {
        // PyTorch's linear weight is [out, in], ours [in, out].
        let reference = if shape.len() == 2 && our_shape != shape {
            let [rows, cols] = [shape[0], shape[1]];
            (0..rows * cols)
                .map(|i| reference[(i % rows) * cols + i / rows])
                .collect()
        } else {
            assert_eq!(our_shape, shape, "{name}: parameters in another order");
            reference.clone()
        };
        gradient_error = gradient_error.max(error(ours, &reference));
    }
    // A fresh model: the forward above updated the running statistics.
    ours = model(shortcut, algorithm, &dict.with_prefix("weights."));
    let mut optimizer = RAdamConfig::new().init::<Ad, ResNet<Ad>>();
    for step in 0..20 {
        let loss = ours.forward_classification(batch(&dict, step % 2)).loss;
        let grads = GradientsParams::from_grads(loss.backward(), &ours);
        ours = optimizer.step(1e-3, ours, grads);
    }
    let after = model(shortcut, algorithm, &dict.with_prefix("after."));
    let parameter_error = parameters(&ours, None)
        .iter()
        .zip(parameters(&after, None))
        .fold(0.0f32, |m, ((_, ours), (_, reference))| {
            m.max(error(ours, &reference))
        });
    let statistics_error = running_statistics(&ours)
        .iter()
        .zip(running_statistics(&after))
        .fold(0.0f32, |m, (ours, reference)| {
            m.max(error(ours, &reference))
        });
    let (_, eval_loss) = dict.f32("loss.eval").unwrap();
    let our_eval = ours.valid().forward_classification(batch(&dict, 0)).loss;
    let their_eval = after.valid().forward_classification(batch(&dict, 0)).loss;
    Errors {
        loss: loss_error,
        gradients: gradient_error,
        steps: parameter_error,
        running_statistics: statistics_error,
        eval_after_steps: error(&values(our_eval), &eval_loss),
        eval_of_reference: error(&values(their_eval), &eval_loss),
    }
}

#[test]
fn resnet20_computes_pytorchs_loss_gradients_and_evaluation() {
    for (name, shortcut) in [
        ("resnet20_option_b", Shortcut::Projection),
        ("resnet20_option_a", Shortcut::ZeroPad),
    ] {
        for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
            let e = errors(name, shortcut, algorithm);
            eprintln!(
                "{name} {algorithm:?}: loss {:.1e}, gradients {:.1e}, 20 steps {:.1e}, running \
                 statistics {:.1e}, eval after them {:.1e}, eval of PyTorch's {:.1e}",
                e.loss,
                e.gradients,
                e.steps,
                e.running_statistics,
                e.eval_after_steps,
                e.eval_of_reference
            );
            assert!(e.loss <= 1e-5, "{name} {algorithm:?}: {e:?}");
            assert!(e.gradients <= 1e-4, "{name} {algorithm:?}: {e:?}");
            assert!(e.eval_of_reference <= 1e-5, "{name} {algorithm:?}: {e:?}");
            // Not asserted yet (issue #41): after the 20 steps the parameters are 1.5e-6 to
            // 3e-2 away depending on the run's kernels, and the running variances 1.7e-3
            // (Burn updates them with the biased batch variance, PyTorch with the unbiased).
        }
    }
}
