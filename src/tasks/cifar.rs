//! ResNet on CIFAR-10/100 (`--data-dir`) or on the built-in procedural image set.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{AccuracyMetric, LossMetric};
use radam_datasets::batch::ImageBatch;
use radam_datasets::cifar::{Cifar100Labels, CifarDataset, Split};
use radam_datasets::image::{IMAGE_SIZE, ImageBatcher, ImageItem, Normalization};
use radam_datasets::shapes::ShapesDataset;
use radam_models::resnet::{CIFAR_BASE_WIDTH, CifarResNetConfig};

use super::{OnBackend, on_backend};
use crate::harness::memory_budget::{available_memory, check_fits, training_bytes};
use crate::harness::{
    DataFingerprint, HarnessError, RunReport, Session, SizePreset, TaskDefaults, TaskOptions,
    TrainArgs, TrainingData,
};
use crate::schedule::ScheduleKind;

/// Command-line arguments of the CIFAR example.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "cifar_resnet",
    about = "Train a CIFAR ResNet with RAdam (or a baseline)"
)]
pub struct CifarArgs {
    /// Flags shared by every example.
    #[command(flatten)]
    pub train: TrainArgs,
    /// ResNet depth, 6n + 2 (20, 32, 44, 56, 110) [default: 8 for --size tiny, else 20].
    #[arg(long)]
    pub depth: Option<usize>,
    /// Images of the built-in data set used for training (a fifth of that for validation)
    /// [default: per size].
    #[arg(long)]
    pub images: Option<usize>,
    /// Side of the images the network sees: 32, or a divisor of it (16, 8) to which each image
    /// is average-pooled after augmentation — a 4× (16) or 16× (8) cheaper step [default: 16
    /// for `--size small`, else 32].
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Channels of the ResNet's first stage (He et al.'s 16; the later stages double it).
    #[arg(long, default_value_t = CIFAR_BASE_WIDTH)]
    pub width: usize,
}

/// The defaults of each size: the paper's ResNet-20 schedule for `paper` (SGD 0.1, Adam/RAdam
/// 0.003, weight decay 5e-4, step decay).
pub fn defaults(size: SizePreset) -> TaskDefaults {
    let (epochs, batch_size) = match size {
        SizePreset::Tiny => (1, 16),
        // 5120 images at 64 a step for 23 epochs: 1840 steps, RAdam's r_t 0.81 at the last.
        SizePreset::Small => (23, 64),
        SizePreset::Paper => (200, 128),
    };
    TaskDefaults {
        name: "cifar",
        epochs,
        batch_size,
        adaptive_lr: 3e-3,
        sgd_lr: 0.1,
        weight_decay: 5e-4,
        schedule: ScheduleKind::Step,
        beta_2: 0.999,
    }
}

/// Trains the ResNet as `args` say and reports the metrics.
///
/// # Errors
/// Bad flags, missing or malformed data, an unusable artifact directory.
pub fn run(args: CifarArgs) -> Result<RunReport, HarnessError> {
    let depth = args.depth.unwrap_or(match args.train.size {
        SizePreset::Tiny => 8,
        _ => 20,
    });
    if depth < 8 || !(depth - 2).is_multiple_of(6) {
        return Err(HarnessError::Invalid(format!(
            "--depth {depth}: a CIFAR ResNet has depth 6n + 2 (8, 20, 32, 44, 56, 110)"
        )));
    }
    let images = args.images.unwrap_or(match args.train.size {
        SizePreset::Tiny => 128,
        SizePreset::Small => 5120,
        SizePreset::Paper => 50_000,
    });
    if images == 0 {
        return Err(HarnessError::Invalid(
            "--images must be at least 1".to_string(),
        ));
    }
    // Small runs see 16×16 images: enough steps for RAdam's regime in minutes on two cores.
    let image_size = args.image_size.unwrap_or(match args.train.size {
        SizePreset::Small => IMAGE_SIZE / 2,
        SizePreset::Tiny | SizePreset::Paper => IMAGE_SIZE,
    });
    ImageBatcher::check_output_size(image_size)
        .map_err(|reason| HarnessError::Invalid(format!("--image-size: {reason}")))?;
    if args.width == 0 {
        return Err(HarnessError::Invalid(
            "--width must be at least 1".to_string(),
        ));
    }
    let mut options = TaskOptions::from([("depth".to_string(), depth.to_string())]);
    if args.train.data_dir.is_none() {
        options.insert("images".to_string(), images.to_string());
    }
    // Recorded only when changed, so runs from before these flags still resume.
    if image_size != IMAGE_SIZE {
        options.insert("image-size".to_string(), image_size.to_string());
    }
    if args.width != CIFAR_BASE_WIDTH {
        options.insert("width".to_string(), args.width.to_string());
    }
    let session = Session::open(&args.train, &defaults(args.train.size), options)?;
    let available = available_memory();
    if args.train.data_dir.is_none() {
        // The loader shuffles an index of every training image, 8 bytes each.
        check_fits(
            &format!("--images {images}"),
            (images as u128).saturating_mul(8),
            available,
        )?;
    }
    let batch_size = session.settings().batch_size;
    check_fits(
        &format!(
            "a ResNet-{depth} of width {} on {image_size}×{image_size} images at batch size \
             {batch_size} (--depth, --width, --image-size, --batch-size)",
            args.width
        ),
        resnet_bytes(depth, args.width, image_size, batch_size),
        available,
    )?;
    on_backend(
        session.placement(),
        CifarTask {
            args,
            session,
            depth,
            images,
            image_size,
        },
    )
}

