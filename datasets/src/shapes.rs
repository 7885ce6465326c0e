//! A procedurally generated 32×32 RGB, 10-class image task with the CIFAR item type: each class
//! is a shape, drawn at a random position and size, in random colours on a random background,
//! with pixel noise. Learnable by a small convolutional network; not by a linear model, because
//! position and colour vary independently of the class.

use burn::data::dataset::Dataset;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::image::{IMAGE_BYTES, IMAGE_SIZE, ImageItem};

/// The class names, in label order.
pub const SHAPE_CLASSES: [&str; 10] = [
    "disc",
    "ring",
    "square",
    "frame",
    "plus",
    "cross",
    "horizontal stripes",
    "vertical stripes",
    "triangle",
    "two dots",
];

/// `len` images, item `i` drawn deterministically from `(seed, i)`: any size, no storage, the
/// same image every time it is read.
#[derive(Clone, Debug)]
pub struct ShapesDataset {
    len: usize,
    seed: u64,
}

impl ShapesDataset {
    /// A data set of `len` images drawn from `seed`. Use different seeds for training and
    /// validation sets.
    pub fn new(len: usize, seed: u64) -> Self {
        Self { len, seed }
    }

    /// Whether pixel `(x, y)` belongs to shape `class` centred at `(cx, cy)` with radius `r`.
    fn inside(class: usize, x: f32, y: f32, cx: f32, cy: f32, r: f32) -> bool {
        let (dx, dy) = (x - cx, y - cy);
        let distance = (dx * dx + dy * dy).sqrt();
        let in_box = dx.abs() <= r && dy.abs() <= r;
        let thickness = (r / 3.5).max(1.0);
        match class {
            0 => distance <= r,
            1 => distance <= r && distance >= r - thickness,
            2 => in_box,
            3 => in_box && (dx.abs() >= r - thickness || dy.abs() >= r - thickness),
            4 => in_box && (dx.abs() <= thickness / 2.0 + 0.5 || dy.abs() <= thickness / 2.0 + 0.5),
            5 => {
                in_box
                    && ((dx - dy).abs() <= thickness * 0.75 || (dx + dy).abs() <= thickness * 0.75)
            }
            6 => in_box && ((dy + r) / thickness).floor() as i32 % 2 == 0,
            7 => in_box && ((dx + r) / thickness).floor() as i32 % 2 == 0,
            8 => dy <= r && dy >= -r && dx.abs() <= (dy + r) / 2.0,
            9 => {
                let dot = r * 0.4;
                let left = ((dx + r * 0.55).powi(2) + dy * dy).sqrt() <= dot;
                let right = ((dx - r * 0.55).powi(2) + dy * dy).sqrt() <= dot;
                left || right
            }
            _ => unreachable!("10 classes"),
        }
    }

