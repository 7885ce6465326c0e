//! The three training examples, end to end on tiny configurations on ndarray: artifacts,
//! metrics, BLEU, exact resume, and clear errors for bad flags and missing data.

mod common;

use burn::backend::NdArray;
use burn::record::DefaultRecorder;
use clap::Parser;
use radam_train::datasets::synthetic_translation::SyntheticTranslation;
use radam_train::harness::history::Phase;
use radam_train::harness::{HarnessError, RunReport};
use radam_train::run_dir::TRANSLATIONS;
use radam_train::tasks::nmt::bleu::{corpus_bleu, tokenize};
use radam_train::tasks::{cifar, lm, nmt};

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
    let value = last.get(Phase::Valid, metric).expect("validation metric");
    assert!(value.is_finite(), "{metric} = {value}");
}

#[test]
fn cifar_trains_and_writes_its_artifacts() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let report = cifar::run(common::cifar_args(dir.path(), &[])).unwrap();
    assert_artifacts(&report, 1, "Accuracy");
    let accuracy = report.history.epochs[0]
        .get(Phase::Valid, "Accuracy")
        .unwrap();
    // A share of the 25 validation images (128 / 5), in percent: k · 4 %.
    let correct = accuracy / 4.0;
    assert!(
        (correct - correct.round()).abs() < 1e-9 && (0.0..=25.0).contains(&correct),
        "validation accuracy {accuracy} % is not a share of 25 images"
    );
    // RAdam's r_t is recorded: 8 steps in, it is rectifying (ρ_8 > 5).
    let r_t = report.history.epochs[0]
        .get(Phase::Train, "RAdam r_t")
        .unwrap();
    let expected = radam_train::optim::rectification(0.999, 8, 5.0).unwrap();
    assert!((r_t - expected).abs() < 1e-12, "{r_t} != {expected}");
}

#[test]
fn baselines_train_without_the_rectification_metric() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let report = cifar::run(common::cifar_args(
        dir.path(),
        &["--optimizer", "adam", "--warmup", "4"],
    ))
    .unwrap();
    let first = &report.history.epochs[0];
    assert!(first.get(Phase::Train, "RAdam r_t").is_none());
    // 8 steps: 4 of warmup, then the step schedule's ×0.1 after steps 4 and 6.
    let lr = first.get(Phase::Train, "Learning Rate").unwrap();
    let expected = (0.25 + 0.5 + 0.75 + 1.0 + 0.1 + 0.1 + 0.01 + 0.01) * 3e-3 / 8.0;
    assert!((lr - expected).abs() < 1e-9, "{lr} != {expected}");
}

#[test]
fn resuming_after_an_interruption_gives_the_uninterrupted_weights() {
    let _serial = common::serial();
    let straight = common::temp_dir();
    cifar::run(common::cifar_args(straight.path(), &["--epochs", "3"])).unwrap();

    // The same run, interrupted after epoch 1 and after epoch 2, resumed each time.
    let resumed = common::temp_dir();
    let interrupted = cifar::run(common::cifar_args(
        resumed.path(),
        &["--epochs", "3", "--stop-after", "1"],
    ))
    .unwrap();
    assert_eq!(interrupted.history.epochs.len(), 1);
    cifar::run(common::cifar_args(
        resumed.path(),
        &["--epochs", "3", "--stop-after", "2", "--resume"],
    ))
    .unwrap();
    let report = cifar::run(common::cifar_args(
        resumed.path(),
        &["--epochs", "3", "--resume"],
    ))
    .unwrap();

    common::assert_same_resnet8_weights(straight.path(), resumed.path());
    // The history spans all three epochs, one CSV row each.
    assert_eq!(report.history.epochs.len(), 3);
    assert_artifacts(&report, 3, "Accuracy");
}

