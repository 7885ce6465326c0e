//! Every experiment of `cargo run --bin experiments` at its tiny scale: it runs, writes its CSV
//! files, figures and summary, and a second invocation reuses the finished runs.

use std::path::Path;
use std::sync::Mutex;

use radam_train::experiments::{
    ExperimentArgs, Scale, lr_robustness, variance_analysis, warmup, warmup_search,
};

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
    // It trains nothing: --seeds is refused rather than silently ignored.
    let error = variance_analysis::run(&ExperimentArgs {
        seeds: Some(1_000_000_000),
        ..args(out.path())
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "--seeds: variance trains nothing (its simulation draws a fixed number of samples), so \
         it takes no seeds"
    );
}

#[test]
fn warmup_ablation_runs_five_optimizers_and_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    // Two seeds each: the table gives mean ± std.
    let args = |out: &Path| ExperimentArgs {
        seeds: Some(2),
        ..args(out)
    };
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
        for seed in 0..2 {
            assert_files(
                &dir.join(format!("{run}-seed{seed}")),
                &["outcome.json", "metrics.csv", "model.mpk"],
            );
        }
    }
    // Only the two Adam runs record gradient histograms.
    assert_files(&dir.join("adam-seed0"), &["grad_histogram.csv"]);
    assert!(!dir.join("radam-seed0/grad_histogram.csv").exists());
    let results = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(results.lines().count(), 1 + 5 * 2, "{results}");
    // The two seeds trained different models (their seeds reached the weights).
    let losses: Vec<&str> = results
        .lines()
        .filter(|line| line.starts_with("radam,"))
        .map(|line| line.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(losses.len(), 2);
    assert_ne!(losses[0], losses[1], "{results}");
    assert!(summary.contains(" ± "), "{summary}");
    assert!(summary.contains("RAdam's r_t (β2 0.999)"), "{summary}");
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

#[test]
fn warmup_search_decides_every_setting_it_trains_and_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let ledger = out.path().join("ledger.csv");
    let with_ledger = |out: &Path| ExperimentArgs {
        ledger: Some(ledger.clone()),
        ..args(out)
    };
    let summary = warmup_search::run(&with_ledger(out.path())).unwrap();
    let dir = out.path().join("warmup-search");
    assert_files(&dir, &["search.csv", "curves.png", "summary.txt"]);
    let csv = std::fs::read_to_string(dir.join("search.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    // Every setting tried has two or three seeds (decided by the first two that agree), and
    // the search stops at the first failing model size.
    let grid = warmup_search::grid(Scale::Tiny);
    let mut tried = 0;
    for setting in &grid {
        let seeds: Vec<&Vec<&str>> = rows
            .iter()
            .filter(|row| {
                row[0] == setting.layers.to_string() && row[1] == setting.d_model.to_string()
            })
            .collect();
        if seeds.is_empty() {
            continue;
        }
        tried += 1;
        assert!((2..=3).contains(&seeds.len()), "{csv}");
        let failed = seeds.iter().filter(|row| row[8] == "true").count();
        let verdict = seeds[0][9] == "true";
        assert_eq!(verdict, failed >= 2, "{csv}");
        for seed in 0..seeds.len() {
            for run in ["adam", "adam-warmup"] {
                let run_dir = dir.join(setting.name()).join(format!("{run}-seed{seed}"));
                assert!(
                    run_dir.join("outcome.json").exists() || run_dir.join("diverged.txt").exists(),
                    "{}",
                    run_dir.display()
                );
            }
        }
        if verdict {
            break;
        }
    }
    assert!(tried >= 1, "{csv}");
    assert!(
        summary.contains("cheapest failing setting") || summary.contains("no setting of the grid"),
        "{summary}"
    );
    // The warmup run's schedule took its warmup from --warmup-ratio.
    let run_json = std::fs::read_to_string(
        dir.join(grid[0].name())
            .join("adam-warmup-seed0")
            .join("run.json"),
    )
    .unwrap();
    assert!(run_json.contains("\"warmup_ratio\": 0.1"), "{run_json}");
    // --test-sentences 0: no test set translated, so no BLEU among the results.
    let outcome =
        std::fs::read_to_string(dir.join(grid[0].name()).join("adam-seed0/outcome.json")).unwrap();
    assert!(!outcome.contains("BLEU"), "{outcome}");

    // Run again: every run is reused, and the same table comes out.
    assert_eq!(warmup_search::run(&args(out.path())).unwrap(), summary);

    // On another machine (a fresh output directory) the ledger alone gives the same search:
    // every run is found there, none is trained, and the same table comes out.
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        warmup_search::run(&with_ledger(elsewhere.path())).unwrap(),
        summary
    );
    let search = elsewhere.path().join("warmup-search");
    assert_eq!(
        std::fs::read_to_string(search.join("search.csv")).unwrap(),
        csv
    );
    let trained: Vec<_> = std::fs::read_dir(&search)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .collect();
    assert!(trained.is_empty(), "runs were trained again: {trained:?}");
    // The ledger refuses another experiment.
    let error = variance_analysis::run(&with_ledger(elsewhere.path())).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("only warmup-search keeps a ledger"),
        "{error}"
    );
}