    fn draw(&self, index: usize) -> ImageItem {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64);
        let label = rng.random_range(0..SHAPE_CLASSES.len());
        let r = rng.random_range(6.0..10.0_f32);
        let cx = rng.random_range(r..IMAGE_SIZE as f32 - r);
        let cy = rng.random_range(r..IMAGE_SIZE as f32 - r);
        let background: [f32; 3] = [rng.random(), rng.random(), rng.random()];
        // A foreground colour clearly distinct from the background.
        let foreground = loop {
            let colour: [f32; 3] = [rng.random(), rng.random(), rng.random()];
            let distance: f32 = colour
                .iter()
                .zip(&background)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt();
            if distance > 0.45 {
                break colour;
            }
        };
        let noise = Normal::new(0.0_f32, 0.06).expect("valid standard deviation");
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        let mut pixels = vec![0u8; IMAGE_BYTES];
        for y in 0..IMAGE_SIZE {
            for x in 0..IMAGE_SIZE {
                let on = Self::inside(label, x as f32 + 0.5, y as f32 + 0.5, cx, cy, r);
                let colour = if on { &foreground } else { &background };
                for channel in 0..3 {
                    let value = colour[channel] + noise.sample(&mut rng);
                    pixels[channel * plane + y * IMAGE_SIZE + x] =
                        (value.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
        ImageItem { pixels, label }
    }
}

impl Dataset<ImageItem> for ShapesDataset {
    fn get(&self, index: usize) -> Option<ImageItem> {
        (index < self.len).then(|| self.draw(index))
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = ShapesDataset::new(20, 1);
        let b = ShapesDataset::new(20, 1);
        let c = ShapesDataset::new(20, 2);
        for i in 0..20 {
            assert_eq!(a.get(i), b.get(i));
        }
        assert_ne!(a.get(0), c.get(0));
        assert!(a.get(20).is_none());
    }

    #[test]
    fn every_class_appears_and_draws_pixels() {
        let data = ShapesDataset::new(400, 5);
        let mut counts = [0usize; 10];
        for i in 0..data.len() {
            let item = data.get(i).unwrap();
            counts[item.label] += 1;
            // The shape covers part of the image: not a flat colour.
            let first = item.pixels[0] as i32;
            assert!(
                item.pixels.iter().any(|&p| (p as i32 - first).abs() > 40),
                "item {i} is flat"
            );
        }
        assert!(counts.iter().all(|&c| c >= 20), "class counts {counts:?}");
    }

    /// Multinomial logistic regression on the raw pixels, trained to convergence on the
    /// training split, stays far from solving the task.
    #[test]
    fn a_linear_model_does_not_solve_it() {
        let (train, test) = (ShapesDataset::new(2000, 10), ShapesDataset::new(500, 11));
        let features = |data: &ShapesDataset| -> Vec<(Vec<f32>, usize)> {
            (0..data.len())
                .map(|i| {
                    let item = data.get(i).unwrap();
                    (
                        item.pixels
                            .iter()
                            .map(|&p| p as f32 / 255.0 - 0.5)
                            .collect(),
                        item.label,
                    )
                })
                .collect()
        };
        let (train, test) = (features(&train), features(&test));
        let d = IMAGE_BYTES;
        let mut weights = vec![0.0_f32; 10 * (d + 1)];
        let lr = 0.05;
        for _epoch in 0..30 {
            for (x, y) in &train {
                let mut logits = [0.0_f32; 10];
                for (k, logit) in logits.iter_mut().enumerate() {
                    let w = &weights[k * (d + 1)..(k + 1) * (d + 1)];
                    *logit = w[d] + w[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>();
                }
                let max = logits.iter().cloned().fold(f32::MIN, f32::max);
                let total: f32 = logits.iter().map(|l| (l - max).exp()).sum();
                for (k, &logit) in logits.iter().enumerate() {
                    let gradient = (logit - max).exp() / total - if k == *y { 1.0 } else { 0.0 };
                    let w = &mut weights[k * (d + 1)..(k + 1) * (d + 1)];
                    for (wi, xi) in w[..d].iter_mut().zip(x) {
                        *wi -= lr * gradient * xi / d as f32 * 10.0;
                    }
                    w[d] -= lr * gradient;
                }
            }
        }
        let accuracy = |data: &[(Vec<f32>, usize)]| {
            let correct = data
                .iter()
                .filter(|(x, y)| {
                    let score = |k: usize| {
                        let w = &weights[k * (d + 1)..(k + 1) * (d + 1)];
                        w[d] + w[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
                    };
                    (0..10)
                        .max_by(|&a, &b| score(a).total_cmp(&score(b)))
                        .unwrap()
                        == *y
                })
                .count();
            correct as f32 / data.len() as f32
        };
        let (train_accuracy, test_accuracy) = (accuracy(&train), accuracy(&test));
        println!(
            "linear model: train accuracy {train_accuracy:.3}, test accuracy {test_accuracy:.3}"
        );
        assert!(
            test_accuracy < 0.4,
            "a linear model reaches {test_accuracy} on held-out images"
        );
        assert!(
            test_accuracy > 0.1 || train_accuracy > 0.1,
            "the linear model did not train at all"
        );
    }
}