/// Bytes to train a CIFAR ResNet of `depth` and `width` on `image_size`² images at
/// `batch_size`: its 3×3 convolutions (2n a stage, at widths w, 2w, 4w) with their optimizer
/// state, and about four tensors per layer kept for the backward pass (n = (depth − 2) / 6).
fn resnet_bytes(depth: usize, width: usize, image_size: usize, batch_size: usize) -> u128 {
    let n = ((depth - 2) / 6) as u128;
    let w = width as u128;
    let pixels = (image_size * image_size) as u128;
    let parameters = (9 * 2 * 21 * n).saturating_mul(w.saturating_mul(w));
    // Stage by stage: 2n + 1 layers of w channels at full size, 2n of 2w at a quarter, 2n of
    // 4w at a sixteenth.
    let per_image = w
        .saturating_mul(pixels)
        .saturating_mul(2 * n + 1 + n + n / 2);
    let activations = per_image
        .saturating_mul(batch_size as u128)
        .saturating_mul(4 * 4);
    training_bytes(parameters).saturating_add(activations)
}

struct CifarTask {
    args: CifarArgs,
    session: Session,
    depth: usize,
    images: usize,
    image_size: usize,
}

/// The data of a run: train and validation sets, their normalisation and class count, and
/// what they were read from.
struct ImageData {
    train: Arc<dyn Dataset<ImageItem>>,
    valid: Arc<dyn Dataset<ImageItem>>,
    normalization: Normalization,
    classes: usize,
    fingerprint: DataFingerprint,
}

impl CifarTask {
    fn data(&self) -> Result<ImageData, HarnessError> {
        let Some(dir) = &self.session.settings().data_dir else {
            let images = self.images;
            let seed = self.args.train.seed;
            let train = ShapesDataset::new(images, seed.wrapping_mul(2) + 1);
            let valid = ShapesDataset::new((images / 5).max(1), seed.wrapping_mul(2) + 2);
            let normalization = Normalization::measure(&train, 1000);
            self.session.say(format!(
                "built-in shapes: {} training and {} validation images",
                train.len(),
                valid.len()
            ));
            return Ok(ImageData {
                train: Arc::new(train),
                valid: Arc::new(valid),
                normalization,
                classes: 10,
                fingerprint: DataFingerprint::default(),
            });
        };
        let cifar10 =
            dir.join("data_batch_1.bin").exists() || dir.join("cifar-10-batches-bin").is_dir();
        let (train, valid, normalization) = if cifar10 {
            (
                CifarDataset::cifar10(dir, Split::Train)?,
                CifarDataset::cifar10(dir, Split::Test)?,
                Normalization::cifar10(),
            )
        } else {
            (
                CifarDataset::cifar100(dir, Split::Train, Cifar100Labels::Fine)?,
                CifarDataset::cifar100(dir, Split::Test, Cifar100Labels::Fine)?,
                Normalization::cifar100(),
            )
        };
        let classes = train.classes();
        self.session.say(format!(
            "{}: {} training and {} test images, {classes} classes",
            dir.display(),
            train.len(),
            valid.len()
        ));
        let fingerprint = DataFingerprint::of_files(train.files().iter().chain(valid.files()))?
            .with_derived("classes", classes);
        Ok(ImageData {
            train: Arc::new(train),
            valid: Arc::new(valid),
            normalization,
            classes,
            fingerprint,
        })
    }
}

impl OnBackend for CifarTask {
    type Output = RunReport;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<RunReport, HarnessError> {
        let settings = self.session.settings().clone();
        let device = devices[0].clone();
        let ImageData {
            train,
            valid,
            normalization,
            classes,
            fingerprint,
        } = self.data()?;
        let train = self.session.shard(train)?;
        let steps_per_epoch = (train.len() / devices.len()).div_ceil(settings.batch_size);
        let skipped = (self.session.start_epoch() * steps_per_epoch) as u64;
        let train_loader: Arc<dyn DataLoader<B, ImageBatch<B>>> = DataLoaderBuilder::new(
            ImageBatcher::train(normalization, settings.seed)
                .skip_batches(skipped)
                .with_output_size(self.image_size),
        )
        .batch_size(settings.batch_size)
        .shuffle(settings.seed)
        .build(train);
        let valid_loader = DataLoaderBuilder::new(
            ImageBatcher::eval(normalization).with_output_size(self.image_size),
        )
        .batch_size(256)
        .build(valid);

        B::seed(&device, settings.seed);
        let model = CifarResNetConfig::new(self.depth)
            .with_num_classes(classes)
            .with_width(self.args.width)
            .init::<B>(&device);
        self.session.say(format!(
            "ResNet-{} (width {}, {} parameters) on {}×{} images, {} {}, {} epochs of \
             {steps_per_epoch} steps",
            self.depth,
            self.args.width,
            burn::module::Module::num_params(&model),
            self.image_size,
            self.image_size,
            settings.optimizer.label(),
            settings.lr,
            settings.epochs
        ));
        let trained = self.session.fit(
            devices,
            model,
            TrainingData {
                train: train_loader,
                valid: valid_loader,
                steps_per_epoch,
                fingerprint,
            },
            |builder| {
                builder
                    .metric_train_numeric(LossMetric::new())
                    .metric_valid_numeric(LossMetric::new())
                    .metric_train_numeric(AccuracyMetric::new())
                    .metric_valid_numeric(AccuracyMetric::new())
            },
        )?;
        let report = self.session.complete(&trained, Vec::new())?;
        report.print();
        Ok(report)
    }
}