#[test]
fn resume_refuses_what_it_cannot_continue() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let error = cifar::run(common::cifar_args(dir.path(), &["--resume"]))
        .err()
        .unwrap();
    assert!(matches!(error, HarnessError::Resume(_)));
    assert!(
        error.to_string().starts_with("nothing to resume in"),
        "{error}"
    );

    cifar::run(common::cifar_args(dir.path(), &[])).unwrap();
    let error = cifar::run(common::cifar_args(dir.path(), &["--resume"]))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("already finished 1 of 1 epochs"),
        "{error}"
    );
    let error = cifar::run(common::cifar_args(
        dir.path(),
        &["--resume", "--epochs", "2", "--optimizer", "sgd"],
    ))
    .err()
    .unwrap();
    assert!(error.to_string().contains("different settings"), "{error}");
}

#[test]
fn bad_flags_and_missing_data_are_clear_errors() {
    let _serial = common::serial();
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
    let error = cifar::run(common::cifar_args(dir.path(), &["--data-dir", missing]))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(error, format!("--data-dir {missing}: no such directory"));

    // A directory without CIFAR files names what it expected.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = cifar::run(common::cifar_args(
        dir.path(),
        &["--data-dir", empty.to_str().unwrap()],
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("missing data files"), "{error}");

    let error = cifar::run(common::cifar_args(dir.path(), &["--depth", "21"]))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("depth 6n + 2"), "{error}");
    let error = cifar::run(common::cifar_args(dir.path(), &["--lr=-1"]))
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
    let _serial = common::serial();
    let dir = common::temp_dir();
    let args: lm::LmArgs = common::tiny_args("lm_lstm", dir.path(), &[]);
    let report = lm::run(args).unwrap();
    assert_artifacts(&report, 1, "Perplexity");
    let perplexity = report.history.epochs[0]
        .get(Phase::Valid, "Perplexity")
        .unwrap();
    // Uniform guessing over the built-in 2000 words scores 2000; the optimum is reported after
    // the test perplexity.
    let result = |name: &str| {
        let found = report.results.iter().find(|(label, _)| label == name);
        found
            .unwrap_or_else(|| panic!("no {name} in {:?}", report.results))
            .1
    };
    let best = result("best possible perplexity (built-in corpus)");
    let test = result("test perplexity");
    assert!(
        best > 1.0 && best < perplexity && perplexity < 2000.0 && best < test && test < 2000.0,
        "best {best}, valid {perplexity}, test {test}"
    );
}

#[test]
fn translation_trains_and_reports_test_bleu() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let args: nmt::NmtArgs = common::tiny_args("nmt_transformer", dir.path(), &["--beam", "2"]);
    let report = nmt::run(args).unwrap();
    assert_artifacts(&report, 1, "Accuracy");
    let (name, bleu) = &report.results[0];
    assert_eq!(name, "test BLEU");
    // The reported score is corpus BLEU of the written translations against the first 16
    // references of the built-in pair's test set (seed 0, 300 training pairs → 16 held out),
    // regenerated here: a translation lost, reordered or scored against the wrong reference
    // changes it.
    let translations = std::fs::read_to_string(dir.path().join(TRANSLATIONS)).unwrap();
    let hypotheses: Vec<String> = translations.lines().map(str::to_string).collect();
    let corpus = SyntheticTranslation::new(0).corpus(300, 16, 0);
    let references: Vec<String> = corpus.test.pairs.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(hypotheses.len(), 16);
    let rescored = corpus_bleu(&hypotheses, &references);
    assert_eq!(rescored.score, *bleu);
    // The lengths BLEU counted are those of these texts (with a degenerate tiny model the score
    // may be 0 whatever the alignment; the lengths still tell a wrong set of references).
    let tokens = |texts: &[String]| texts.iter().map(|text| tokenize(text).len()).sum::<usize>();
    assert_eq!(
        report.results[1],
        (
            "test hypothesis tokens".to_string(),
            tokens(&hypotheses) as f64
        )
    );
    assert_eq!(
        report.results[2],
        (
            "test reference tokens".to_string(),
            tokens(&references) as f64
        )
    );
}

