//! What a user must never lose, tried as a user would: one run per directory, `--overwrite` that
//! keeps the finished run until the new one has finished, a full disk that ends in one `error:`
//! line with the last checkpoint usable, flipped bits refused, a resume on changed data refused
//! naming the file, and runs stopped after training resumed into their last phase.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use radam_train::harness::{HarnessError, RunReport};
use radam_train::run_dir::DirLock;
use radam_train::tasks::{cifar, lm, nmt};

fn cifar_run(dir: &Path, extra: &[&str]) -> Result<RunReport, HarnessError> {
    cifar::run(common::cifar_args(dir, extra))
}

/// Flips bit `bit` of the byte in the middle of the file at `path`.
fn flip_bit(path: &Path, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_directory_in_use_by_another_run_is_refused() {
    let _serial = common::serial();
    let temp = common::temp_dir();
    let dir = temp.path().join("run");
    let held = DirLock::acquire(&dir).unwrap();
    assert_eq!(
        common::refused(cifar_run(&dir, &[])),
        format!(
            "{} is in use by process {}: wait for that run to end, or choose another \
             --artifact-dir",
            dir.display(),
            std::process::id()
        )
    );
    assert!(!dir.exists(), "the refused run wrote into the directory");
    drop(held);
    cifar_run(&dir, &[]).unwrap();
    // The run's lock went with it.
    assert_eq!(
        std::fs::read_dir(temp.path()).unwrap().count(),
        1,
        "only the run's directory is left"
    );
}

#[test]
fn overwrite_replaces_a_finished_run_only_once_the_new_one_has_finished() {
    let _serial = common::serial();
    let temp = common::temp_dir();
    let dir = temp.path().join("run");
    let staging = temp.path().join(".run.overwrite");
    cifar_run(&dir, &[]).unwrap();
    // A file of the user's in the run's directory.
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let before = common::snapshot(&dir);

    // A new run that diverges: the old run stays whole, and nothing of the new one is left.
    let error = common::refused(cifar_run(
        &dir,
        &["--overwrite", "--lr", "1e30", "--epochs", "3"],
    ));
    assert!(
        error.ends_with(&format!(
            "; the earlier run in {} is untouched",
            dir.display()
        )),
        "{error}"
    );
    assert_eq!(common::snapshot(&dir), before);
    assert!(!staging.exists());

    // A new run whose checkpoint cannot be written (a file where its folder goes).
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("checkpoint"), b"").unwrap();
    let error = common::refused(cifar_run(&dir, &["--overwrite", "--seed", "1"]));
    assert!(
        error.starts_with(&format!(
            "cannot write {}/",
            staging.join("checkpoint").display()
        )),
        "{error}"
    );
    assert!(
        error.ends_with(&format!(
            "the run stopped: it has no complete checkpoint yet; the earlier run in {} is \
             untouched",
            dir.display()
        )),
        "{error}"
    );
    assert_eq!(common::snapshot(&dir), before);
    // A plain run names both runs.
    let error = common::refused(cifar_run(&dir, &["--seed", "1"]));
    assert!(
        error.contains(&format!(
            "(and an unfinished --overwrite run in {})",
            staging.display()
        )),
        "{error}"
    );
    // Fixed, the interrupted overwrite is resumed (it had no complete checkpoint: it starts
    // over beside the old run) and replaces the old run once finished.
    std::fs::remove_file(staging.join("checkpoint")).unwrap();
    cifar_run(&dir, &["--resume", "--seed", "1"]).unwrap();
    assert!(!staging.exists() && !temp.path().join(".run.replaced").exists());
    let settings = std::fs::read_to_string(dir.join("run.json")).unwrap();
    assert!(settings.contains("\"seed\": 1"), "{settings}");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me"
    );
    let straight = common::temp_dir();
    cifar_run(straight.path(), &["--seed", "1"]).unwrap();
    common::assert_same_resnet8_weights(straight.path(), &dir);
}

