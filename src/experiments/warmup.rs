//! `warmup`: the paper's ablation on the translation task (Liu et al. 2020, §3): Adam without
//! warmup, Adam with linear warmup, RAdam without warmup, and the two controls of the variance
//! hypothesis — Adam-2k (only `v_t` is updated for the first k steps) and Adam-eps (ε = 1e-4) —
//! with the same seed, learning rate and budget. Also the histogram of |gradient| over the first
//! updates of Adam with and without warmup (the paper's Figure 2).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use clap::Parser;

use super::seeds::{OverSeeds, series_over_seeds};
use super::warmup_search::{
    CPU_STEPS, SearchSetting, WARMUP_FRACTION, budget_flags, cheapest_failing,
};
use super::{
    ExperimentArgs, PlannedRun, RunOutcome, Scale, format_table, regime_line, run_all, save_figure,
    write_file,
};
use crate::figure::{Figure, Panel, Series};
use crate::harness::HarnessError;
use crate::harness::history::Phase;
use crate::run_dir::GRADIENT_HISTOGRAM;
use crate::tasks::nmt::{self, NmtArgs};

/// Steps of warmup, Adam-2k's frozen steps, and the updates whose gradients are histogrammed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmupPlan {
    /// Linear warmup steps of "Adam + warmup".
    pub warmup_steps: usize,
    /// Adam-2k's k.
    pub frozen_steps: usize,
    /// Updates recorded in the gradient histogram.
    pub histogram_steps: usize,
}

/// The setting of the ablation at `cpu` scale: `--setting`, else the cheapest in which
/// `experiments warmup-search` found Adam without warmup to fail (read from its `search.csv`
/// under `--out`), with `--lr` replacing its learning rate; `None` at the other scales, which
/// train the task's model.
///
/// # Errors
/// At `cpu` scale without `--setting`, when the search has not been run or found no failing
/// setting (what to do, in one line); `--setting` at another scale.
pub fn setting(args: &ExperimentArgs) -> Result<Option<SearchSetting>, HarnessError> {
    if args.scale != Scale::Cpu {
        args.refuse_setting(&format!("warmup --scale {:?}", args.scale).to_lowercase())?;
        return Ok(None);
    }
    let setting = match args.setting {
        Some(setting) => setting,
        None => {
            let path = args.out.join("warmup-search").join("search.csv");
            let text = std::fs::read_to_string(&path).map_err(|_| {
                HarnessError::Invalid(format!(
                    "warmup --scale cpu runs at the setting warmup-search finds, and {} does not \
                     exist: run `experiments warmup-search --out {}` first, or name a setting \
                     with --setting (e.g. L2-d64-lr0.003-b0.999)",
                    path.display(),
                    args.out.display()
                ))
            })?;
            cheapest_failing(&text)
                .map_err(|error| HarnessError::Invalid(format!("{}: {error}", path.display())))?
                .ok_or_else(|| {
                    HarnessError::Invalid(format!(
                        "warmup-search found no setting in which Adam without warmup fails (see \
                         {}): name one to run the ablation at with --setting",
                        path.display()
                    ))
                })?
        }
    };
    Ok(Some(SearchSetting {
        lr: args.lr.unwrap_or(setting.lr),
        ..setting
    }))
}

/// The plan of each scale. `cpu` warms up over the search's [`WARMUP_FRACTION`] of its
/// [`CPU_STEPS`]; Adam-2k's k is half the warmup, as the paper's k = 2000 is to its 4000 warmup
/// steps.
pub fn plan(scale: Scale) -> WarmupPlan {
    match scale {
        Scale::Tiny => WarmupPlan {
            warmup_steps: 5,
            frozen_steps: 5,
            histogram_steps: 5,
        },
        Scale::Cpu => {
            let warmup_steps = (WARMUP_FRACTION * CPU_STEPS as f64).round() as usize;
            WarmupPlan {
                warmup_steps,
                frozen_steps: warmup_steps / 2,
                histogram_steps: 40,
            }
        }
        // The paper: 4000 warmup steps for Adam, k = 2000 for Adam-2k.
        Scale::Paper => WarmupPlan {
            warmup_steps: 4000,
            frozen_steps: crate::harness::optimizer_choice::default_frozen_steps(),
            histogram_steps: 100,
        },
    }
}

