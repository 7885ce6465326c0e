//! Interleaved spirals: a small, procedurally generated 2-D classification task that a linear
//! model cannot solve and a two-layer MLP learns in seconds. It is the data of the quickstart.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

pub use radam_models::batch::PointBatch;

/// One point and the arm of the spiral it was drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct PointItem {
    /// The point's coordinates, roughly within `[-1, 1]²`.
    pub point: [f32; 2],
    /// The arm, `0..arms`.
    pub label: usize,
}

/// `arms` interleaved spirals of `points_per_arm` points each, with Gaussian noise, drawn
/// deterministically from `seed`.
#[derive(Clone, Debug)]
pub struct SpiralsDataset {
    items: Vec<PointItem>,
}

impl SpiralsDataset {
    /// Draws the data set. `noise` is the standard deviation added to each coordinate
    /// (0.05 gives a clean but not trivial task).
    ///
    /// # Panics
    /// If `arms` is 0.
    pub fn new(arms: usize, points_per_arm: usize, noise: f32, seed: u64) -> Self {
        assert!(arms > 0, "SpiralsDataset needs at least one arm");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let jitter = Normal::new(0.0, noise.max(0.0) as f64)
            .expect("a finite, non-negative standard deviation");
        let mut items = Vec::with_capacity(arms * points_per_arm);
        for i in 0..points_per_arm {
            for arm in 0..arms {
                let radius = (i as f64 + rng.random::<f64>()) / points_per_arm as f64;
                let angle = 2.0 * std::f64::consts::PI * (arm as f64 / arms as f64 + 1.25 * radius);
                let x = radius * angle.cos() + jitter.sample(&mut rng);
                let y = radius * angle.sin() + jitter.sample(&mut rng);
                items.push(PointItem {
                    point: [x as f32, y as f32],
                    label: arm,
                });
            }
        }
        Self { items }
    }
}

impl Dataset<PointItem> for SpiralsDataset {
    fn get(&self, index: usize) -> Option<PointItem> {
        self.items.get(index).cloned()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Stacks [`PointItem`]s into a [`PointBatch`] on any backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct PointBatcher;

impl<B: Backend> Batcher<B, PointItem, PointBatch<B>> for PointBatcher {
    fn batch(&self, items: Vec<PointItem>, device: &B::Device) -> PointBatch<B> {
        let count = items.len();
        let coordinates: Vec<f32> = items.iter().flat_map(|item| item.point).collect();
        let labels: Vec<i64> = items.iter().map(|item| item.label as i64).collect();
        PointBatch {
            inputs: Tensor::from_data(TensorData::new(coordinates, [count, 2]), device),
            targets: Tensor::from_data(TensorData::new(labels, [count]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = SpiralsDataset::new(3, 50, 0.05, 7);
        let b = SpiralsDataset::new(3, 50, 0.05, 7);
        let c = SpiralsDataset::new(3, 50, 0.05, 8);
        assert_eq!(a.items, b.items);
        assert_ne!(a.items, c.items);
        assert_eq!(a.len(), 150);
    }

    #[test]
    fn classes_are_balanced_and_points_bounded() {
        let data = SpiralsDataset::new(4, 100, 0.0, 1);
        for arm in 0..4 {
            assert_eq!(
                data.items.iter().filter(|item| item.label == arm).count(),
                100
            );
        }
        for item in &data.items {
            let [x, y] = item.point;
            assert!(
                x.hypot(y) <= 1.0 + 1e-6,
                "{item:?} lies outside the unit disc"
            );
        }
    }

    #[test]
    fn batcher_keeps_order_and_values() {
        let data = SpiralsDataset::new(2, 3, 0.05, 3);
        let items: Vec<PointItem> = (0..data.len()).map(|i| data.get(i).unwrap()).collect();
        let batch: PointBatch<NdArray> = PointBatcher.batch(items.clone(), &Default::default());
        assert_eq!(batch.inputs.dims(), [6, 2]);
        let inputs: Vec<f32> = batch.inputs.into_data().to_vec().unwrap();
        let targets: Vec<i64> = batch.targets.into_data().to_vec().unwrap();
        for (i, item) in items.iter().enumerate() {
            assert_eq!(&inputs[2 * i..2 * i + 2], &item.point);
            assert_eq!(targets[i], item.label as i64);
        }
    }
}