#[test]
fn an_interrupted_overwrite_with_a_checkpoint_replaces_the_old_run_when_resumed() {
    let _serial = common::serial();
    let temp = common::temp_dir();
    let dir = temp.path().join("run");
    cifar_run(&dir, &[]).unwrap();
    // What a new run killed after its first epoch leaves beside the old one.
    let staging = temp.path().join(".run.overwrite");
    cifar_run(
        &staging,
        &["--seed", "1", "--epochs", "2", "--stop-after", "1"],
    )
    .unwrap();
    for file in ["model.mpk", "model.mpk.sha256", "results.json"] {
        std::fs::remove_file(staging.join(file)).unwrap();
    }
    cifar_run(&dir, &["--resume", "--seed", "1", "--epochs", "2"]).unwrap();
    assert!(!staging.exists());
    let straight = common::temp_dir();
    cifar_run(straight.path(), &["--seed", "1", "--epochs", "2"]).unwrap();
    common::assert_same_resnet8_weights(straight.path(), &dir);

    // A swap killed between its two renames is completed by the next run.
    let staged = temp.path().join(".run.overwrite");
    std::fs::rename(&dir, temp.path().join(".run.replaced")).unwrap();
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::rename(straight.path().join("model.mpk"), staged.join("model.mpk")).unwrap();
    let error = common::refused(cifar_run(&dir, &["--seed", "1", "--epochs", "2"]));
    assert!(error.contains("holds an earlier run"), "{error}");
    assert!(dir.join("model.mpk").is_file() && !staged.exists());
    assert!(!temp.path().join(".run.replaced").exists());
}

/// The example program `name`, built by `cargo test` beside this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds the examples",
        path.display()
    );
    path
}

/// Runs the CIFAR example with `flags`; its exit code and standard error.
fn cifar_process(flags: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(example("cifar_resnet"))
        .args(["--size", "tiny", "--plain"])
        .args(flags)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A tmpfs of `bytes` mounted at `path` while alive (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, bytes: u64) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        Command::new("umount").arg(&self.0).status().ok();
    }
}

/// Bytes the files of `dir` take on a file system of 4 KiB blocks.
fn blocks_of(dir: &Path) -> u64 {
    common::snapshot(dir)
        .values()
        .map(|bytes| (bytes.len() as u64).div_ceil(4096) * 4096)
        .sum()
}

