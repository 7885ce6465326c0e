//! `warmup-search`: the setting in which the paper's warmup problem shows, found with Adam alone.
//!
//! The paper's first claim (Liu et al. 2020, §3) is that Adam *without* warmup fails to train a
//! post-norm Transformer that Adam *with* warmup trains. Whether a CPU-sized model shows that
//! failure at all is a question of its own, so this search answers it before any RAdam run:
//! over a [grid](grid) of post-norm Transformers, cheapest first, it trains Adam with and without
//! a linear warmup (a [fixed fraction](WARMUP_FRACTION) of the run) on the same seeds, and applies
//! a criterion fixed before the search ([`FAILURE_RATIO`], [`SEEDS_TO_DECIDE`]). It stops after
//! the cheapest model size at which some setting fails; no RAdam result is looked at.
//!
//! Seeds are run in order and a setting's verdict is taken as soon as it is decided: "fails in at
//! least 2 of 3 seeds" is decided by the first two seeds that agree, so the third seed is only
//! trained when the first two disagree — the verdict is the same as with all three.

mod ledger;
pub(super) mod record;

use std::path::Path;

use clap::Parser;

use super::{ExperimentArgs, PlannedRun, Scale, run_all, save_figure, write_file};
use crate::harness::HarnessError;
use crate::harness::history::Phase;
use crate::tasks::nmt::{self, NmtArgs};

use ledger::Ledger;
pub use record::cheapest_failing;
use record::{figure, search_csv, summarise};

/// Adam without warmup *fails* on a seed when its final training loss is at least this many
/// times Adam-with-warmup's on the same seed (or when it diverged).
pub const FAILURE_RATIO: f64 = 1.5;
/// Seeds per setting.
pub const SEEDS: usize = 3;
/// Seeds that must agree for a verdict: a setting fails when this many seeds fail (2 of 3).
pub const SEEDS_TO_DECIDE: usize = 2;
/// The warmup of "Adam with warmup": this fraction of the run's steps, linear from 0.
pub const WARMUP_FRACTION: f64 = 0.1;

/// The file a diverged run leaves in its directory, so that a second search reuses the verdict.
const DIVERGED: &str = "diverged.txt";

/// One point of the search grid: a post-norm Transformer and Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchSetting {
    /// Layers of the encoder and of the decoder.
    pub layers: usize,
    /// Model width (feed-forward layers twice as wide).
    pub d_model: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's β2.
    pub beta_2: f32,
}

impl SearchSetting {
    /// The compute per token the search orders by: layers · d_model².
    pub fn cost(&self) -> usize {
        self.layers * self.d_model * self.d_model
    }

    /// The directory name of the setting, e.g. `L2-d64-lr0.001-b0.999`.
    pub fn name(&self) -> String {
        format!(
            "L{}-d{}-lr{}-b{}",
            self.layers, self.d_model, self.lr, self.beta_2
        )
    }

    /// The setting named `name` as [`name`](Self::name) writes it, e.g. `L2-d64-lr0.001-b0.999`.
    ///
    /// # Errors
    /// A name of another form, in one line.
    pub fn parse(name: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "`{name}` is not a warmup-search setting: expected L<layers>-d<width>-lr<rate>-b<β2>, \
                 e.g. L2-d64-lr0.001-b0.999"
            )
        };
        let fields: Vec<&str> = name.split('-').collect();
        let [layers, d_model, lr, beta_2] = fields[..] else {
            return Err(invalid());
        };
        fn number<T: std::str::FromStr>(text: &str, prefix: &str) -> Option<T> {
            text.strip_prefix(prefix)?.parse().ok()
        }
        let setting = (|| {
            Some(SearchSetting {
                layers: number(layers, "L")?,
                d_model: number(d_model, "d")?,
                lr: number(lr, "lr")?,
                beta_2: number(beta_2, "b")?,
            })
        })()
        .ok_or_else(invalid)?;
        let valid = setting.layers > 0
            && setting.d_model > 0
            && setting.lr > 0.0
            && setting.lr.is_finite()
            && (0.0..1.0).contains(&setting.beta_2);
        if valid { Ok(setting) } else { Err(invalid()) }
    }

    /// The model and Adam hyper-parameters of the setting as task flags (post-norm, fairseq's
    /// architecture, as the paper's model), without the optimizer: shared by the search's runs
    /// and the `warmup` ablation run at the setting found.
    pub fn model_flags(&self) -> Vec<String> {
        [
            "--architecture",
            "fairseq",
            "--norm",
            "post",
            "--layers",
            &self.layers.to_string(),
            "--d-model",
            &self.d_model.to_string(),
            "--lr",
            &self.lr.to_string(),
            "--beta-2",
            &self.beta_2.to_string(),
        ]
        .iter()
        .map(|flag| flag.to_string())
        .collect()
    }

    /// The task flags of the setting's runs (Adam), before the seed and the warmup.
    fn flags(&self) -> Vec<String> {
        let mut flags = vec!["--optimizer".to_string(), "adam".to_string()];
        flags.extend(self.model_flags());
        flags
    }
}

