//! The three training examples, end to end on tiny configurations on ndarray: artifacts,
//! metrics, BLEU, exact resume, and clear errors for bad flags and missing data.

mod common;

use std::path::Path;

use burn::backend::NdArray;
use burn::record::DefaultRecorder;
use clap::Parser;
use radam_train::harness::{HarnessError, RunReport};
use radam_train::history::Split;
use radam_train::tasks::{cifar, lm, nmt};

/// ndarray's random generator is global: runs in parallel would interleave their seeded
/// initialisations, so the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn cifar_args(dir: &Path, extra: &[&str]) -> cifar::CifarArgs {
    let mut args = vec![
        "cifar_resnet",
        "--size",
        "tiny",
        "--plain",
        "--artifact-dir",
    ];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    cifar::CifarArgs::try_parse_from(args).expect("valid flags")
}

fn assert_artifacts(report: &RunReport, epochs: usize, metric: &str) {
    let dir = &report.artifact_dir;
    for file in [
        format!("checkpoint/model-{epochs}.mpk"),
        format!("checkpoint/optim-{epochs}.mpk"),
        format!("checkpoint/scheduler-{epochs}.mpk"),
        "metrics.csv".to_string(),
        "curves.png".to_string(),
        "model.mpk".to_string(),
        "run.json".to_string(),
    ] {
        assert!(
            dir.join(&file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for column in [format!("valid/{metric}"), "train/Loss".to_string()] {
        assert!(
            header.split(',').any(|c| c == column),
            "{column} not in {header}"
        );
    }
    assert_eq!(csv.lines().count(), 1 + epochs, "{csv}");
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert_eq!(report.history.epochs.len(), epochs);
    let last = report.history.last().unwrap();
    let value = last.get(Split::Valid, metric).expect("validation metric");
    assert!(value.is_finite(), "{metric} = {value}");
}

#[test]
fn cifar_trains_and_writes_its_artifacts() {
    let _serial = serial();
    let dir = common::temp_dir();
    let report = cifar::run(cifar_args(dir.path(), &[])).unwrap();
    assert_artifacts(&report, 1, "Accuracy");
    let accuracy = report.history.epochs[0]
        .get(Split::Valid, "Accuracy")
        .unwrap();
    assert!((0.0..=100.0).contains(&accuracy));
    // RAdam's r_t is recorded: 8 steps in, it is rectifying (ρ_8 > 5).
    let r_t = report.history.epochs[0]
        .get(Split::Train, "RAdam r_t")
        .unwrap();
    let expected = radam_train::optim::rectification(f64::from(0.999f32), 8, 5.0).unwrap();
    assert!((r_t - expected).abs() < 1e-12, "{r_t} != {expected}");
}

#[test]
fn baselines_train_without_the_rectification_metric() {
    let _serial = serial();
    let dir = common::temp_dir();
    let report = cifar::run(cifar_args(
        dir.path(),
        &["--optimizer", "adam", "--warmup", "4"],
    ))
    .unwrap();
    let first = &report.history.epochs[0];
    assert!(first.get(Split::Train, "RAdam r_t").is_none());
    // 8 steps: 4 of warmup, then the step schedule's ×0.1 after steps 4 and 6.
    let lr = first.get(Split::Train, "Learning Rate").unwrap();
    let expected = (0.25 + 0.5 + 0.75 + 1.0 + 0.1 + 0.1 + 0.01 + 0.01) * 3e-3 / 8.0;
    assert!((lr - expected).abs() < 1e-9, "{lr} != {expected}");
}

#[test]
fn resuming_after_an_interruption_gives_the_uninterrupted_weights() {
    let _serial = serial();
    let straight = common::temp_dir();
    cifar::run(cifar_args(straight.path(), &["--epochs", "3"])).unwrap();

    // The same run, interrupted after epoch 1 and after epoch 2, resumed each time.
    let resumed = common::temp_dir();
    let interrupted = cifar::run(cifar_args(
        resumed.path(),
        &["--epochs", "3", "--stop-after", "1"],
    ))
    .unwrap();
    assert_eq!(interrupted.history.epochs.len(), 1);
    cifar::run(cifar_args(
        resumed.path(),
        &["--epochs", "3", "--stop-after", "2", "--resume"],
    ))
    .unwrap();
    let report = cifar::run(cifar_args(resumed.path(), &["--epochs", "3", "--resume"])).unwrap();

    let (expected, actual) = (
        common::saved_resnet8_weights(straight.path()),
        common::saved_resnet8_weights(resumed.path()),
    );
    assert_eq!(expected.len(), actual.len());
    let differing = expected.iter().zip(&actual).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} weights differ",
        expected.len()
    );
    // The history spans all three epochs, one CSV row each.
    assert_eq!(report.history.epochs.len(), 3);
    assert_artifacts(&report, 3, "Accuracy");
}

#[test]
fn resume_refuses_what_it_cannot_continue() {
    let _serial = serial();
    let dir = common::temp_dir();
    let error = cifar::run(cifar_args(dir.path(), &["--resume"]))
        .err()
        .unwrap();
    assert!(matches!(error, HarnessError::Resume(_)));
    assert!(
        error.to_string().starts_with("nothing to resume in"),
        "{error}"
    );

    cifar::run(cifar_args(dir.path(), &[])).unwrap();
    let error = cifar::run(cifar_args(dir.path(), &["--resume"]))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("already finished 1 of 1 epochs"),
        "{error}"
    );
    let error = cifar::run(cifar_args(
        dir.path(),
        &["--resume", "--epochs", "2", "--optimizer", "sgd"],
    ))
    .err()
    .unwrap();
    assert!(error.to_string().contains("different settings"), "{error}");
}

