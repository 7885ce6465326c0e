//! A downstream crate as a CPU-only user writes it: a model, Burn's `LearnerBuilder`, ndarray,
//! and RAdam (`--features radam`) or Burn's own Adam.
use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::{DataLoaderBuilder, batcher::Batcher};
use burn::data::dataset::InMemDataset;
use burn::nn::{Linear, LinearConfig, loss::CrossEntropyLossConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{ClassificationOutput, LearnerBuilder, TrainOutput, TrainStep, ValidStep};

#[derive(Module, Debug)]
struct Model<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> Model<B> {
    fn forward(&self, (x, y): (Tensor<B, 2>, Tensor<B, 1, Int>)) -> ClassificationOutput<B> {
        let output = self.linear.forward(x);
        let loss = CrossEntropyLossConfig::new()
            .init(&output.device())
            .forward(output.clone(), y.clone());
        ClassificationOutput::new(loss, output, y)
    }
}

type Batch<B> = (Tensor<B, 2>, Tensor<B, 1, Int>);

impl<B: AutodiffBackend> TrainStep<Batch<B>, ClassificationOutput<B>> for Model<B> {
    fn step(&self, batch: Batch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> ValidStep<Batch<B>, ClassificationOutput<B>> for Model<B> {
    fn step(&self, batch: Batch<B>) -> ClassificationOutput<B> {
        self.forward(batch)
    }
}

#[derive(Clone)]
struct Points;

impl<B: Backend> Batcher<B, (f32, i64), Batch<B>> for Points {
    fn batch(&self, items: Vec<(f32, i64)>, device: &B::Device) -> Batch<B> {
        let x: Vec<f32> = items.iter().map(|(x, _)| *x).collect();
        let y: Vec<i64> = items.iter().map(|(_, y)| *y).collect();
        let n = items.len();
        (
            Tensor::<B, 1>::from_floats(x.as_slice(), device).reshape([n, 1]),
            Tensor::from_ints(y.as_slice(), device),
        )
    }
}

fn main() {
    type B = Autodiff<NdArray>;
    let device = Default::default();
    let items: Vec<(f32, i64)> = (0..256)
        .map(|i| (i as f32 / 256.0 - 0.5, (i >= 128) as i64))
        .collect();
    let train = DataLoaderBuilder::new(Points)
        .batch_size(32)
        .build(InMemDataset::new(items.clone()));
    let valid = DataLoaderBuilder::new(Points)
        .batch_size(32)
        .build(InMemDataset::new(items));
    #[cfg(feature = "radam")]
    let optimizer = radam_burn::RAdamConfig::new().init();
    #[cfg(not(feature = "radam"))]
    let optimizer = burn::optim::AdamConfig::new().init();
    let model = Model::<B> {
        linear: LinearConfig::new(1, 2).init(&device),
    };
    let learner = LearnerBuilder::new("/tmp/radam-consumer")
        .num_epochs(2)
        .build(model, optimizer, 1e-2);
    learner.fit(train, valid);
}
