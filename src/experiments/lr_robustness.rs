//! `lr-robustness`: ResNet on CIFAR (built-in images or `--data-dir`) trained with learning rates
//! 0.1, 0.03, 0.01 and 0.003 by RAdam, Adam and SGD with momentum (Liu et al. 2020, §5.2: RAdam's
//! curves stay together across learning rates, Adam's and SGD's spread). Reports the spread of
//! the final accuracy per optimizer.

use std::fmt::Write as _;

use clap::Parser;

use super::{ExperimentArgs, PlannedRun, Scale, format_table, run_all, save_figure, write_file};
use crate::figure::{Figure, Panel, Series};
use crate::harness::HarnessError;
use crate::history::Split;
use crate::tasks::cifar::{self, CifarArgs};

/// The learning rates of the sweep.
pub const LEARNING_RATES: [f64; 4] = [0.1, 0.03, 0.01, 0.003];
/// The optimizers of the sweep, as `--optimizer` values, with their labels.
pub const OPTIMIZERS: [(&str, &str); 3] = [("radam", "RAdam"), ("adam", "Adam"), ("sgd", "SGD")];

/// The task flags of each scale.
pub fn task_flags(scale: Scale) -> Vec<&'static str> {
    match scale {
        Scale::Tiny => vec!["--size", "tiny", "--images", "64", "--batch-size", "16"],
        Scale::Cpu => vec![
            "--size", "small", "--depth", "8", "--images", "2000", "--epochs", "5",
        ],
        Scale::Paper => vec!["--size", "paper"],
    }
}

/// The twelve runs: every optimizer at every learning rate.
pub fn runs(args: &ExperimentArgs) -> Vec<PlannedRun> {
    let common = args.common_flags(&task_flags(args.scale));
    let mut runs = Vec::new();
    for (optimizer, _) in OPTIMIZERS {
        for lr in LEARNING_RATES {
            let lr = lr.to_string();
            runs.push(
                PlannedRun::new(
                    format!("{optimizer}-lr{lr}"),
                    &["--optimizer", optimizer, "--lr", &lr],
                )
                .with(&common),
            );
        }
    }
    runs
}

/// Runs the sweep; writes `results.csv`, `curves.png` and `summary.txt` into
/// `--out/lr-robustness/`, and returns the summary it prints.
///
/// # Errors
/// A run that fails (bad data directory, unresumable run), or unwritable files.
pub fn run(args: &ExperimentArgs) -> Result<String, HarnessError> {
    if args.lr.is_some() {
        return Err(HarnessError::Invalid(
            "--lr: lr-robustness sweeps its own learning rates (0.1, 0.03, 0.01, 0.003)"
                .to_string(),
        ));
    }
    let dir = args.output_dir("lr-robustness")?;
    let runs = runs(args);
    let outcomes = run_all(&dir, &runs, |flags| {
        let args = CifarArgs::try_parse_from(flags)
            .map_err(|error| HarnessError::Invalid(error.to_string()))?;
        cifar::run(args)
    })?;

    let mut csv = String::from("optimizer,lr,valid_accuracy,valid_loss,train_loss,seconds\n");
    let mut panels = Vec::new();
    let mut rows = Vec::new();
    for (index, (optimizer, label)) in OPTIMIZERS.iter().enumerate() {
        let mut accuracy_panel =
            Panel::new(format!("{label}: valid accuracy"), "epoch", "accuracy (%)");
        let mut loss_panel = Panel::new(format!("{label}: train loss"), "epoch", "loss").log_y();
        let mut finals = Vec::new();
        for (lr_index, lr) in LEARNING_RATES.iter().enumerate() {
            let outcome = &outcomes[index * LEARNING_RATES.len() + lr_index];
            let series = |split, metric| -> Vec<(f64, f64)> {
                outcome
                    .history
                    .epochs
                    .iter()
                    .filter_map(|r| Some((r.epoch as f64, r.get(split, metric)?)))
                    .collect()
            };
            accuracy_panel = accuracy_panel.with(Series::new(
                format!("lr {lr}"),
                series(Split::Valid, "Accuracy"),
            ));
            loss_panel = loss_panel.with(Series::new(
                format!("lr {lr}"),
                series(Split::Train, "Loss"),
            ));
            let last = outcome.history.last();
            let value = |split, metric| last.and_then(|r| r.get(split, metric)).unwrap_or(f64::NAN);
            let accuracy = value(Split::Valid, "Accuracy");
            finals.push(accuracy);
            writeln!(
                csv,
                "{optimizer},{lr},{accuracy},{},{},{:.1}",
                value(Split::Valid, "Loss"),
                value(Split::Train, "Loss"),
                outcome.seconds
            )
            .unwrap();
        }
        panels.push(accuracy_panel);
        panels.push(loss_panel);
        let (low, high) = spread(&finals);
        let mut row = vec![label.to_string()];
        row.extend(finals.iter().map(|a| format!("{a:.1}")));
        row.push(format!("{:.1}", high - low));
        rows.push(row);
    }
    write_file(&dir.join("results.csv"), &csv)?;
    let mut figure = Figure::new("Learning-rate robustness: ResNet on CIFAR", panels);
    figure.columns = 2;
    save_figure(&figure, &dir.join("curves.png"));

    let header: Vec<String> = std::iter::once("optimizer".to_string())
        .chain(LEARNING_RATES.iter().map(|lr| format!("lr {lr}")))
        .chain(std::iter::once("spread".to_string()))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut summary = format!(
        "Final validation accuracy (%) by learning rate ({:?} scale); spread = max − min:\n",
        args.scale
    );
    summary.push_str(&format_table(&header, &rows));
    write_file(&dir.join("summary.txt"), &summary)?;
    print!("{summary}");
    Ok(summary)
}

/// The lowest and highest finite value (NaN, NaN if none).
pub fn spread(values: &[f64]) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    finite.fold((f64::NAN, f64::NAN), |(low, high), v| {
        (low.min(v), high.max(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_ignores_non_finite_values() {
        assert_eq!(spread(&[40.0, f64::NAN, 10.0, 25.0]), (10.0, 40.0));
        let (low, high) = spread(&[f64::NAN]);
        assert!(low.is_nan() && high.is_nan());
    }

    #[test]
    fn sweeps_every_optimizer_at_every_learning_rate() {
        let args = ExperimentArgs::new(Scale::Cpu, "out");
        let runs = runs(&args);
        assert_eq!(runs.len(), 12);
        assert_eq!(runs[0].name, "radam-lr0.1");
        assert_eq!(runs[11].name, "sgd-lr0.003");
        let parsed = CifarArgs::try_parse_from(
            std::iter::once("x".to_string()).chain(runs[5].flags.iter().cloned()),
        )
        .unwrap();
        assert_eq!(parsed.train.lr, Some(0.03));
        assert_eq!(parsed.depth, Some(8));

        let with_lr = ExperimentArgs {
            lr: Some(0.1),
            ..args
        };
        let error = run(&with_lr).unwrap_err().to_string();
        assert!(error.contains("sweeps its own learning rates"), "{error}");
    }
}
