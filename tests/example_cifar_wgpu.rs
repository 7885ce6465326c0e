//! The CIFAR example end to end on wgpu (lavapipe in CI): one tiny epoch, with its artifacts.
//! Small batches: the first steps autotune the convolution kernels, which is slow on lavapipe.

mod common;

use clap::Parser;
use radam_train::harness::history::Phase;
use radam_train::tasks::cifar;

#[test]
fn cifar_trains_on_wgpu() {
    if common::wgpu_device_or_skip("cifar_trains_on_wgpu").is_none() {
        return;
    }
    let dir = common::temp_dir();
    let args = cifar::CifarArgs::try_parse_from([
        "cifar_resnet",
        "--backend",
        "wgpu",
        "--size",
        "tiny",
        "--images",
        "32",
        "--batch-size",
        "8",
        "--plain",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    let report = cifar::run(args).unwrap();
    let epoch = &report.history.epochs[0];
    let loss = epoch.get(Phase::Valid, "Loss").unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    for file in [
        "checkpoint/model-1.mpk",
        "metrics.csv",
        "curves.png",
        "model.mpk",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
}