/// The task flags every run of the ablation shares at `scale`, `--lr` replacing the task's
/// learning rate. `cpu`: the model and Adam's hyper-parameters of `setting` with the search's
/// data and budget, and a test set for BLEU; `tiny` and `paper`: the task's model at PyTorch's
/// β2 (with fairseq's 0.98, the task's default, ρ∞ = 99 and the early variance problem this
/// ablation is about is much smaller).
pub fn task_flags(scale: Scale, lr: Option<f64>, setting: Option<SearchSetting>) -> Vec<String> {
    let mut flags: Vec<String> = match scale {
        Scale::Tiny => vec!["--size", "tiny", "--test-sentences", "10", "--beam", "2"],
        Scale::Cpu => budget_flags(Scale::Cpu)
            .into_iter()
            .chain(["--test-sentences", "50"])
            .collect(),
        Scale::Paper => vec!["--size", "paper"],
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    match setting {
        Some(setting) => flags.extend(setting.model_flags()),
        None => {
            flags.extend(["--beta-2".to_string(), TASK_BETA_2.to_string()]);
            if let Some(lr) = lr {
                flags.extend(["--lr".to_string(), lr.to_string()]);
            }
        }
    }
    flags
}

/// β2 of every run at the scales that train the task's model (PyTorch's default).
const TASK_BETA_2: f32 = 0.999;

/// The five runs of the ablation, every one once per seed (`adam-seed0`, `adam-seed1`, …,
/// `adam-warmup-seed0`, …).
pub fn runs(args: &ExperimentArgs, setting: Option<SearchSetting>) -> Vec<PlannedRun> {
    args.seeded(methods(args, setting))
}

/// The five optimizers of the ablation, one run each before seeds are added.
pub fn methods(args: &ExperimentArgs, setting: Option<SearchSetting>) -> Vec<PlannedRun> {
    let plan = plan(args.scale);
    let task = task_flags(args.scale, args.lr, setting);
    let task: Vec<&str> = task.iter().map(String::as_str).collect();
    let common = args.common_flags(&task);
    let histogram = plan.histogram_steps.to_string();
    let warmup = plan.warmup_steps.to_string();
    let frozen = plan.frozen_steps.to_string();
    vec![
        PlannedRun::new(
            "adam",
            &["--optimizer", "adam", "--gradient-histogram", &histogram],
        ),
        PlannedRun::new(
            "adam-warmup",
            &[
                "--optimizer",
                "adam",
                "--warmup",
                &warmup,
                "--gradient-histogram",
                &histogram,
            ],
        ),
        PlannedRun::new("radam", &["--optimizer", "radam"]),
        PlannedRun::new(
            "adam-2k",
            &["--optimizer", "adam-2k", "--frozen-steps", &frozen],
        ),
        PlannedRun::new("adam-eps", &["--optimizer", "adam", "--epsilon", "1e-4"]),
    ]
    .into_iter()
    .map(|run| run.with(&common))
    .collect()
}

/// Runs the ablation; writes `results.csv`, `curves.png`, `gradient_histogram.png` and
/// `summary.txt` into `--out/warmup/` (each run's own artifacts in a sub-directory), and returns
/// the summary it prints.
///
/// # Errors
/// A run that fails (bad data directory, unresumable run), or unwritable files.
pub fn run(args: &ExperimentArgs) -> Result<String, HarnessError> {
    args.refuse_ledger("warmup")?;
    let setting = setting(args)?;
    // Runs are reused by name: each setting and learning rate has a directory of its own.
    let dir = args.output_dir(&match (setting, args.lr) {
        (Some(setting), _) => format!("warmup-{}", setting.name()),
        (None, Some(lr)) => format!("warmup-lr{lr}"),
        (None, None) => "warmup".to_string(),
    })?;
    let plan = plan(args.scale);
    let seeds = args.seed_count();
    let runs = runs(args, setting);
    let outcomes = run_all(&dir, &runs, |flags| {
        let args = NmtArgs::try_parse_from(flags)
            .map_err(|error| HarnessError::Invalid(error.to_string()))?;
        nmt::run(args)
    })?;
    let labels = [
        "Adam, no warmup".to_string(),
        format!("Adam, warmup {}", plan.warmup_steps),
        "RAdam, no warmup".to_string(),
        format!("Adam-2k (k = {})", plan.frozen_steps),
        "Adam-eps (ε = 1e-4)".to_string(),
    ];
    // The outcomes of one optimizer, its seeds in order.
    let groups: Vec<&[RunOutcome]> = outcomes.chunks(seeds).collect();

    let mut csv = String::from(
        "run,seed,train_loss,valid_loss,train_perplexity,valid_perplexity,test_bleu,seconds\n",
    );
    let mut rows = Vec::new();
    for ((method, label), group) in methods(args, setting).iter().zip(&labels).zip(&groups) {
        let mut per_seed: [Vec<f64>; 6] = Default::default();
        for (seed, outcome) in group.iter().enumerate() {
            let last = |split, metric| outcome.final_value(split, metric);
            let values = [
                last(Phase::Train, "Loss"),
                last(Phase::Valid, "Loss"),
                last(Phase::Train, "Perplexity"),
                last(Phase::Valid, "Perplexity"),
                outcome.result("test BLEU").unwrap_or(f64::NAN),
                outcome.seconds,
            ];
            writeln!(
                csv,
                "{},{seed},{},{},{},{},{},{:.1}",
                method.name, values[0], values[1], values[2], values[3], values[4], values[5]
            )
            .unwrap();
            for (column, value) in per_seed.iter_mut().zip(values) {
                column.push(value);
            }
        }
        let [train, valid, _, valid_ppl, bleu, seconds] = per_seed.map(|v| OverSeeds::of(&v));
        rows.push(vec![
            label.clone(),
            format!("{train:.3}"),
            format!("{valid:.3}"),
            format!("{valid_ppl:.1}"),
            format!("{bleu:.2}"),
            format!("{:.0} s", seconds.mean),
        ]);
    }
    write_file(&dir.join("results.csv"), &csv)?;

    let panels = [
        (Phase::Train, "Loss", false),
        (Phase::Valid, "Loss", false),
        (Phase::Train, "Perplexity", true),
        (Phase::Valid, "Perplexity", true),
    ]
    .into_iter()
    .map(|(split, metric, log)| {
        let split_name = match split {
            Phase::Train => "train",
            Phase::Valid => "valid",
        };
        let mut panel = Panel::new(format!("{split_name} {metric}"), "epoch", metric);
        if log {
            panel = panel.log_y();
        }
        for (label, group) in labels.iter().zip(&groups) {
            let curves: Vec<Vec<(f64, f64)>> = group
                .iter()
                .map(|outcome| outcome.curve(split, metric))
                .collect();
            panel = panel.with(series_over_seeds(label.clone(), &curves));
        }
        panel
    })
    .collect();
    let band = if seeds > 1 {
        format!(" (mean of {seeds} seeds ± std)")
    } else {
        String::new()
    };
    let mut figure = Figure::new(
        format!("Warmup ablation: Transformer translation{band}"),
        panels,
    );
    figure.columns = 2;
    save_figure(&figure, &dir.join("curves.png"));

    // The histograms of the first seed's two Adam runs.
    let histogram_panels = ["adam-seed0", "adam-warmup-seed0"]
        .iter()
        .zip([&labels[0], &labels[1]])
        .filter_map(|(run, label)| {
            let path = dir.join(run).join(GRADIENT_HISTOGRAM);
            let histograms = read_histograms(&path).ok()?;
            Some(histogram_panel(label, &histograms))
        })
        .collect();
    let mut figure = Figure::new(
        "|gradient| over the first updates (fraction of entries per bin, seed 0)",
        histogram_panels,
    );
    figure.columns = 2;
    save_figure(&figure, &dir.join("gradient_histogram.png"));

    let (model, lr, beta_2) = match setting {
        Some(setting) => (
            format!(
                "post-norm {} + {} layers of d {} (setting {})",
                setting.layers,
                setting.layers,
                setting.d_model,
                setting.name()
            ),
            setting.lr.to_string(),
            setting.beta_2,
        ),
        None => (
            "the task's model".to_string(),
            args.lr
                .map_or_else(|| "(the task's)".to_string(), |lr| lr.to_string()),
            TASK_BETA_2,
        ),
    };
    let mut summary = format!(
        "Warmup ablation ({:?} scale; {model}; seeds 0–{} for each optimizer, mean ± std; same \
         epochs, learning rate {lr} and β2 {beta_2}; RAdam = --radam torch):\n",
        args.scale,
        seeds - 1,
    );
    summary.push_str(&format_table(
        &[
            "optimizer",
            "train loss",
            "valid loss",
            "valid ppl",
            "test BLEU",
            "time",
        ],
        &rows,
    ));
    summary.push_str(&regime_line(
        outcomes.iter().map(|o| o.steps).max().unwrap_or(0),
        beta_2,
    ));
    write_file(&dir.join("summary.txt"), &summary)?;
    print!("{summary}");
    Ok(summary)
}

/// Per step, the `(bin centre, fraction)` pairs of a gradient-histogram CSV.
pub fn read_histograms(path: &Path) -> Result<BTreeMap<usize, Vec<(f64, f64)>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut histograms: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let parsed = (|| -> Option<(usize, f64, f64, f64)> {
            Some((
                fields.first()?.parse().ok()?,
                fields.get(1)?.parse().ok()?,
                fields.get(2)?.parse().ok()?,
                fields.get(3)?.parse().ok()?,
            ))
        })();
        let Some((step, low, high, fraction)) = parsed.filter(|_| fields.len() == 4) else {
            return Err(format!("{}:{}: malformed line", path.display(), number + 1));
        };
        histograms
            .entry(step)
            .or_default()
            .push(((low + high) / 2.0, fraction));
    }
    Ok(histograms)
}