/// The grid of each scale, cheapest model first (the order the search goes in). `cpu`: layers
/// per side ∈ {2, 4, 6} × d_model ∈ {64, 128, 256} (by cost), lr ∈ {1e-3, 3e-3}, β2 ∈ {0.98,
/// 0.999} — fixed before the search was run.
pub fn grid(scale: Scale) -> Vec<SearchSetting> {
    let (models, lrs, betas): (Vec<(usize, usize)>, Vec<f64>, Vec<f32>) = match scale {
        Scale::Tiny => (vec![(1, 16), (2, 16)], vec![1e-3], vec![0.999]),
        Scale::Cpu | Scale::Paper => (
            vec![
                (2, 64),
                (4, 64),
                (6, 64),
                (2, 128),
                (4, 128),
                (6, 128),
                (2, 256),
            ],
            vec![1e-3, 3e-3],
            vec![0.98, 0.999],
        ),
    };
    let mut grid = Vec::new();
    for (layers, d_model) in models {
        for &beta_2 in &betas {
            for &lr in &lrs {
                grid.push(SearchSetting {
                    layers,
                    d_model,
                    lr,
                    beta_2,
                });
            }
        }
    }
    grid.sort_by_key(SearchSetting::cost);
    grid
}

/// Optimizer steps of a `cpu` run: the built-in pair's 4000 pairs of seed 0 in batches of 512
/// tokens are 146 steps an epoch (a test checks it), and [`budget_flags`] trains 14 epochs.
pub const CPU_STEPS: usize = 146 * 14;

/// The data and budget of every run of each scale. `cpu`: [`CPU_STEPS`] steps (measured: 2 ×
/// d64 takes ~90 ms a step on 2 cores, ~3 minutes a run).
pub fn budget_flags(scale: Scale) -> Vec<&'static str> {
    match scale {
        Scale::Tiny => vec!["--size", "tiny", "--pairs", "100"],
        Scale::Cpu | Scale::Paper => vec![
            "--size",
            "small",
            "--pairs",
            "4000",
            "--batch-size",
            "512",
            "--epochs",
            "14",
        ],
    }
}

/// The task flags of the search's runs: [`budget_flags`], and no test set (the verdict is taken
/// on the training loss).
pub fn task_flags(scale: Scale) -> Vec<&'static str> {
    let mut flags = budget_flags(scale);
    flags.extend(["--test-sentences", "0"]);
    flags
}

/// Whether one seed's Adam without warmup failed: its final training loss is at least
/// [`FAILURE_RATIO`] times that with warmup, or it diverged (a non-finite loss). A diverged run
/// *with* warmup makes the comparison meaningless, and counts as no failure.
pub fn seed_fails(without_warmup: f64, with_warmup: f64) -> bool {
    if !with_warmup.is_finite() {
        return false;
    }
    !without_warmup.is_finite() || without_warmup >= FAILURE_RATIO * with_warmup
}

/// A setting's verdict from the seeds run so far, `(without warmup, with warmup)` final losses
/// each: `Some(true)` once [`SEEDS_TO_DECIDE`] seeds failed, `Some(false)` once as many did not,
/// `None` while undecided.
pub fn verdict(seeds: &[(f64, f64)]) -> Option<bool> {
    let failed = seeds.iter().filter(|(a, b)| seed_fails(*a, *b)).count();
    if failed >= SEEDS_TO_DECIDE {
        Some(true)
    } else if seeds.len() - failed >= SEEDS_TO_DECIDE {
        Some(false)
    } else {
        None
    }
}

/// The last epoch's training loss of a curve, `∞` when the curve is empty or its last value is
/// not finite (a diverged run).
pub fn final_loss(curve: &[(f64, f64)]) -> f64 {
    match curve.last() {
        Some(&(_, loss)) if loss.is_finite() => loss,
        _ => f64::INFINITY,
    }
}

/// What the search found for one setting.
#[derive(Clone, Debug)]
pub struct SettingResult {
    /// The setting.
    pub setting: SearchSetting,
    /// Per seed run: final training loss without and with warmup.
    pub seeds: Vec<(f64, f64)>,
    /// Whether Adam without warmup fails at this setting.
    pub fails: bool,
    /// Optimizer steps per run.
    pub steps: usize,
    /// Per seed run: the training-loss curves without and with warmup (empty for a diverged run).
    pub curves: Vec<(Curve, Curve)>,
}

/// A learning curve: `(epoch, value)` points.
pub type Curve = Vec<(f64, f64)>;

