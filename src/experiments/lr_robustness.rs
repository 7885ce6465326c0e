//! `lr-robustness`: ResNet on CIFAR (built-in images or `--data-dir`) trained with learning rates
//! 0.1, 0.03, 0.01 and 0.003 by RAdam, Adam and SGD with momentum (Liu et al. 2020, §5.2: RAdam's
//! curves stay together across learning rates, Adam's and SGD's spread). Reports the spread of
//! the final accuracy per optimizer.

use std::fmt::Write as _;

use clap::Parser;

use super::seeds::{OverSeeds, series_over_seeds};
use super::{
    ExperimentArgs, PlannedRun, RunOutcome, Scale, format_table, regime_line, run_all, save_figure,
    write_file,
};
use crate::figure::{Figure, Panel};
use crate::harness::HarnessError;
use crate::harness::history::Phase;
use crate::tasks::cifar::{self, CifarArgs};

/// The learning rates of the sweep.
pub const LEARNING_RATES: [f64; 4] = [0.1, 0.03, 0.01, 0.003];
/// The optimizers of the sweep, as `--optimizer` values, with their labels.
pub const OPTIMIZERS: [(&str, &str); 3] = [("radam", "RAdam"), ("adam", "Adam"), ("sgd", "SGD")];
/// The RAdam of the sweep: the authors' code, which drew the paper's robustness figures.
pub const RADAM_VARIANT: &str = "official";

/// The task flags of each scale.
pub fn task_flags(scale: Scale) -> Vec<&'static str> {
    match scale {
        Scale::Tiny => vec!["--size", "tiny", "--images", "64", "--batch-size", "16"],
        // 3600 steps (75 per epoch × 48), so r_t > 0.8 over the second half. Chosen by a rule
        // fixed before any sweep: the largest image, then the widest ResNet-8, whose 36 runs fit
        // in 55 minutes at the step time measured on 2 cores (16×16 width 8: 28 ms a step at
        // batch 32, 60 min — too slow; 8×8 width 8: 14 ms, 30 min).
        Scale::Cpu => vec![
            "--size",
            "small",
            "--depth",
            "8",
            "--width",
            "8",
            "--image-size",
            "8",
            "--images",
            "2400",
            "--batch-size",
            "32",
            "--epochs",
            "48",
        ],
        Scale::Paper => vec!["--size", "paper"],
    }
}

/// The twelve configurations (every optimizer at every learning rate), each once per seed.
pub fn runs(args: &ExperimentArgs) -> Vec<PlannedRun> {
    args.seeded(configurations(args))
}

/// Every optimizer at every learning rate, before seeds are added.
pub fn configurations(args: &ExperimentArgs) -> Vec<PlannedRun> {
    let common = args.common_flags(&task_flags(args.scale));
    let mut runs = Vec::new();
    for (optimizer, _) in OPTIMIZERS {
        for lr in LEARNING_RATES {
            let lr = lr.to_string();
            let mut flags = vec!["--optimizer", optimizer, "--lr", &lr];
            if optimizer == "radam" {
                flags.extend(["--radam", RADAM_VARIANT]);
            }
            runs.push(PlannedRun::new(format!("{optimizer}-lr{lr}"), &flags).with(&common));
        }
    }
    runs
}

/// The flags the sweep refuses: `--setting`, and `--lr` (it sweeps its own learning rates).
fn refuse_flags(args: &ExperimentArgs) -> Result<(), HarnessError> {
    args.refuse_setting("lr-robustness")?;
    args.refuse_ledger("lr-robustness")?;
    match args.lr {
        Some(_) => Err(HarnessError::Invalid(
            "--lr: lr-robustness sweeps its own learning rates (0.1, 0.03, 0.01, 0.003)"
                .to_string(),
        )),
        None => Ok(()),
    }
}

