//! The quickstart's training function, run for real: RAdam through `LearnerBuilder` must learn
//! the three spirals, and leave its checkpoints behind.

use radam_train::quickstart;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use radam_train::backend::NdArrayBackend;
use radam_train::datasets::spirals::{PointBatcher, SpiralsDataset};

/// The accuracy of `model` on a fresh validation draw the model never saw (the example
/// validates on seed 1).
fn accuracy(model: &radam_train::models::mlp::MlpClassifier<burn::backend::NdArray>) -> f64 {
    let test = SpiralsDataset::new(3, 300, 0.05, 7);
    let items: Vec<_> = (0..test.len()).map(|i| test.get(i).unwrap()).collect();
    let batch = PointBatcher.batch(items, &Default::default());
    let predicted = model.forward(batch.inputs).argmax(1).flatten::<1>(0, 1);
    let correct: i64 = predicted.equal(batch.targets).int().sum().into_scalar();
    correct as f64 / test.len() as f64
}

/// ndarray's random generator is global: the two runs take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn quickstart_learns_the_spirals_and_checkpoints() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("quickstart");
    let model = quickstart::train::<NdArrayBackend>(
        vec![Default::default()],
        artifacts.to_str().unwrap(),
        8,
    );
    let accuracy = accuracy(&model);
    // Chance is 1/3 and a linear classifier stays near it; RAdam's MLP gets nearly all.
    assert!(
        accuracy > 0.9,
        "quickstart reached only {accuracy:.3} accuracy"
    );

    let checkpoints = artifacts.join("checkpoint");
    for file in ["model-8.mpk", "optim-8.mpk", "scheduler-8.mpk"] {
        assert!(
            checkpoints.join(file).is_file(),
            "missing checkpoint {file}"
        );
    }
}

#[test]
fn quickstart_learns_on_two_devices() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("quickstart");
    let model = quickstart::train::<NdArrayBackend>(
        vec![Default::default(); 2],
        artifacts.to_str().unwrap(),
        8,
    );
    let accuracy = accuracy(&model);
    assert!(
        accuracy > 0.9,
        "quickstart on two devices reached only {accuracy:.3} accuracy"
    );
}

#[test]
fn quickstart_finishes_on_sixteen_devices() {
    // 3000 points over 16 replicas do not divide evenly: without an even deal one replica took
    // one step more, and the run hung after its last epoch.
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("quickstart");
    let path = artifacts.to_str().unwrap().to_string();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        quickstart::train::<NdArrayBackend>(vec![Default::default(); 16], &path, 2);
        done.send(()).ok();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("two epochs on 16 devices did not finish within 5 minutes");
    assert!(artifacts.join("checkpoint/model-2.mpk").is_file());
}

/// The model alone, without the harness: RAdam overfits one batch of spirals.
#[test]
fn the_mlp_overfits_one_batch_with_radam() {
    use burn::backend::{Autodiff, NdArray};
    use burn::optim::{GradientsParams, Optimizer};
    use radam_train::models::batch::PointBatch;
    use radam_train::models::mlp::{MlpClassifier, MlpClassifierConfig};
    use radam_train::optim::RAdamConfig;
    type B = Autodiff<NdArray>;

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let device = Default::default();
    let data = SpiralsDataset::new(3, 32, 0.02, 0);
    let items = (0..data.len()).map(|i| data.get(i).unwrap()).collect();
    let batch: PointBatch<B> = PointBatcher.batch(items, &device);
    let mut model: MlpClassifier<B> = MlpClassifierConfig::new(2, 3).init(&device);
    let mut optimizer = RAdamConfig::new().init();
    let first = model
        .forward_classification(batch.clone())
        .loss
        .into_scalar();
    for _ in 0..200 {
        let loss = model.forward_classification(batch.clone()).loss;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    let last = model.forward_classification(batch).loss.into_scalar();
    assert!(last < 0.3 * first, "loss went from {first} to {last}");
}