#[test]
fn bad_flags_and_missing_data_are_clear_errors() {
    let _serial = serial();
    let error = cifar::CifarArgs::try_parse_from(["cifar_resnet", "--backend", "cuda"])
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("invalid value 'cuda' for '--backend"),
        "{error}"
    );
    assert!(
        error.contains("[possible values: ndarray, wgpu]"),
        "{error}"
    );

    let dir = common::temp_dir();
    let missing = dir.path().join("nowhere");
    let missing = missing.to_str().unwrap();
    let error = cifar::run(cifar_args(dir.path(), &["--data-dir", missing]))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(error, format!("--data-dir {missing}: no such directory"));

    // A directory without CIFAR files names what it expected.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = cifar::run(cifar_args(
        dir.path(),
        &["--data-dir", empty.to_str().unwrap()],
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("missing data files"), "{error}");

    let error = cifar::run(cifar_args(dir.path(), &["--depth", "21"]))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("depth 6n + 2"), "{error}");
    let error = cifar::run(cifar_args(dir.path(), &["--lr=-1"]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("learning rate must be a positive number"),
        "{error}"
    );
}

#[test]
fn language_model_trains_on_the_builtin_corpus() {
    let _serial = serial();
    let dir = common::temp_dir();
    let args = lm::LmArgs::try_parse_from([
        "lm_lstm",
        "--size",
        "tiny",
        "--plain",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let report = lm::run(args).unwrap();
    assert_artifacts(&report, 1, "Perplexity");
    let perplexity = report.history.epochs[0]
        .get(Split::Valid, "Perplexity")
        .unwrap();
    // Uniform guessing over the built-in 2000 words scores 2000; the optimum is reported.
    let best = report.results[0].1;
    assert!(
        best > 1.0 && best < perplexity && perplexity < 2000.0,
        "{best} {perplexity}"
    );
}

#[test]
fn translation_trains_and_reports_test_bleu() {
    let _serial = serial();
    let dir = common::temp_dir();
    let args = nmt::NmtArgs::try_parse_from([
        "nmt_transformer",
        "--size",
        "tiny",
        "--plain",
        "--beam",
        "2",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let report = nmt::run(args).unwrap();
    assert_artifacts(&report, 1, "Accuracy");
    let (name, bleu) = &report.results[0];
    assert_eq!(name, "test BLEU");
    assert!((0.0..=100.0).contains(bleu), "{bleu}");
}

#[test]
fn two_local_devices_train_the_example_through_burns_ddp() {
    let _serial = serial();
    let dir = common::temp_dir();
    let report = cifar::run(cifar_args(dir.path(), &["--devices", "2", "--epochs", "2"])).unwrap();
    assert_artifacts(&report, 2, "Accuracy");
    let settings = std::fs::read_to_string(dir.path().join("run.json")).unwrap();
    assert!(settings.contains("\"devices\": 2"), "{settings}");
    // The schedule counts optimizer steps, not DDP's one call per device: 128 images over 2
    // replicas of batch 16 are 4 steps per epoch, 8 in all (the checkpoint records steps).
    let steps: usize = burn::record::Recorder::<NdArray>::load(
        &DefaultRecorder::new(),
        dir.path().join("checkpoint/scheduler-2"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(steps, 8);
}

#[test]
fn data_parallel_flags_are_checked() {
    let _serial = serial();
    let dir = common::temp_dir();
    let error = |extra: &[&str]| -> String {
        match cifar::run(cifar_args(dir.path(), extra)) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("{extra:?} should be refused"),
        }
    };
    assert!(error(&["--devices", "0"]).contains("at least 1"));
    // Not started by mpirun (or built without MPI): told how to start it.
    let nodes = error(&["--nodes", "2"]);
    assert!(nodes.contains("MPI"), "{nodes}");
    assert!(error(&["--nodes", "2", "--devices", "2"]).contains("one process per device"));
    assert!(error(&["--devices", "2", "--gradient-histogram", "5"]).contains("--devices 1"));
}

#[test]
fn language_model_and_translation_train_on_two_local_devices() {
    let _serial = serial();
    // Rows of the LM's step batch and the token-budget batches of NMT are dealt out to the
    // replicas; both must give every replica the same number of steps (DDP hangs otherwise).
    let dir = common::temp_dir();
    let args = lm::LmArgs::try_parse_from([
        "lm_lstm",
        "--size",
        "tiny",
        "--plain",
        "--devices",
        "2",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let report = lm::run(args).unwrap();
    assert_artifacts(&report, 1, "Perplexity");
    let dir = common::temp_dir();
    let args = nmt::NmtArgs::try_parse_from([
        "nmt_transformer",
        "--size",
        "tiny",
        "--plain",
        "--beam",
        "1",
        "--test-sentences",
        "5",
        "--devices",
        "2",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let report = nmt::run(args).unwrap();
    assert_artifacts(&report, report.history.epochs.len(), "Loss");
}
