//! A run killed with SIGKILL at arbitrary moments — while it starts, during an epoch, while it
//! writes a checkpoint or the model — always finishes when resumed, with the very weights of a
//! run that was never interrupted (ResNet has no dropout, whose generator is not checkpointed).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use radam_train::tasks::cifar;

/// The artifact directory of a child run; the child test does nothing without it.
const CHILD_DIR: &str = "RADAM_FAULT_CHILD_DIR";
/// Set when the child continues an interrupted run.
const CHILD_RESUME: &str = "RADAM_FAULT_CHILD_RESUME";
/// The child's `--kernels` (a kernels.json), when set.
const CHILD_KERNELS: &str = "RADAM_FAULT_CHILD_KERNELS";
/// The child's `--stop-after`, when set.
const CHILD_STOP_AFTER: &str = "RADAM_FAULT_CHILD_STOP_AFTER";
/// Kills per interrupted run.
const KILLS: usize = 8;

/// One training run in its own process; started by the test below.
#[test]
#[ignore = "a child process of `killed_runs_resume_to_the_weights_of_an_uninterrupted_run`"]
fn child_run() {
    let dir = std::env::var(CHILD_DIR).expect("started by the fault test");
    let mut args = vec![
        "cifar_resnet",
        "--size",
        "tiny",
        "--plain",
        "--epochs",
        "4",
        "--images",
        "96",
        "--artifact-dir",
        &dir,
    ];
    if std::env::var_os(CHILD_RESUME).is_some() {
        args.push("--resume");
    }
    let kernels = std::env::var(CHILD_KERNELS).ok();
    if let Some(kernels) = &kernels {
        args.extend(["--kernels", kernels]);
    }
    let stop_after = std::env::var(CHILD_STOP_AFTER).ok();
    if let Some(epoch) = &stop_after {
        args.extend(["--stop-after", epoch]);
    }
    let args = cifar::CifarArgs::try_parse_from(args).unwrap();
    if let Err(error) = cifar::run(args) {
        panic!("the child run failed: {error}");
    }
}

/// Starts a child run in `dir` (resuming when `dir` already holds the run's settings), with the
/// child's environment `env` (its `--kernels`, its `--stop-after`).
fn spawn(dir: &Path, env: &[(&str, &Path)]) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_run", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if dir.join("run.json").is_file() {
        command.env(CHILD_RESUME, "1");
    }
    command.spawn().expect("the test binary starts itself")
}

/// Runs a child to its end; panics with its output if it fails. Its duration and standard
/// output.
fn run_to_the_end(dir: &Path, env: &[(&str, &Path)]) -> (Duration, String) {
    let started = Instant::now();
    let output = spawn(dir, env).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "child run in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn killed_runs_resume_to_the_weights_of_an_uninterrupted_run() {
    let straight = common::temp_dir();
    let (duration, _) = run_to_the_end(straight.path(), &[]);
    // The interrupted run computes with the uninterrupted run's kernels (measured choices
    // differ from process to process); its resumptions with the choices it recorded itself.
    let kernels = straight.path().join("kernels.json");
    let env = [(CHILD_KERNELS, kernels.as_path())];

    // Kill moments spread over the whole length of a run, start-up and the final save included
    // (a fixed sequence, so a failure can be replayed).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut fraction = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let interrupted = common::temp_dir();
    let dir = interrupted.path().join("run");
    let mut kills = 0;
    let mut finished_early = 0;
    while kills < KILLS {
        let delay = duration.mul_f64(1.1 * fraction());
        let mut child = spawn(&dir, &env);
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                let output = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "a resumed run failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                finished_early += 1;
                // It finished before the kill: start over to interrupt the next one.
                std::fs::remove_dir_all(&dir).unwrap();
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                if dir.join("model.mpk").is_file() {
                    // The kill came after the final save, the run's last write: it had
                    // finished (a resume would rightly refuse it). Start over.
                    finished_early += 1;
                    std::fs::remove_dir_all(&dir).unwrap();
                } else {
                    kills += 1;
                }
            }
        }
    }
    println!("{kills} kills ({finished_early} runs finished before their kill); resuming");
    if !dir.join("model.mpk").is_file() {
        run_to_the_end(&dir, &env);
    }
    common::assert_same_resnet8_weights(straight.path(), &dir);
    assert_eq!(
        read_choices(&dir.join("kernels.json")),
        read_choices(&kernels),
        "the interrupted run recorded the kernels it replayed"
    );
    // No partial file survives a finished run.
    for entry in walk(&dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with(".partial-"), "{name} left behind");
    }
}

/// The kernel choices recorded in a kernels.json.
fn read_choices(path: &Path) -> std::collections::BTreeMap<String, String> {
    radam_train::run_dir::read_kernel_choices(path)
        .unwrap()
        .kernels
}

/// A resumed run computes with the kernels its directory records, not with new measurements:
/// each recorded choice is changed to another kernel that can compute it, and the resumed run
/// says it reuses them and ends with them recorded as edited.
#[test]
fn a_resumed_run_reuses_the_kernels_its_directory_records() {
    let temp = common::temp_dir();
    let dir = temp.path().join("run");
    let stop = Path::new("1");
    run_to_the_end(&dir, &[(CHILD_STOP_AFTER, stop)]);
    let path = dir.join("kernels.json");
    let mut choices = radam_train::run_dir::read_kernel_choices(&path).unwrap();
    let mut edited = 0;
    for (class, kernel) in choices.kernels.iter_mut() {
        // Kernels every CPU has for the class: im2col for a convolution pass, matrixmultiply
        // and the gemm crate for a GEMM block.
        let other = match kernel.as_str() {
            "implicit" => "im2col",
            "gemm" => "matrixmultiply",
            _ if class.starts_with("gemm ") => "gemm",
            _ => continue,
        };
        *kernel = other.to_string();
        edited += 1;
    }
    assert!(edited > 0, "nothing to edit in {:?}", choices.kernels);
    std::fs::write(&path, serde_json::to_string(&choices).unwrap()).unwrap();

    let (_, stdout) = run_to_the_end(&dir, &[]);
    let reusing = format!(
        "kernels: reusing the {} choices recorded in {}",
        choices.kernels.len(),
        path.display()
    );
    assert!(stdout.contains(&reusing), "{stdout}");
    let after = read_choices(&path);
    for (class, kernel) in &choices.kernels {
        assert_eq!(after.get(class), Some(kernel), "{class}");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
