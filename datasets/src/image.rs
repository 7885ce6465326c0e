//! Image classification items, per-channel normalisation, the paper's CIFAR augmentation (random
//! 32×32 crop after 4-pixel zero padding, horizontal flip) and the batcher that applies them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::batch::ImageBatch;

/// Image side length of every image set here (CIFAR and the procedural set).
pub const IMAGE_SIZE: usize = 32;
/// Channels (RGB).
pub const CHANNELS: usize = 3;
/// Bytes per image: `3 × 32 × 32`, channel-major (all red, then green, then blue), as in the
/// CIFAR binary files.
pub const IMAGE_BYTES: usize = CHANNELS * IMAGE_SIZE * IMAGE_SIZE;

/// One 32×32 RGB image and its class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageItem {
    /// `3 × 32 × 32` bytes, channel-major, row-major within a channel.
    pub pixels: Vec<u8>,
    /// The class, `0..classes`.
    pub label: usize,
}

/// Per-channel mean and standard deviation of pixel values scaled to `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: [f32; 3],
    /// Standard deviation of each channel.
    pub std: [f32; 3],
}

impl Normalization {
    /// CIFAR-10's statistics, as in the training code the paper used.
    pub fn cifar10() -> Self {
        Self {
            mean: [0.4914, 0.4822, 0.4465],
            std: [0.2023, 0.1994, 0.2010],
        }
    }

    /// CIFAR-100's statistics.
    pub fn cifar100() -> Self {
        Self {
            mean: [0.5071, 0.4865, 0.4409],
            std: [0.2673, 0.2564, 0.2762],
        }
    }

    /// The statistics of (up to `limit` items of) `dataset`.
    pub fn measure(dataset: &impl Dataset<ImageItem>, limit: usize) -> Self {
        let count = dataset.len().min(limit);
        let mut sum = [0.0_f64; 3];
        let mut sum_sq = [0.0_f64; 3];
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        for index in 0..count {
            let item = dataset.get(index).expect("index below len");
            for (channel, pixels) in item.pixels.chunks(plane).enumerate() {
                for &p in pixels {
                    let value = p as f64 / 255.0;
                    sum[channel] += value;
                    sum_sq[channel] += value * value;
                }
            }
        }
        let n = (count * plane).max(1) as f64;
        let mean = sum.map(|s| s / n);
        let std = [0, 1, 2].map(|c| ((sum_sq[c] / n - mean[c] * mean[c]).max(1e-12)).sqrt() as f32);
        Self {
            mean: mean.map(|m| m as f32),
            std,
        }
    }
}

/// The paper's CIFAR augmentation: zero-pad by 4 pixels, crop a random 32×32 window, flip
/// horizontally with probability ½.
#[derive(Clone, Debug)]
struct Augmentation {
    seed: u64,
    /// Batches built so far: batch `k` draws from the stream `(seed, k)`, so a resumed run can
    /// continue exactly by skipping the batches already seen.
    batches: Arc<AtomicU64>,
}

/// Stacks [`ImageItem`]s into a normalised [`ImageBatch`] on any backend; training batchers also
/// augment.
///
/// Augmentation is reproducible from the seed when batches are built in order (one loader worker).
#[derive(Clone, Debug)]
pub struct ImageBatcher {
    normalization: Normalization,
    augmentation: Option<Augmentation>,
    /// Side of the batch's images: [`IMAGE_SIZE`] or a divisor of it (average-pooled).
    output_size: usize,
}

const PAD: usize = 4;

impl ImageBatcher {
    /// A training batcher: augments with random crops and flips drawn from `seed`, then normalises.
    pub fn train(normalization: Normalization, seed: u64) -> Self {
        Self {
            normalization,
            augmentation: Some(Augmentation {
                seed,
                batches: Arc::new(AtomicU64::new(0)),
            }),
            output_size: IMAGE_SIZE,
        }
    }