/// Runs the search; writes `search.csv`, `curves.png` and `summary.txt` into
/// `--out/warmup-search/` and returns the summary it prints.
///
/// # Errors
/// A run that fails other than by diverging, or unwritable files.
pub fn run(args: &ExperimentArgs) -> Result<String, HarnessError> {
    args.refuse_setting("warmup-search")?;
    if args.lr.is_some() {
        return Err(HarnessError::Invalid(
            "--lr: warmup-search sweeps its own learning rates".to_string(),
        ));
    }
    if args.seeds.is_some() {
        return Err(HarnessError::Invalid(format!(
            "--seeds: warmup-search's criterion fixes {SEEDS} seeds per setting"
        )));
    }
    let dir = args.output_dir("warmup-search")?;
    let mut ledger = args.ledger.as_deref().map(Ledger::open).transpose()?;
    let common = args.common_flags(&task_flags(args.scale));
    let mut results: Vec<SettingResult> = Vec::new();
    let mut failing_cost = None;
    for setting in grid(args.scale) {
        if failing_cost.is_some_and(|cost| setting.cost() > cost) {
            break;
        }
        println!("warmup-search: {}", setting.name());
        let result = search_setting(&dir, setting, &common, &mut ledger)?;
        if result.fails {
            failing_cost = Some(setting.cost());
        }
        results.push(result);
    }
    let summary = summarise(args.scale, &results);
    write_file(&dir.join("search.csv"), &search_csv(&results))?;
    save_figure(&figure(&results), &dir.join("curves.png"));
    write_file(&dir.join("summary.txt"), &summary)?;
    print!("{summary}");
    Ok(summary)
}

/// Trains seeds of `setting` in `search_dir/<setting>` (or finds them in the ledger) until its
/// verdict is decided.
fn search_setting(
    search_dir: &Path,
    setting: SearchSetting,
    common: &[String],
    ledger: &mut Option<Ledger>,
) -> Result<SettingResult, HarnessError> {
    let name = setting.name();
    let dir = &search_dir.join(&name);
    let mut seeds = Vec::new();
    let mut curves = Vec::new();
    let mut steps = 0;
    let mut fails = false;
    for seed in 0..SEEDS {
        let seed_flags: Vec<String> = setting
            .flags()
            .into_iter()
            .chain(["--seed".to_string(), seed.to_string()])
            .chain(common.iter().cloned())
            .collect();
        let without = PlannedRun::new(format!("adam-seed{seed}"), &[]).with(&seed_flags);
        let without = train_or_find(dir, &name, &without, ledger)?;
        let with = PlannedRun::new(
            format!("adam-warmup-seed{seed}"),
            &["--warmup-ratio", &WARMUP_FRACTION.to_string()],
        )
        .with(&seed_flags);
        let with = train_or_find(dir, &name, &with, ledger)?;
        steps = steps.max(without.steps).max(with.steps);
        seeds.push((without.loss, with.loss));
        curves.push((without.curve, with.curve));
        if let Some(verdict) = verdict(&seeds) {
            fails = verdict;
            break;
        }
    }
    Ok(SettingResult {
        setting,
        seeds,
        fails,
        steps,
        curves,
    })
}

/// What one run of the search left: its final training loss (`∞` if it diverged), its optimizer
/// steps and its training-loss curve (both empty if it diverged).
struct SearchRun {
    loss: f64,
    steps: usize,
    curve: Curve,
}

impl SearchRun {
    const DIVERGED: SearchRun = SearchRun {
        loss: f64::INFINITY,
        steps: 0,
        curve: Vec::new(),
    };
}

/// The result of `run` of `setting`: from the ledger if it has the run, else trained in
/// `dir/<name>` (reusing a finished or diverged run there) and added to the ledger.
fn train_or_find(
    dir: &Path,
    setting: &str,
    run: &PlannedRun,
    ledger: &mut Option<Ledger>,
) -> Result<SearchRun, HarnessError> {
    if let Some(found) = ledger.as_ref().and_then(|ledger| ledger.find(setting, run)) {
        println!("warmup-search: {setting}/{} from the ledger", run.name);
        return Ok(found);
    }
    let result = train_or_diverge(dir, run)?;
    if let Some(ledger) = ledger {
        ledger.record(setting, run, &result)?;
    }
    Ok(result)
}