#[test]
fn two_local_devices_train_the_example_through_burns_ddp() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let report = cifar::run(common::cifar_args(
        dir.path(),
        &["--devices", "2", "--epochs", "2"],
    ))
    .unwrap();
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
    let _serial = common::serial();
    let dir = common::temp_dir();
    let error = |extra: &[&str]| -> String {
        match cifar::run(common::cifar_args(dir.path(), extra)) {
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
    let _serial = common::serial();
    // Rows of the LM's step batch and the token-budget batches of NMT are dealt out to the
    // replicas; both must give every replica the same number of steps (DDP hangs otherwise).
    let dir = common::temp_dir();
    let args: lm::LmArgs = common::tiny_args("lm_lstm", dir.path(), &["--devices", "2"]);
    let report = lm::run(args).unwrap();
    assert_artifacts(&report, 1, "Perplexity");
    let dir = common::temp_dir();
    let flags = ["--beam", "1", "--test-sentences", "5", "--devices", "2"];
    let args: nmt::NmtArgs = common::tiny_args("nmt_transformer", dir.path(), &flags);
    let report = nmt::run(args).unwrap();
    assert_artifacts(&report, report.history.epochs.len(), "Loss");
}

#[test]
fn a_failed_rerun_never_touches_a_finished_run() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    cifar::run(common::cifar_args(dir.path(), &[])).unwrap();
    let before = common::snapshot(dir.path());
    for name in [
        "model.mpk",
        "metrics.csv",
        "curves.png",
        "run.json",
        "checkpoint/model-1.mpk",
    ] {
        assert!(
            before.contains_key(name),
            "{name} missing: {:?}",
            before.keys()
        );
    }

    // A plain re-run is refused, naming both ways on.
    let error = common::refused(cifar::run(common::cifar_args(dir.path(), &[])));
    assert_eq!(
        error,
        format!(
            "{} holds an earlier run: continue it with --resume, replace it with --overwrite, \
             or choose another --artifact-dir",
            dir.path().display()
        )
    );
    // --overwrite with a bad task flag, bad data or no training step fails before anything is
    // removed.
    let malformed = dir.path().join("malformed");
    std::fs::create_dir(&malformed).unwrap();
    std::fs::write(malformed.join("data_batch_1.bin"), [7u8; 100]).unwrap();
    for extra in [
        vec!["--overwrite", "--depth", "21"],
        vec!["--overwrite", "--images", "0"],
        vec!["--overwrite", "--data-dir", malformed.to_str().unwrap()],
        vec!["--overwrite", "--stop-after", "5"],
        vec!["--overwrite", "--warmup", "1000000"],
        vec!["--overwrite", "--resume"],
    ] {
        let error = common::refused(cifar::run(common::cifar_args(dir.path(), &extra)));
        assert!(!error.is_empty(), "{extra:?}");
        let after = common::snapshot(dir.path());
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after
                .keys()
                .filter(|name| !name.starts_with("malformed"))
                .collect::<Vec<_>>(),
            "{extra:?} changed the run's files ({error})"
        );
        for (name, bytes) in &before {
            assert!(after[name] == *bytes, "{extra:?} changed {name} ({error})");
        }
    }
    // With --overwrite and everything in order, the new run replaces the old one.
    cifar::run(common::cifar_args(
        dir.path(),
        &["--overwrite", "--epochs", "2"],
    ))
    .unwrap();
    assert!(dir.path().join("checkpoint/model-2.mpk").is_file());
    assert!(
        std::fs::read_to_string(dir.path().join("run.json"))
            .unwrap()
            .contains("\"epochs\": 2")
    );
}