#[test]
fn a_full_disk_ends_the_run_with_one_error_line_and_resume_finishes_it() {
    let temp = common::temp_dir();
    let straight = temp.path().join("straight");
    let flags = ["--epochs", "3", "--artifact-dir"];
    let (code, stderr) = cifar_process(&[&flags[..], &[straight.to_str().unwrap()]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    // Room for everything the run holds after its first epoch, plus a rewrite of the plot,
    // but not for a second checkpoint.
    let after_first = temp.path().join("after-first");
    let (code, stderr) = cifar_process(&[
        "--epochs",
        "3",
        "--stop-after",
        "1",
        "--artifact-dir",
        after_first.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    for file in ["model.mpk", "model.mpk.sha256", "results.json"] {
        std::fs::remove_file(after_first.join(file)).unwrap();
    }
    let checkpoint = std::fs::metadata(after_first.join("checkpoint/optim-1.mpk"))
        .unwrap()
        .len();
    let plot = std::fs::metadata(after_first.join("curves.png"))
        .unwrap()
        .len();
    let room = blocks_of(&after_first) + plot + checkpoint / 2;

    let mount_point = temp.path().join("disk");
    let Some(disk) = Tmpfs::mount(&mount_point, room) else {
        eprintln!(
            "NOTICE: `{}` could not mount a tmpfs (not root?): the full disk is tested by \
             `overwrite_replaces_a_finished_run_only_once_the_new_one_has_finished`'s \
             unwritable checkpoint folder only",
            module_path!()
        );
        return;
    };
    let dir = mount_point.join("run");
    // The uninterrupted run's kernels, so that the weights can be compared bit for bit.
    let kernels = straight.join("kernels.json");
    let (code, stderr) = cifar_process(
        &[
            &flags[..],
            &[
                dir.to_str().unwrap(),
                "--kernels",
                kernels.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot write {}/", dir.display())),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with(
            "No space left on device (os error 28); the run stopped: its checkpoint of epoch 1 \
             is complete, and --resume continues from it once the cause is fixed"
        ),
        "{stderr}"
    );
    // Space found (the run moved to a larger disk), it resumes to the uninterrupted weights.
    let moved = temp.path().join("moved");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(status.success());
    drop(disk);
    let (code, stderr) =
        cifar_process(&[&flags[..], &[moved.to_str().unwrap(), "--resume"]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    common::assert_same_resnet8_weights(&straight, &moved);
}

#[test]
fn kernels_replayed_from_a_missing_or_foreign_file_are_refused() {
    let temp = common::temp_dir();
    let dir = temp.path().join("run");
    let missing = temp.path().join("missing.json");
    let error = common::refused(cifar_run(&dir, &["--kernels", missing.to_str().unwrap()]));
    assert!(
        error.starts_with(&format!("--kernels: cannot read {}: ", missing.display())),
        "{error}"
    );
    let foreign = temp.path().join("run.json");
    std::fs::write(&foreign, r#"{"epochs": 3}"#).unwrap();
    let error = common::refused(cifar_run(&dir, &["--kernels", foreign.to_str().unwrap()]));
    assert!(
        error.starts_with(&format!(
            "--kernels: {} is not a record of kernel choices (",
            foreign.display()
        )),
        "{error}"
    );
    assert!(!dir.exists(), "a refused run leaves nothing behind");
}

#[test]
fn flipped_bits_in_checkpoints_and_the_model_are_refused() {
    let _serial = common::serial();
    let temp = common::temp_dir();
    let dir = temp.path().join("run");
    cifar_run(&dir, &["--epochs", "3", "--stop-after", "2"]).unwrap();
    let resume = || cifar_run(&dir, &["--epochs", "3", "--resume"]);
    for (record, bit) in [("model", 6), ("optim", 0), ("scheduler", 7)] {
        let file = dir.join(format!("checkpoint/{record}-2.mpk"));
        let good = std::fs::read(&file).unwrap();
        flip_bit(&file, bit);
        let error = common::refused(resume());
        assert!(
            error.starts_with(&format!(
                "checkpoint {} is corrupt (hash mismatch: ",
                file.display()
            )),
            "{record}: {error}"
        );
        assert!(
            error.contains("the checkpoint of epoch 1 is complete"),
            "{record}: {error}"
        );
        std::fs::write(&file, good).unwrap();
    }
    // The kernel choices that computed the checkpoints: a damaged record is refused too.
    let kernels = dir.join("kernels.json");
    let good = std::fs::read(&kernels).unwrap();
    std::fs::write(&kernels, &good[..good.len() / 2]).unwrap();
    let error = common::refused(resume());
    assert!(
        error.starts_with(&format!(
            "{} is not a record of kernel choices (",
            kernels.display()
        )) && error.ends_with("); delete it to choose anew"),
        "{error}"
    );
    std::fs::write(&kernels, good).unwrap();
    resume().unwrap();
    // A run stopped after training (no results yet) loads its model again: checked too.
    std::fs::remove_file(dir.join("results.json")).unwrap();
    flip_bit(&dir.join("model.mpk"), 3);
    let error = common::refused(resume());
    assert!(
        error.starts_with(&format!(
            "model {} is corrupt (hash mismatch: ",
            dir.join("model.mpk").display()
        )),
        "{error}"
    );
}

/// A CIFAR-10 binary file of `images` records, each image filled with its label.
fn write_cifar_batch(path: &Path, images: usize, seed: u8) {
    let mut bytes = Vec::new();
    for index in 0..images {
        let label = (index as u8).wrapping_add(seed) % 10;
        bytes.push(label);
        bytes.extend(std::iter::repeat_n(label.wrapping_mul(25), 3072));
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn resume_on_changed_data_is_refused_naming_the_file() {
    let _serial = common::serial();
    let temp = common::temp_dir();

    // CIFAR: a training batch file that grew.
    let data = temp.path().join("cifar");
    std::fs::create_dir_all(&data).unwrap();
    for batch in 1..=5 {
        write_cifar_batch(&data.join(format!("data_batch_{batch}.bin")), 8, batch);
    }
    write_cifar_batch(&data.join("test_batch.bin"), 8, 0);
    let dir = temp.path().join("cifar-run");
    let base = ["--epochs", "2", "--data-dir", data.to_str().unwrap()];
    cifar_run(&dir, &[&base[..], &["--stop-after", "1"]].concat()).unwrap();
    write_cifar_batch(&data.join("data_batch_3.bin"), 40, 3);
    let error = common::refused(cifar_run(&dir, &[&base[..], &["--resume"]].concat()));
    assert!(
        error.starts_with(&format!(
            "cannot resume {}: its data changed since the run started ({}: 24584 bytes, sha256 ",
            dir.display(),
            data.join("data_batch_3.bin").display()
        )),
        "{error}"
    );
    assert!(
        error.contains("… → 122920 bytes, sha256 ")
            && error.ends_with(
                "continue on the new data with --resume-with-new-data, or start a new run with \
                 --overwrite"
            ),
        "{error}"
    );
    let report = cifar_run(&dir, &[&base[..], &["--resume-with-new-data"]].concat()).unwrap();
    assert_eq!(report.history.epochs.len(), 2);

    // The language model: four new words.
    let corpus = temp.path().join("lm");
    std::fs::create_dir_all(&corpus).unwrap();
    let text = "the cat sat on the mat\nthe dog sat on the cat\n".repeat(40);
    for split in ["train", "valid", "test"] {
        std::fs::write(corpus.join(format!("{split}.txt")), &text).unwrap();
    }
    let lm_run = |extra: &[&str]| {
        let dir = temp.path().join("lm-run");
        let mut args = vec![
            "lm_lstm",
            "--size",
            "tiny",
            "--plain",
            "--epochs",
            "2",
            "--data-dir",
            corpus.to_str().unwrap(),
            "--artifact-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        lm::run(lm::LmArgs::try_parse_from(args).unwrap())
    };
    lm_run(&["--stop-after", "1"]).unwrap();
    std::fs::write(
        corpus.join("train.txt"),
        format!("{text}zebra yak quokka emu\n"),
    )
    .unwrap();
    let error = common::refused(lm_run(&["--resume"]));
    assert!(
        error.contains(&format!("{}: ", corpus.join("train.txt").display()))
            && error.contains("; vocabulary: 8 → 12)"),
        "{error}"
    );
    // Told to go on, it still cannot load a model of another vocabulary.
    let error = common::refused(lm_run(&["--resume-with-new-data"]));
    assert!(
        error.ends_with(
            "does not fit this run's model (tensor 0: saved [8, 32], this run's model [12, 32])"
        ),
        "{error}"
    );

    // Translation: a replaced target side.
    let parallel = temp.path().join("nmt");
    std::fs::create_dir_all(&parallel).unwrap();
    let pairs = radam_train::datasets::synthetic_translation::SyntheticTranslation::new(3)
        .corpus(60, 16, 3);
    for (split, text) in [
        ("train", &pairs.train),
        ("valid", &pairs.valid),
        ("test", &pairs.test),
    ] {
        let side = |pick: fn(&(String, String)) -> &String| {
            text.pairs
                .iter()
                .map(|p| pick(p).clone())
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        };
        std::fs::write(parallel.join(format!("{split}.de")), side(|p| &p.0)).unwrap();
        std::fs::write(parallel.join(format!("{split}.en")), side(|p| &p.1)).unwrap();
    }
    let nmt_run = |extra: &[&str]| {
        let dir = temp.path().join("nmt-run");
        let mut args = vec![
            "nmt_transformer",
            "--size",
            "tiny",
            "--plain",
            "--epochs",
            "2",
            "--bpe-vocab",
            "120",
            "--test-sentences",
            "2",
            "--data-dir",
            parallel.to_str().unwrap(),
            "--artifact-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        nmt::run(nmt::NmtArgs::try_parse_from(args).unwrap())
    };
    nmt_run(&["--stop-after", "1"]).unwrap();
    let train_en = parallel.join("train.en");
    let replaced = std::fs::read_to_string(&train_en).unwrap().to_uppercase();
    std::fs::write(&train_en, replaced).unwrap();
    let error = common::refused(nmt_run(&["--resume"]));
    assert!(
        error.contains(&format!("{}: ", train_en.display())),
        "{error}"
    );
}

#[test]
fn runs_stopped_after_training_resume_into_their_last_phase() {
    let _serial = common::serial();
    let temp = common::temp_dir();
    // Translation killed while it translated the test set.
    let dir = temp.path().join("nmt");
    let nmt_run = |extra: &[&str]| {
        let mut args = vec![
            "nmt_transformer",
            "--size",
            "tiny",
            "--plain",
            "--test-sentences",
            "4",
            "--artifact-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        nmt::run(nmt::NmtArgs::try_parse_from(args).unwrap())
    };
    let finished = nmt_run(&[]).unwrap();
    let translations = std::fs::read_to_string(dir.join("translations.txt")).unwrap();
    std::fs::remove_file(dir.join("translations.txt")).unwrap();
    std::fs::remove_file(dir.join("results.json")).unwrap();
    let resumed = nmt_run(&["--resume"]).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("translations.txt")).unwrap(),
        translations
    );
    assert_eq!(resumed.results, finished.results);
    assert_eq!(resumed.history.epochs.len(), finished.history.epochs.len());
    let error = common::refused(nmt_run(&["--resume"]));
    assert!(error.contains("already finished 1 of 1 epochs"), "{error}");

    // The language model's test perplexity: on a test split equal to the validation split,
    // the validation perplexity of the last epoch (same model, same reading of the text).
    let corpus = temp.path().join("lm");
    std::fs::create_dir_all(&corpus).unwrap();
    let words = ["the", "cat", "dog", "sat", "on", "mat", "a", "ran"];
    let line = |i: usize| -> String {
        (0..7)
            .map(|j| words[(i * 7 + j * j + i / 3) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = |from: usize, lines: usize| {
        (from..from + lines)
            .map(line)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    std::fs::write(corpus.join("train.txt"), text(0, 300)).unwrap();
    std::fs::write(corpus.join("valid.txt"), text(300, 60)).unwrap();
    std::fs::write(corpus.join("test.txt"), text(300, 60)).unwrap();
    let report = lm::run(
        lm::LmArgs::try_parse_from([
            "lm_lstm",
            "--size",
            "tiny",
            "--plain",
            "--data-dir",
            corpus.to_str().unwrap(),
            "--artifact-dir",
            temp.path().join("lm-run").to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap();
    let test = report
        .results
        .iter()
        .find(|(name, _)| name == "test perplexity")
        .map(|&(_, value)| value)
        .expect("a test perplexity");
    let valid = report
        .history
        .last()
        .unwrap()
        .get(radam_train::harness::history::Phase::Valid, "Perplexity")
        .unwrap();
    assert!(
        ((test - valid) / valid).abs() < 1e-4,
        "test {test} against valid {valid}"
    );
    let results = std::fs::read_to_string(temp.path().join("lm-run/results.json")).unwrap();
    assert!(results.contains("\"test perplexity\""), "{results}");
}