/// Trains `run` in `dir/<name>`, reusing a finished or diverged one.
fn train_or_diverge(dir: &Path, run: &PlannedRun) -> Result<SearchRun, HarnessError> {
    let marker = dir.join(&run.name).join(DIVERGED);
    if marker.exists() {
        return Ok(SearchRun::DIVERGED);
    }
    let outcome = run_all(dir, std::slice::from_ref(run), |flags| {
        let args = NmtArgs::try_parse_from(flags)
            .map_err(|error| HarnessError::Invalid(error.to_string()))?;
        nmt::run(args)
    });
    match outcome {
        Ok(outcomes) => {
            let outcome = &outcomes[0];
            let curve = outcome.curve(Phase::Train, "Loss");
            Ok(SearchRun {
                loss: final_loss(&curve),
                steps: outcome.steps,
                curve,
            })
        }
        Err(HarnessError::Diverged(message)) => {
            write_file(&marker, &format!("{message}\n"))?;
            Ok(SearchRun::DIVERGED)
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loss curve falling from 8 to `last` over five epochs.
    pub(super) fn curve(last: f64) -> Vec<(f64, f64)> {
        (1..=5)
            .map(|epoch| (epoch as f64, 8.0 + (last - 8.0) * epoch as f64 / 5.0))
            .collect()
    }

    #[test]
    fn a_seed_fails_when_its_loss_stalls_or_diverges() {
        // Stalls at 6 where warmup reaches 3: 6 ≥ 1.5 × 3.
        assert!(seed_fails(final_loss(&curve(6.0)), final_loss(&curve(3.0))));
        // 4.4 < 4.5: trains, if worse.
        assert!(!seed_fails(
            final_loss(&curve(4.4)),
            final_loss(&curve(3.0))
        ));
        // Diverged: the last value is NaN, or the curve is empty.
        let mut diverged = curve(3.0);
        diverged.push((6.0, f64::NAN));
        assert!(seed_fails(final_loss(&diverged), 3.0));
        assert!(seed_fails(final_loss(&[]), 3.0));
        // With warmup diverged: no comparison.
        assert!(!seed_fails(6.0, f64::INFINITY));
    }

    #[test]
    fn the_verdict_is_two_of_three_decided_by_the_first_seeds_that_agree() {
        let fail = (6.0, 3.0);
        let pass = (3.1, 3.0);
        assert_eq!(verdict(&[fail]), None);
        assert_eq!(verdict(&[fail, fail]), Some(true));
        assert_eq!(verdict(&[pass, pass]), Some(false));
        assert_eq!(verdict(&[fail, pass]), None);
        assert_eq!(verdict(&[fail, pass, fail]), Some(true));
        assert_eq!(verdict(&[pass, fail, pass]), Some(false));
    }

    #[test]
    fn settings_parse_back_from_their_names() {
        for setting in grid(Scale::Cpu) {
            assert_eq!(SearchSetting::parse(&setting.name()), Ok(setting));
        }
        for bad in [
            "L2-d64-lr0.001",
            "L2-d64-lr0.001-b1",
            "X2-d64-lr0.001-b0.9",
            "L0-d64-lr1-b0.9",
        ] {
            let error = SearchSetting::parse(bad).unwrap_err();
            assert!(
                error.starts_with(&format!("`{bad}` is not a warmup-search setting")),
                "{error}"
            );
        }
    }

    /// [`CPU_STEPS`] is what the search's data gives: seed 0's built-in pair as the translation
    /// task builds it (4000 training pairs and 200 others, a joint BPE of 600 pieces, pairs of at
    /// most 100 tokens) in batches of 512 tokens, 14 epochs.
    #[test]
    fn cpu_steps_are_the_steps_of_the_search_data() {
        use burn::data::dataset::Dataset;
        use radam_datasets::synthetic_translation::SyntheticTranslation;
        use radam_datasets::translation::{JointBpe, TokenBudgetDataset};
        let corpus = SyntheticTranslation::new(0).corpus(4000, 200, 0);
        let bpe = JointBpe::train(&corpus.train, 600).unwrap();
        let pairs = bpe.encode_pairs(&corpus.train).unwrap();
        let batches = TokenBudgetDataset::new(pairs, 512, 100).unwrap();
        assert_eq!(batches.len() * 14, CPU_STEPS);
    }

    #[test]
    fn the_grid_goes_cheapest_first_and_its_runs_parse() {
        let grid = grid(Scale::Cpu);
        assert_eq!(grid.len(), 7 * 2 * 2);
        assert!(grid.windows(2).all(|w| w[0].cost() <= w[1].cost()));
        assert_eq!((grid[0].layers, grid[0].d_model), (2, 64));
        let flags: Vec<String> = std::iter::once("x".to_string())
            .chain(grid[0].flags())
            .chain(task_flags(Scale::Cpu).iter().map(|f| f.to_string()))
            .collect();
        let parsed = NmtArgs::try_parse_from(flags).unwrap();
        assert_eq!(parsed.layers, Some(2));
        assert_eq!(parsed.norm, Some(nmt::NormPlacement::Post));
        assert_eq!(parsed.architecture, Some(nmt::Architecture::Fairseq));
        assert_eq!(parsed.test_sentences, Some(0));
    }
}