/// A panel with the histograms of a few steps, spread geometrically over those recorded.
fn histogram_panel(label: &str, histograms: &BTreeMap<usize, Vec<(f64, f64)>>) -> Panel {
    let last = histograms.keys().next_back().copied().unwrap_or(1);
    let mut steps: Vec<usize> = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .filter(|&step| step <= last)
        .collect();
    if steps.last() != Some(&last) {
        steps.push(last);
    }
    let mut panel = Panel::new(label, "log10 |g|", "fraction of entries");
    for step in steps {
        if let Some(points) = histograms.get(&step) {
            panel = panel.with(Series::new(format!("update {step}"), points.clone()));
        }
    }
    panel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_read_back_and_reject_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(
            &path,
            "step,log10_low,log10_high,fraction\n1,-1,-0.75,0.5\n1,-0.75,-0.5,0.5\n2,-1,-0.75,1\n",
        )
        .unwrap();
        let histograms = read_histograms(&path).unwrap();
        assert_eq!(histograms[&1], vec![(-0.875, 0.5), (-0.625, 0.5)]);
        assert_eq!(histograms[&2], vec![(-0.875, 1.0)]);
        let panel = histogram_panel("Adam", &histograms);
        assert_eq!(panel.series.len(), 2);

        std::fs::write(&path, "step,log10_low,log10_high,fraction\n1,-1,x,0.5\n").unwrap();
        assert!(
            read_histograms(&path)
                .unwrap_err()
                .ends_with("h.csv:2: malformed line")
        );
    }

    #[test]
    fn every_run_shares_the_seed_and_budget_and_differs_in_its_optimizer() {
        let found = SearchSetting::parse("L4-d64-lr0.003-b0.98").unwrap();
        let args = ExperimentArgs {
            setting: Some(found),
            ..ExperimentArgs::new(Scale::Cpu, "out")
        };
        let setting = setting(&args).unwrap();
        assert_eq!(setting, Some(found));
        let runs = runs(&args, setting);
        // Five optimizers × three seeds, the seeds of one optimizer together.
        assert_eq!(runs.len(), 15);
        assert_eq!(runs[1].name, "adam-seed1");
        assert_eq!(runs[3].name, "adam-warmup-seed0");
        let parse = |flags: &[String]| {
            NmtArgs::try_parse_from(std::iter::once("experiment".to_string()).chain(flags.to_vec()))
                .unwrap()
        };
        for (index, run) in runs.iter().enumerate() {
            let parsed = parse(&run.flags);
            // The search's model, data and budget: 14 epochs of 146 steps.
            assert_eq!(parsed.train.epochs, Some(14), "{}", run.name);
            assert_eq!(parsed.pairs, Some(4000), "{}", run.name);
            assert_eq!(parsed.norm, Some(nmt::NormPlacement::Post), "{}", run.name);
            assert_eq!(
                (parsed.layers, parsed.d_model),
                (Some(4), Some(64)),
                "{}",
                run.name
            );
            assert_eq!(parsed.train.seed, (index % 3) as u64, "{}", run.name);
            assert_eq!(parsed.train.lr, Some(3e-3), "{}", run.name);
            assert_eq!(parsed.train.beta_2, Some(0.98), "{}", run.name);
        }
        let methods = methods(&args, setting);
        // 10 % of 2044 steps, and k half of it.
        assert_eq!(parse(&methods[1].flags).train.warmup, 204);
        assert_eq!(parse(&methods[3].flags).train.frozen_steps, Some(102));
        assert_eq!(parse(&methods[4].flags).train.epsilon, Some(1e-4));

        // --lr replaces the setting's learning rate.
        let faster = ExperimentArgs {
            lr: Some(5e-3),
            ..args.clone()
        };
        let faster_setting = super::setting(&faster).unwrap();
        assert_eq!(faster_setting.unwrap().name(), "L4-d64-lr0.005-b0.98");
        assert_eq!(
            parse(&super::methods(&faster, faster_setting)[2].flags)
                .train
                .lr,
            Some(5e-3)
        );
        // The other scales keep the task's model and learning rate at β2 0.999.
        let tiny_args = ExperimentArgs::new(Scale::Tiny, "out");
        let tiny = parse(&super::methods(&tiny_args, None)[0].flags);
        assert_eq!((tiny.train.lr, tiny.train.beta_2), (None, Some(0.999)));
        assert_eq!(tiny.norm, None);
        let error = super::setting(&ExperimentArgs {
            setting: Some(found),
            ..tiny_args
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("only `warmup --scale cpu`"),
            "{error}"
        );
    }

    #[test]
    fn the_cpu_setting_comes_from_the_search_or_the_error_says_how_to_get_one() {
        let out = tempfile::tempdir().unwrap();
        let args = ExperimentArgs::new(Scale::Cpu, out.path());
        let error = setting(&args).unwrap_err().to_string();
        assert!(
            error.contains("run `experiments warmup-search --out"),
            "{error}"
        );
        let dir = out.path().join("warmup-search");
        std::fs::create_dir_all(&dir).unwrap();
        let header = super::super::warmup_search::record::SEARCH_CSV_HEADER;
        std::fs::write(
            dir.join("search.csv"),
            format!("{header}\n2,64,0.001,0.98,0,2016,1.4,1.4,false,false\n"),
        )
        .unwrap();
        let error = setting(&args).unwrap_err().to_string();
        assert!(error.contains("found no setting"), "{error}");
        std::fs::write(
            dir.join("search.csv"),
            format!(
                "{header}\n2,64,0.001,0.98,0,2016,1.4,1.4,false,false\n\
                 4,64,0.003,0.999,0,2016,6.0,1.4,true,true\n"
            ),
        )
        .unwrap();
        assert_eq!(
            setting(&args).unwrap().unwrap().name(),
            "L4-d64-lr0.003-b0.999"
        );
    }
}