    /// An evaluation batcher: normalises only.
    pub fn eval(normalization: Normalization) -> Self {
        Self {
            normalization,
            augmentation: None,
            output_size: IMAGE_SIZE,
        }
    }

    /// Batches `size × size` images: each non-overlapping `(32 / size)²` block of the (augmented,
    /// normalised) 32×32 image is averaged into one pixel. `size` must divide 32 (32, 16, 8, …);
    /// see [`ImageBatcher::check_output_size`].
    ///
    /// # Panics
    /// If `size` does not divide [`IMAGE_SIZE`].
    pub fn with_output_size(mut self, size: usize) -> Self {
        if let Err(message) = Self::check_output_size(size) {
            panic!("{message}");
        }
        self.output_size = size;
        self
    }

    /// `Ok` if `size` is a side this batcher can produce (a divisor of 32, at least 1), else a
    /// one-line reason.
    pub fn check_output_size(size: usize) -> Result<(), String> {
        if size == 0 || !IMAGE_SIZE.is_multiple_of(size) {
            return Err(format!(
                "image size {size}: images are {IMAGE_SIZE}×{IMAGE_SIZE} and can only be \
                 average-pooled to a divisor of {IMAGE_SIZE} (32, 16, 8, 4, 2, 1)"
            ));
        }
        Ok(())
    }

    /// Continues the augmentation stream as if `batches` batches had been built already (for
    /// resuming a run exactly). No effect on evaluation batchers.
    pub fn skip_batches(self, batches: u64) -> Self {
        if let Some(augmentation) = &self.augmentation {
            augmentation.batches.store(batches, Ordering::SeqCst);
        }
        self
    }

    /// The pixels of `item` after a crop at offset `(dy, dx)` of the 4-pixel padded image
    /// (`0..=8` each) and an optional horizontal flip. Padding is black (0).
    pub fn crop_and_flip(pixels: &[u8], dy: usize, dx: usize, flip: bool) -> Vec<u8> {
        let mut out = vec![0u8; IMAGE_BYTES];
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        for channel in 0..CHANNELS {
            for y in 0..IMAGE_SIZE {
                let source_y = y + dy;
                if !(PAD..PAD + IMAGE_SIZE).contains(&source_y) {
                    continue;
                }
                for x in 0..IMAGE_SIZE {
                    let out_x = if flip { IMAGE_SIZE - 1 - x } else { x };
                    let source_x = x + dx;
                    if (PAD..PAD + IMAGE_SIZE).contains(&source_x) {
                        out[channel * plane + y * IMAGE_SIZE + out_x] = pixels
                            [channel * plane + (source_y - PAD) * IMAGE_SIZE + (source_x - PAD)];
                    }
                }
            }
        }
        out
    }
}

impl<B: Backend> Batcher<B, ImageItem, ImageBatch<B>> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &B::Device) -> ImageBatch<B> {
        let count = items.len();
        let mut rng = self.augmentation.as_ref().map(|augmentation| {
            let batch = augmentation.batches.fetch_add(1, Ordering::SeqCst);
            let mut rng = ChaCha8Rng::seed_from_u64(augmentation.seed);
            rng.set_stream(batch);
            rng
        });
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        let mut values = Vec::with_capacity(count * IMAGE_BYTES);
        let mut labels = Vec::with_capacity(count);
        for item in &items {
            let augmented;
            let pixels = match rng.as_mut() {
                Some(rng) => {
                    let (dy, dx) = (rng.random_range(0..=2 * PAD), rng.random_range(0..=2 * PAD));
                    augmented = Self::crop_and_flip(&item.pixels, dy, dx, rng.random_bool(0.5));
                    &augmented
                }
                None => &item.pixels,
            };
            for (channel, plane_pixels) in pixels.chunks(plane).enumerate() {
                let (mean, std) = (
                    self.normalization.mean[channel],
                    self.normalization.std[channel],
                );
                let normalised = plane_pixels
                    .iter()
                    .map(|&p| (p as f32 / 255.0 - mean) / std);
                if self.output_size == IMAGE_SIZE {
                    values.extend(normalised);
                } else {
                    let full: Vec<f32> = normalised.collect();
                    values.extend(average_pool(
                        &full,
                        IMAGE_SIZE,
                        IMAGE_SIZE / self.output_size,
                    ));
                }
            }
            labels.push(item.label as i64);
        }
        let side = self.output_size;
        ImageBatch {
            images: Tensor::from_data(
                TensorData::new(values, [count, CHANNELS, side, side]),
                device,
            ),
            targets: Tensor::from_data(TensorData::new(labels, [count]), device),
        }
    }
}

