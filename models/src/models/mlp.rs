//! A multi-layer perceptron classifier: the smallest model that shows the whole training loop.

use crate::batch::PointBatch;
use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{ClassificationOutput, TrainOutput, TrainStep, ValidStep};

/// Configuration of an [`MlpClassifier`].
#[derive(Config, Debug)]
pub struct MlpClassifierConfig {
    /// Input features.
    pub d_input: usize,
    /// Classes.
    pub num_classes: usize,
    /// Width of each hidden layer.
    #[config(default = 64)]
    pub d_hidden: usize,
    /// Number of hidden layers (each Linear + ReLU).
    #[config(default = 2)]
    pub hidden_layers: usize,
}

/// `hidden_layers` × (Linear → ReLU), then a Linear to the class logits.
#[derive(Module, Debug)]
pub struct MlpClassifier<B: Backend> {
    hidden: Vec<Linear<B>>,
    output: Linear<B>,
    activation: Relu,
}

impl MlpClassifierConfig {
    /// Builds the model on `device` with Burn's default (Kaiming-uniform) initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MlpClassifier<B> {
        let mut hidden = Vec::with_capacity(self.hidden_layers);
        let mut width = self.d_input;
        for _ in 0..self.hidden_layers {
            hidden.push(LinearConfig::new(width, self.d_hidden).init(device));
            width = self.d_hidden;
        }
        MlpClassifier {
            hidden,
            output: LinearConfig::new(width, self.num_classes).init(device),
            activation: Relu::new(),
        }
    }
}

impl<B: Backend> MlpClassifier<B> {
    /// Class logits `[batch, num_classes]` for inputs `[batch, d_input]`.
    pub fn forward(&self, inputs: Tensor<B, 2>) -> Tensor<B, 2> {
        let hidden = self
            .hidden
            .iter()
            .fold(inputs, |x, layer| self.activation.forward(layer.forward(x)));
        self.output.forward(hidden)
    }

    /// Logits and mean cross-entropy loss for a batch, as Burn's classification metrics expect.
    pub fn forward_classification(&self, batch: PointBatch<B>) -> ClassificationOutput<B> {
        let logits = self.forward(batch.inputs);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl<B: AutodiffBackend> TrainStep<PointBatch<B>, ClassificationOutput<B>> for MlpClassifier<B> {
    fn step(&self, batch: PointBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward_classification(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> ValidStep<PointBatch<B>, ClassificationOutput<B>> for MlpClassifier<B> {
    fn step(&self, batch: PointBatch<B>) -> ClassificationOutput<B> {
        self.forward_classification(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = Autodiff<NdArray>;

    #[test]
    fn parameter_count_and_shapes() {
        let model: MlpClassifier<B> = MlpClassifierConfig::new(2, 3).init(&Default::default());
        // (2·64 + 64) + (64·64 + 64) + (64·3 + 3)
        assert_eq!(model.num_params(), 192 + 4160 + 195);
        let logits = model.forward(Tensor::zeros([5, 2], &Default::default()));
        assert_eq!(logits.dims(), [5, 3]);
    }
}