#[test]
fn unusable_settings_are_one_clear_error_naming_the_optimizer() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let run = |extra: &[&str]| common::refused(cifar::run(common::cifar_args(dir.path(), extra)));
    assert_eq!(
        run(&["--epochs", "2", "--stop-after", "5"]),
        "--stop-after 5 is beyond the run's 2 epochs (--epochs)"
    );
    assert_eq!(
        run(&["--optimizer", "adam", "--beta-2", "1"]),
        "invalid Adam settings: --beta-2 1.0 must lie in [0, 1)"
    );
    assert_eq!(
        run(&["--optimizer", "adam-2k", "--epsilon=-1"]),
        "invalid Adam-2k settings: --epsilon -1.0 must be finite and ≥ 0"
    );
    // 128 images in batches of 16: 8 steps per epoch.
    assert_eq!(
        run(&["--warmup", "9"]),
        "--warmup 9 is longer than the whole run (1 epochs of 8 steps = 8 steps): the learning \
         rate would never reach 0.003"
    );
    let error = run(&["--images", "0"]);
    assert_eq!(error, "--images must be at least 1");
    // Runs that could not change their weights.
    assert_eq!(
        run(&["--optimizer", "adam-2k", "--frozen-steps", "8"]),
        "--frozen-steps 8 covers the whole run (8 steps): Adam-2k would never update the \
         weights; freeze fewer steps or train for more --epochs"
    );
    assert_eq!(
        run(&["--lr", "1e-50"]),
        "--lr 1e-50 cannot train: updates below 1e-12 vanish in f32 weights"
    );
    // Nothing was written for any of them.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A flag clap refuses is one line.
    let error =
        cifar::CifarArgs::try_parse_from(["cifar_resnet", "--backend", "cuda"]).unwrap_err();
    let line = radam_train::harness::usage_error_line(&error);
    assert_eq!(
        line,
        "error: invalid value 'cuda' for '--backend <BACKEND>' [possible values: ndarray, wgpu] \
         (see --help)"
    );
    let error = cifar::CifarArgs::try_parse_from(["cifar_resnet", "--epoch", "3"]).unwrap_err();
    let line = radam_train::harness::usage_error_line(&error);
    assert!(
        !line.contains('\n') && line.starts_with("error: unexpected argument '--epoch'"),
        "{line}"
    );
    assert!(line.contains("tip:"), "{line}");
}

#[test]
fn size_flags_beyond_the_memory_are_refused_before_any_allocation_naming_them() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let path = dir.path().to_str().unwrap();
    let cifar = |extra: &[&str]| common::refused(cifar::run(common::cifar_args(dir.path(), extra)));
    let lm = |extra: &[&str]| {
        let mut args = vec!["lm_lstm", "--size", "tiny", "--artifact-dir", path];
        args.extend_from_slice(extra);
        common::refused(lm::run(lm::LmArgs::try_parse_from(args).unwrap()))
    };
    let nmt = |extra: &[&str]| {
        let mut args = vec!["nmt_transformer", "--size", "tiny", "--artifact-dir", path];
        args.extend_from_slice(extra);
        common::refused(nmt::run(nmt::NmtArgs::try_parse_from(args).unwrap()))
    };
    // This machine has far less than any of these (the tests run with 24 GB).
    for (error, start) in [
        (
            cifar(&["--images", "100000000000"]),
            "--images 100000000000 would need about 800.0 GB of memory, more than the ",
        ),
        (
            cifar(&["--width", "100000"]),
            "a ResNet-8 of width 100000 on 32×32 images at batch size 16 (--depth, --width, \
             --image-size, --batch-size) would need about ",
        ),
        (
            lm(&["--tokens", "10000000000"]),
            "--tokens 10000000000 would need about 120.0 GB of memory, more than the ",
        ),
        (
            nmt(&["--pairs", "10000000000"]),
            "--pairs 10000000000 would need about ",
        ),
        (
            nmt(&["--d-model", "1000000"]),
            "a Transformer of 2 + 2 layers of width 1000000 (--layers, --d-model) over ",
        ),
    ] {
        assert!(error.starts_with(start), "{error}");
        assert!(error.ends_with(" GB available"), "{error}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_diverging_run_stops_with_an_error_and_saves_no_model() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let error = cifar::run(common::cifar_args(
        dir.path(),
        &["--lr", "1e30", "--epochs", "3"],
    ))
    .err()
    .unwrap();
    assert!(matches!(error, HarnessError::Diverged(_)), "{error}");
    let error = error.to_string();
    assert!(
        error.starts_with("the training loss became NaN at epoch 1, step ")
            || error.starts_with("the training loss became inf at epoch 1, step "),
        "{error}"
    );
    assert!(
        error.contains("with RAdam at lr 1000000000000000000000000000000"),
        "{error}"
    );
    assert!(!dir.path().join("model.mpk").exists());
    // It stopped in its first epoch: no checkpoint of a later one.
    assert!(!dir.path().join("checkpoint/model-2.mpk").exists());
}