/// The `(size / factor)²` means of the non-overlapping `factor × factor` blocks of a row-major
/// `size × size` plane, row-major.
fn average_pool(plane: &[f32], size: usize, factor: usize) -> impl Iterator<Item = f32> + '_ {
    let side = size / factor;
    let area = (factor * factor) as f32;
    (0..side * side).map(move |out| {
        let (y0, x0) = ((out / side) * factor, (out % side) * factor);
        let sum: f32 = (y0..y0 + factor)
            .flat_map(|y| &plane[y * size + x0..y * size + x0 + factor])
            .sum();
        sum / area
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn ramp(label: usize) -> ImageItem {
        ImageItem {
            pixels: (0..IMAGE_BYTES).map(|i| (i % 251) as u8).collect(),
            label,
        }
    }

    #[test]
    fn centred_crop_without_flip_is_the_identity() {
        let item = ramp(0);
        assert_eq!(
            ImageBatcher::crop_and_flip(&item.pixels, PAD, PAD, false),
            item.pixels
        );
    }

    #[test]
    fn shifted_crop_moves_pixels_and_pads_with_zeros() {
        let item = ramp(0);
        // Window starting 2 rows above the image: the top 2 rows are padding.
        let out = ImageBatcher::crop_and_flip(&item.pixels, 2, PAD, false);
        assert!(out[..2 * IMAGE_SIZE].iter().all(|&p| p == 0));
        assert_eq!(
            out[2 * IMAGE_SIZE..3 * IMAGE_SIZE],
            item.pixels[..IMAGE_SIZE]
        );
        // A flip mirrors each row.
        let flipped = ImageBatcher::crop_and_flip(&item.pixels, PAD, PAD, true);
        assert_eq!(flipped[0], item.pixels[IMAGE_SIZE - 1]);
        assert_eq!(flipped[IMAGE_SIZE - 1], item.pixels[0]);
    }

    fn batch_values(batcher: &ImageBatcher, items: Vec<ImageItem>) -> (Vec<f32>, Vec<i64>) {
        let batch: ImageBatch<NdArray> = batcher.batch(items, &Default::default());
        (
            batch.images.into_data().to_vec().unwrap(),
            batch.targets.into_data().to_vec().unwrap(),
        )
    }

    #[test]
    fn augmentation_is_reproducible_and_keeps_labels() {
        let items: Vec<ImageItem> = (0..8).map(ramp).collect();
        let norm = Normalization::cifar10();
        let a = ImageBatcher::train(norm, 3);
        let b = ImageBatcher::train(norm, 3);
        let first = batch_values(&a, items.clone());
        assert_eq!(first, batch_values(&b, items.clone()));
        assert_eq!(first.1, (0..8).collect::<Vec<i64>>());
        // The next batch draws new crops; a batcher told to skip one batch reproduces it.
        let second = batch_values(&a, items.clone());
        assert_ne!(first.0, second.0);
        let resumed = ImageBatcher::train(norm, 3).skip_batches(1);
        assert_eq!(batch_values(&resumed, items.clone()), second);
        // Another seed, other crops.
        assert_ne!(
            batch_values(&ImageBatcher::train(norm, 4), items).0,
            first.0
        );
    }

    #[test]
    fn crops_flips_and_normalisation_are_torchvisions() {
        // tools/data_parity_reference.py: the paper's RandomCrop(32, padding=4),
        // RandomHorizontalFlip, ToTensor and Normalize, at fixed offsets and flips.
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/data_parity.json")).unwrap();
        let cifar = &reference["cifar"];
        let floats = |value: &serde_json::Value| -> Vec<f32> {
            let values = value.as_array().unwrap();
            values.iter().map(|x| x.as_f64().unwrap() as f32).collect()
        };
        let norm = Normalization::cifar10();
        assert_eq!(floats(&cifar["mean"]), norm.mean);
        assert_eq!(floats(&cifar["std"]), norm.std);
        let pixels: Vec<u8> = cifar["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u8)
            .collect();
        let cases = cifar["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 6);
        for case in cases {
            let (top, left) = (
                case["top"].as_u64().unwrap(),
                case["left"].as_u64().unwrap(),
            );
            let flip = case["flip"].as_bool().unwrap();
            let item = ImageItem {
                pixels: ImageBatcher::crop_and_flip(&pixels, top as usize, left as usize, flip),
                label: 0,
            };
            let (values, _) = batch_values(&ImageBatcher::eval(norm), vec![item]);
            let expected = floats(&case["values"]);
            let worst = values
                .iter()
                .zip(&expected)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-6, "crop ({top}, {left}), flip {flip}: {worst}");
        }
    }

    #[test]
    fn evaluation_only_normalises() {
        let item = ramp(1);
        let norm = Normalization::cifar10();
        let (values, _) = batch_values(&ImageBatcher::eval(norm), vec![item.clone()]);
        let expected = (item.pixels[5] as f32 / 255.0 - norm.mean[0]) / norm.std[0];
        assert!((values[5] - expected).abs() < 1e-6);
        let green = IMAGE_SIZE * IMAGE_SIZE + 7;
        let expected = (item.pixels[green] as f32 / 255.0 - norm.mean[1]) / norm.std[1];
        assert!((values[green] - expected).abs() < 1e-6);
    }

    #[test]
    fn smaller_output_sizes_average_blocks() {
        // A 4×4 plane pooled by 2: the four 2×2 block means, by hand.
        let plane = [
            1.0, 2.0, 5.0, 6.0, //
            3.0, 4.0, 7.0, 8.0, //
            0.0, 0.0, 1.0, 1.0, //
            0.0, 4.0, 1.0, 1.0,
        ];
        assert_eq!(
            average_pool(&plane, 4, 2).collect::<Vec<_>>(),
            vec![2.5, 6.5, 1.0, 1.0]
        );
        // A batch at 16×16: shape [1, 3, 16, 16], its first pixel the mean of the 2×2 block.
        let item = ramp(2);
        let norm = Normalization::cifar10();
        let batcher = ImageBatcher::eval(norm).with_output_size(16);
        let batch: ImageBatch<NdArray> = batcher.batch(vec![item.clone()], &Default::default());
        assert_eq!(batch.images.dims(), [1, 3, 16, 16]);
        let values: Vec<f32> = batch.images.into_data().to_vec().unwrap();
        let at = |i: usize| (item.pixels[i] as f32 / 255.0 - norm.mean[0]) / norm.std[0];
        let expected = (at(0) + at(1) + at(IMAGE_SIZE) + at(IMAGE_SIZE + 1)) / 4.0;
        assert!((values[0] - expected).abs() < 1e-6);
        // Sizes that do not divide 32 are refused in one line.
        let refused = ImageBatcher::check_output_size(12).unwrap_err();
        assert!(refused.contains("image size 12") && !refused.contains('\n'));
        assert!(ImageBatcher::check_output_size(0).is_err());
        assert!(ImageBatcher::check_output_size(8).is_ok());
    }
}
