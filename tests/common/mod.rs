//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use burn::backend::NdArray;
use burn::backend::wgpu::WgpuDevice;
use burn::module::Module;
use burn::record::DefaultRecorder;
use radam_train::harness::{HarnessError, RunReport};
use radam_train::models::resnet::{CifarResNetConfig, ResNet};

/// The wgpu device, or `None` (with a printed notice) when this machine has no Vulkan adapter.
///
/// With `RADAM_REQUIRE_WGPU=1` (set by `.ci/run`) a missing adapter fails the test instead, so
/// CI can never silently skip the GPU path.
pub fn wgpu_device_or_skip(test: &str) -> Option<WgpuDevice> {
    match radam_train::backend::wgpu_device() {
        Ok(device) => Some(device),
        Err(error) if std::env::var("RADAM_REQUIRE_WGPU").is_ok_and(|value| value == "1") => {
            panic!("RADAM_REQUIRE_WGPU=1, but {error}")
        }
        Err(error) => {
            eprintln!(
                "NOTICE: skipping the wgpu part of `{test}`: {error}. Then run the tests with \
                 RADAM_REQUIRE_WGPU=1 to make a missing adapter a failure."
            );
            None
        }
    }
}

/// ndarray's random generator is global: runs in parallel would interleave their seeded
/// initialisations, so the training tests of one test binary take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This test binary's turn to train (held until dropped).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bytes of every file under `dir`, by path relative to it.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = std::collections::BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// The message of a run that must have been refused.
pub fn refused(result: Result<RunReport, HarnessError>) -> String {
    match result {
        Err(error) => error.to_string(),
        Ok(_) => panic!("the run should have been refused"),
    }
}

/// The tiny CIFAR example's flags, writing into `dir`, with `extra` flags.
pub fn cifar_args(dir: &Path, extra: &[&str]) -> radam_train::tasks::cifar::CifarArgs {
    tiny_args("cifar_resnet", dir, extra)
}

/// The flags of a tiny run of `program` (`--size tiny --plain`) into `dir`, then `extra`.
pub fn tiny_args<A: clap::Parser>(program: &str, dir: &Path, extra: &[&str]) -> A {
    let mut args = vec![program, "--size", "tiny", "--plain", "--artifact-dir"];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    A::try_parse_from(args).expect("valid flags")
}

/// A fresh temporary directory, removed when the value is dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("radam-test-")
        .tempdir()
        .expect("a temporary directory")
}

/// Every float tensor (weights and batch-norm statistics, visiting order) of the ResNet-8 that
/// a tiny CIFAR run saved as `model.mpk` in `dir`.
pub fn saved_resnet8_weights(dir: &Path) -> Vec<f32> {
    let model: ResNet<NdArray<f32>> = CifarResNetConfig::new(8).init(&Default::default());
    let model = model
        .load_file(
            dir.join("model"),
            &DefaultRecorder::new(),
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("no model in {}: {e}", dir.display()));
    radam_train::distributed::flatten_module(&model, |_| true).values
}

/// Asserts that the tiny CIFAR runs in `expected` and `actual` saved the very same ResNet-8
/// weights (and batch-norm statistics), bit for bit.
pub fn assert_same_resnet8_weights(expected: &Path, actual: &Path) {
    let (expected, actual) = (
        saved_resnet8_weights(expected),
        saved_resnet8_weights(actual),
    );
    assert_eq!(expected.len(), actual.len());
    let differing = expected.iter().zip(&actual).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} weights differ",
        expected.len()
    );
}
