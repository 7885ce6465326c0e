//! Multi-node training for real: two processes started by `mpirun`, talking TCP over the
//! loopback interface as two machines would, train the CIFAR example together. Both must end
//! with identical weights, and the loss must fall. Needs the `mpi` feature and Open MPI's
//! `mpirun`. Part of the `data_parallel` test binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use radam_train::harness::history::{History, Phase};
use radam_train::tasks::cifar;

/// Set by the test for the processes it starts: where they write their artifacts.
const WORKER_DIR: &str = "RADAM_TEST_MPI_DIR";
/// Seconds the two processes may take before the test kills them.
const LIMIT: Duration = Duration::from_secs(600);
const EPOCHS: usize = 3;

/// One node of the two-process run, started (under mpirun) by the test below.
#[test]
#[ignore = "a node process of the multi-node test, started by mpirun"]
fn worker_process() {
    let dir = std::env::var(WORKER_DIR).expect("started by the multi-node test");
    let epochs = EPOCHS.to_string();
    let args = cifar::CifarArgs::try_parse_from([
        "cifar_resnet",
        "--size",
        "tiny",
        "--plain",
        "--nodes",
        "2",
        "--epochs",
        &epochs,
        "--images",
        "256",
        "--batch-size",
        "16",
        "--artifact-dir",
        &dir,
    ])
    .unwrap();
    let report = cifar::run(args).expect("the multi-node run");
    println!(
        "node {} trained in {:.1} s",
        report.node_rank,
        report.wall_time.as_secs_f64()
    );
}

fn history(dir: &Path) -> History {
    History::read_csv(&dir.join("metrics.csv")).unwrap()
}

fn mpirun() -> Command {
    let mut command = Command::new("mpirun");
    command.args([
        "-np",
        "2",
        "--oversubscribe",
        // TCP over loopback, as between two machines (not shared memory).
        "--mca",
        "btl",
        "self,tcp",
        "--mca",
        "btl_tcp_if_include",
        "lo",
        "--mca",
        "oob_tcp_if_include",
        "lo",
    ]);
    // CI runs as root; Open MPI refuses that unless told.
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    command
}

#[test]
fn two_processes_on_loopback_train_identical_models() {
    if std::env::var(WORKER_DIR).is_ok() {
        return;
    }
    let dir = crate::common::temp_dir();
    let artifacts: PathBuf = dir.path().join("cifar");
    let started = Instant::now();
    let mut child = mpirun()
        .arg(std::env::current_exe().unwrap())
        .args([
            "multi_node::worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(WORKER_DIR, &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun (Open MPI) must be installed for the `mpi` feature's tests");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            child.kill().ok();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the two processes did not finish within {LIMIT:?}:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        status.success(),
        "mpirun failed: {status}\n{stdout}\n{stderr}"
    );
    println!(
        "two processes, {EPOCHS} epochs: {:.1} s wall time in all",
        started.elapsed().as_secs_f64()
    );
    for line in stdout.lines().filter(|line| line.contains("trained in")) {
        println!("{line}");
    }

    // Node 0 writes the run's artifacts, node 1 its own beside them.
    let node_1 = artifacts.join("node-1");
    let (weights_0, weights_1) = (
        crate::common::saved_resnet8_weights(&artifacts),
        crate::common::saved_resnet8_weights(&node_1),
    );
    assert_eq!(weights_0.len(), weights_1.len());
    let differing: Vec<(usize, f32)> = weights_0
        .iter()
        .zip(&weights_1)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i, (a - b).abs()))
        .collect();
    assert!(
        differing.is_empty(),
        "the two nodes ended with different weights: {} of {} numbers differ, first {:?}",
        differing.len(),
        weights_0.len(),
        &differing[..differing.len().min(5)]
    );
    // Same weights, same validation set, the same kernels on both nodes (the fixed rules: each
    // node timing its own would sum in its own order): the same validation loss, every epoch.
    assert!(
        stdout.contains("kernels: the fixed rules on every node"),
        "{stdout}"
    );
    let (history_0, history_1) = (history(&artifacts), history(&node_1));
    assert_eq!(history_0.epochs.len(), EPOCHS);
    for (a, b) in history_0.epochs.iter().zip(&history_1.epochs) {
        assert_eq!(a.get(Phase::Valid, "Loss"), b.get(Phase::Valid, "Loss"));
    }
    // Each node's training loss (on its own half of the data) falls.
    for history in [&history_0, &history_1] {
        let loss = |epoch: usize| history.epochs[epoch].get(Phase::Train, "Loss").unwrap();
        assert!(
            loss(EPOCHS - 1) < loss(0),
            "training loss did not fall: {} → {}",
            loss(0),
            loss(EPOCHS - 1)
        );
    }
    // Only node 0 talks.
    assert_eq!(stdout.matches("built-in shapes").count(), 1, "{stdout}");
}
