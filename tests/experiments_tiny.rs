//! Every experiment of `cargo run --bin experiments` at its tiny scale: it runs, writes its CSV
//! files, figures and summary, and a second invocation reuses the finished runs.

use std::path::Path;
use std::sync::Mutex;

use radam_train::experiments::{ExperimentArgs, Scale, lr_robustness, variance_analysis, warmup};

/// The training experiments use both cores; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn args(out: &Path) -> ExperimentArgs {
    ExperimentArgs::new(Scale::Tiny, out)
}

fn assert_files(dir: &Path, files: &[&str]) {
    for file in files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!bytes.is_empty(), "{} is empty", path.display());
        if file.ends_with(".png") {
            assert_eq!(&bytes[1..4], b"PNG", "{file}");
        }
    }
}

#[test]
fn variance_writes_theory_and_simulation() {
    let out = tempfile::tempdir().unwrap();
    let summary = variance_analysis::run(&args(out.path())).unwrap();
    let dir = out.path().join("variance");
    assert_files(
        &dir,
        &[
            "theory.csv",
            "theory.png",
            "simulation.csv",
            "simulation.png",
            "summary.txt",
        ],
    );
    let theory = std::fs::read_to_string(dir.join("theory.csv")).unwrap();
    assert_eq!(theory.lines().count(), 1 + 496, "ρ = 5..=500");
    assert!(theory.starts_with("rho,exact_eq2,first_order_eq5,relative_error\n5,"));
    let simulation = std::fs::read_to_string(dir.join("simulation.csv")).unwrap();
    let (_, steps) = variance_analysis::simulation_size(Scale::Tiny);
    assert_eq!(simulation.lines().count(), 1 + 4 * steps);
    assert!(summary.contains("first order (Eq. 5)"), "{summary}");
}

#[test]
fn warmup_ablation_runs_five_optimizers_and_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let summary = warmup::run(&args(out.path())).unwrap();
    let dir = out.path().join("warmup");
    assert_files(
        &dir,
        &[
            "results.csv",
            "curves.png",
            "gradient_histogram.png",
            "summary.txt",
        ],
    );
    for run in ["adam", "adam-warmup", "radam", "adam-2k", "adam-eps"] {
        assert_files(
            &dir.join(run),
            &["outcome.json", "metrics.csv", "model.mpk"],
        );
    }
    // Only the two Adam runs record gradient histograms.
    assert_files(&dir.join("adam"), &["grad_histogram.csv"]);
    assert!(!dir.join("radam/grad_histogram.csv").exists());
    let results = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(results.lines().count(), 6, "{results}");
    for label in [
        "Adam, no warmup",
        "Adam, warmup 5",
        "RAdam",
        "Adam-2k (k = 5)",
        "Adam-eps",
    ] {
        assert!(summary.contains(label), "{label} missing from\n{summary}");
    }

    // Run again: every run is reused, and the same table comes out.
    let again = warmup::run(&args(out.path())).unwrap();
    assert_eq!(again, summary);
}

#[test]
fn lr_robustness_sweeps_twelve_runs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let summary = lr_robustness::run(&args(out.path())).unwrap();
    let dir = out.path().join("lr-robustness");
    assert_files(&dir, &["results.csv", "curves.png", "summary.txt"]);
    let results = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(results.lines().count(), 13, "{results}");
    for optimizer in ["RAdam", "Adam", "SGD"] {
        assert!(summary.contains(optimizer), "{summary}");
    }
    assert!(summary.contains("spread"), "{summary}");
}
