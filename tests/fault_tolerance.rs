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
    let args = cifar::CifarArgs::try_parse_from(args).unwrap();
    if let Err(error) = cifar::run(args) {
        panic!("the child run failed: {error}");
    }
}

/// Starts a child run in `dir` (resuming when `dir` already holds the run's settings).
fn spawn(dir: &Path) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_run", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if dir.join("run.json").is_file() {
        command.env(CHILD_RESUME, "1");
    }
    command.spawn().expect("the test binary starts itself")
}

/// Runs a child to its end; panics with its output if it fails.
fn run_to_the_end(dir: &Path) -> Duration {
    let started = Instant::now();
    let output = spawn(dir).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "child run in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

#[test]
fn killed_runs_resume_to_the_weights_of_an_uninterrupted_run() {
    let straight = common::temp_dir();
    let duration = run_to_the_end(straight.path());

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
        let mut child = spawn(&dir);
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
        run_to_the_end(&dir);
    }
    common::assert_same_resnet8_weights(straight.path(), &dir);
    // No partial file survives a finished run.
    for entry in walk(&dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with(".partial-"), "{name} left behind");
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