#[test]
fn resume_refuses_changed_task_flags_and_unreadable_checkpoints() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    cifar::run(common::cifar_args(
        dir.path(),
        &["--epochs", "3", "--stop-after", "2"],
    ))
    .unwrap();
    let resume = |extra: &[&str]| {
        let mut flags = vec!["--epochs", "3", "--resume"];
        flags.extend_from_slice(extra);
        cifar::run(common::cifar_args(dir.path(), &flags))
    };
    let error = common::refused(resume(&["--depth", "14"]));
    assert!(
        error.contains("different settings (task_options.depth: 8 → 14)"),
        "{error}"
    );
    let error = common::refused(resume(&["--images", "64"]));
    assert!(error.contains("task_options.images: 128 → 64"), "{error}");

    let model_2 = dir.path().join("checkpoint/model-2.mpk");
    let good = std::fs::read(&model_2).unwrap();
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ] {
        std::fs::write(&model_2, &bytes).unwrap();
        let error = common::refused(resume(&[]));
        assert!(
            error.starts_with(&format!(
                "checkpoint {} is corrupt (hash mismatch: written as sha256 ",
                model_2.display()
            )),
            "{what}: {error}"
        );
        // The checkpoint of epoch 1 is intact and named as the way on.
        assert!(
            error.contains("the checkpoint of epoch 1 is complete"),
            "{what}: {error}"
        );
    }
    // Without its checksum (a run from before them), a damaged record is still refused.
    let sidecar = dir.path().join("checkpoint/model-2.mpk.sha256");
    let recorded = std::fs::read(&sidecar).unwrap();
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::write(&model_2, &good[..good.len() / 2]).unwrap();
    let error = common::refused(resume(&[]));
    assert!(
        error.starts_with(&format!("checkpoint {} is unreadable (", model_2.display())),
        "{error}"
    );
    std::fs::write(&sidecar, recorded).unwrap();
    // A record of another model (the optimizer's, in the model's place) does not fit.
    std::fs::copy(dir.path().join("checkpoint/scheduler-2.mpk"), &model_2).unwrap();
    let error = common::refused(resume(&[]));
    assert!(error.starts_with("checkpoint "), "{error}");
    // Restored, the run resumes and finishes.
    std::fs::write(&model_2, &good).unwrap();
    let report = resume(&[]).unwrap();
    assert_eq!(report.history.epochs.len(), 3);
}

#[test]
fn translation_refuses_an_unaffordable_beam_before_training() {
    let _serial = common::serial();
    let dir = common::temp_dir();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "nmt_transformer",
            "--size",
            "tiny",
            "--plain",
            "--artifact-dir",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        common::refused(nmt::run(nmt::NmtArgs::try_parse_from(args).unwrap()))
    };
    let error = run(&["--beam", "100000"]);
    assert!(
        error.starts_with("--beam 100000 is larger than the vocabulary ("),
        "{error}"
    );
    assert!(
        !dir.path().join("checkpoint").exists(),
        "it trained before refusing"
    );
    assert_eq!(
        run(&["--pairs", "0"]),
        "--beam, --max-length and --pairs must be at least 1"
    );
    assert_eq!(
        run(&["--layers", "0"]),
        "--layers and --d-model must be at least 1"
    );
    // A width the heads cannot share is refused before any training.
    let error = run(&["--d-model", "30"]);
    assert!(
        error.contains("d_model (30) must be a positive multiple of n_heads (4)"),
        "{error}"
    );
    assert!(!dir.path().join("checkpoint").exists());
    // A training set whose lines are all empty is named as such (not blamed on --beam).
    let corpus = common::temp_dir();
    for split in ["train", "valid", "test"] {
        for side in ["de", "en"] {
            std::fs::write(corpus.path().join(format!("{split}.{side}")), "\n\n\n").unwrap();
        }
    }
    let error = run(&["--data-dir", corpus.path().to_str().unwrap()]);
    assert_eq!(
        error,
        "every training pair has an empty side: there is nothing to learn from"
    );
    // Every pair is longer than one token: nothing to train on.
    let error = run(&["--max-length", "1"]);
    assert!(
        error.contains("no step") || error.contains("max_length"),
        "{error}"
    );
}