/// Runs the sweep; writes `results.csv`, `curves.png` and `summary.txt` into
/// `--out/lr-robustness/`, and returns the summary it prints.
///
/// # Errors
/// A run that fails (bad data directory, unresumable run), or unwritable files.
pub fn run(args: &ExperimentArgs) -> Result<String, HarnessError> {
    refuse_flags(args)?;
    let dir = args.output_dir("lr-robustness")?;
    let runs = runs(args);
    let outcomes = run_all(&dir, &runs, |flags| {
        let args = CifarArgs::try_parse_from(flags)
            .map_err(|error| HarnessError::Invalid(error.to_string()))?;
        cifar::run(args)
    })?;

    let seeds = args.seed_count();
    // The outcomes of one configuration, its seeds in order.
    let groups: Vec<&[RunOutcome]> = outcomes.chunks(seeds).collect();
    let mut csv = String::from("optimizer,lr,seed,valid_accuracy,valid_loss,train_loss,seconds\n");
    let mut panels = Vec::new();
    let mut rows = Vec::new();
    for (index, (optimizer, label)) in OPTIMIZERS.iter().enumerate() {
        let mut accuracy_panel =
            Panel::new(format!("{label}: valid accuracy"), "epoch", "accuracy (%)");
        let mut loss_panel = Panel::new(format!("{label}: train loss"), "epoch", "loss").log_y();
        let mut finals = Vec::new();
        for (lr_index, lr) in LEARNING_RATES.iter().enumerate() {
            let group = groups[index * LEARNING_RATES.len() + lr_index];
            let curves = |split, metric| -> Vec<Vec<(f64, f64)>> {
                group.iter().map(|o| o.curve(split, metric)).collect()
            };
            accuracy_panel = accuracy_panel.with(series_over_seeds(
                format!("lr {lr}"),
                &curves(Phase::Valid, "Accuracy"),
            ));
            loss_panel = loss_panel.with(series_over_seeds(
                format!("lr {lr}"),
                &curves(Phase::Train, "Loss"),
            ));
            let mut accuracies = Vec::new();
            for (seed, outcome) in group.iter().enumerate() {
                let value = |split, metric| outcome.final_value(split, metric);
                let accuracy = value(Phase::Valid, "Accuracy");
                accuracies.push(accuracy);
                writeln!(
                    csv,
                    "{optimizer},{lr},{seed},{accuracy},{},{},{:.1}",
                    value(Phase::Valid, "Loss"),
                    value(Phase::Train, "Loss"),
                    outcome.seconds
                )
                .unwrap();
            }
            finals.push(OverSeeds::of(&accuracies));
        }
        panels.push(accuracy_panel);
        panels.push(loss_panel);
        let means: Vec<f64> = finals.iter().map(|f| f.mean).collect();
        let (low, high) = spread(&means);
        let mut row = vec![label.to_string()];
        row.extend(finals.iter().map(|f| format!("{f:.1}")));
        row.push(format!("{:.1}", high - low));
        rows.push(row);
    }
    write_file(&dir.join("results.csv"), &csv)?;
    let mut figure = Figure::new(
        format!("Learning-rate robustness: ResNet on CIFAR ({seeds} seed(s), mean ± std)"),
        panels,
    );
    figure.columns = 2;
    save_figure(&figure, &dir.join("curves.png"));

    let header: Vec<String> = std::iter::once("optimizer".to_string())
        .chain(LEARNING_RATES.iter().map(|lr| format!("lr {lr}")))
        .chain(std::iter::once("spread".to_string()))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut summary = format!(
        "Final validation accuracy (%) by learning rate ({:?} scale; seeds 0–{}, mean ± std; \
         RAdam = --radam {RADAM_VARIANT}); spread = max − min of the means:\n",
        args.scale,
        seeds - 1
    );
    summary.push_str(&format_table(&header, &rows));
    summary.push_str(&regime_line(
        outcomes.iter().map(|o| o.steps).max().unwrap_or(0),
        // The CIFAR task's β2, the same at every size.
        cifar::defaults(crate::harness::SizePreset::Small).beta_2,
    ));
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
        let runs = configurations(&args);
        assert_eq!(runs.len(), 12);
        assert_eq!(runs[0].name, "radam-lr0.1");
        assert_eq!(runs[11].name, "sgd-lr0.003");
        let seeded = super::runs(&args);
        assert_eq!(seeded.len(), 36);
        assert_eq!(seeded[2].name, "radam-lr0.1-seed2");
        let parsed = CifarArgs::try_parse_from(
            std::iter::once("x".to_string()).chain(runs[5].flags.iter().cloned()),
        )
        .unwrap();
        assert_eq!(parsed.train.lr, Some(0.03));
        assert_eq!(parsed.depth, Some(8));
        assert_eq!((parsed.image_size, parsed.width), (Some(8), 8));
        // 2400 images at batch 32 for 48 epochs: 3600 steps, r_t > 0.8 from step 1800 on.
        let steps_per_epoch = parsed
            .images
            .unwrap()
            .div_ceil(parsed.train.batch_size.unwrap());
        assert_eq!(steps_per_epoch * parsed.train.epochs.unwrap(), 3600);
        let radam = CifarArgs::try_parse_from(
            std::iter::once("x".to_string()).chain(runs[0].flags.iter().cloned()),
        )
        .unwrap();
        assert_eq!(
            radam.train.radam,
            crate::harness::optimizer_choice::RAdamVariant::Official
        );

        let with_lr = ExperimentArgs {
            lr: Some(0.1),
            ..args
        };
        // Not `run`: a unit test that calls it compiles every task on both backends into the
        // unit-test binary, five minutes of CI's build.
        let error = refuse_flags(&with_lr).unwrap_err().to_string();
        assert!(error.contains("sweeps its own learning rates"), "{error}");
    }
}
