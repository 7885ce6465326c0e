//! Kernels chosen by measurement, as cuDNN's benchmark mode chooses its convolution algorithms:
//! where several native kernels can compute an operation, the first call of each (operation,
//! shape class) times every candidate on that call's own inputs and keeps the fastest for the
//! rest of the process. The [dispatch](super::dispatch) says which kernels are candidates and
//! what a shape class is; this module times them, remembers the choices, and records them as
//! text so that a run can write them down and a resumed run can replay them (different kernels
//! sum in different orders, so a run stays exact across `--resume` only on the same kernels).
//!
//! The rule, fixed before any measurement: every candidate runs once untimed (caches, and the
//! choices of the kernels inside it), then up to [`TIMED_RUNS`] times or until
//! [`TIMING_BUDGET`] is spent; the one with the shortest run wins, the earlier candidate on a tie.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Timed runs of each candidate, at most.
pub const TIMED_RUNS: usize = 3;
/// Time after which a candidate is not run again (its first timed run always counts).
pub const TIMING_BUDGET: Duration = Duration::from_millis(30);

/// How the native kernels are chosen where several can compute an operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelSelection {
    /// Timed on the first call of each (operation, shape class); the fastest is kept.
    #[default]
    Measured,
    /// The dispatch table's fixed rules (thresholds measured on one CPU, an AMD Zen 5): nothing
    /// is timed, so every run on one CPU uses the same kernels.
    Fixed,
}

impl KernelSelection {
    /// `measured` or `fixed`, as the command line names them.
    ///
    /// # Errors
    /// Any other text.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "measured" => Ok(Self::Measured),
            "fixed" => Ok(Self::Fixed),
            other => Err(format!("{other}: expected measured or fixed")),
        }
    }

    /// How a log line names it: `measured` or `fixed rules`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Measured => "measured",
            Self::Fixed => "fixed rules",
        }
    }
}

/// The kernels chosen in this process, as text: one entry per (operation, shape class), keyed
/// `operation: shape class`, e.g. `"gemm convolution: m≤16 k≤256 n≤1024, a rows, b rows"` →
/// `"avx512-rows"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelChoices {
    /// How they were chosen.
    pub selection: KernelSelection,
    /// Kernel per (operation, shape class).
    pub kernels: BTreeMap<String, String>,
}

impl KernelChoices {
    /// One line for a log: how many shape classes each kernel won, per operation, e.g.
    /// `conv forward: implicit 5, im2col 2; gemm general: gemm 9`.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        for (key, kernel) in &self.kernels {
            // A key is `operation: shape class`.
            let operation = key.split_once(':').map_or(key.as_str(), |(head, _)| head);
            *counts
                .entry(operation)
                .or_default()
                .entry(kernel.as_str())
                .or_default() += 1;
        }
        if counts.is_empty() {
            return "none yet".to_string();
        }
        counts
            .iter()
            .map(|(operation, kernels)| {
                let won: Vec<String> = kernels
                    .iter()
                    .map(|(kernel, count)| format!("{kernel} {count}"))
                    .collect();
                format!("{operation}: {}", won.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A kernel that can be chosen: named by text in [`KernelChoices`].
pub(crate) trait Candidate: Copy + Eq + 'static {
    /// Every kernel of its kind.
    const ALL: &'static [Self];
    /// Its name in a record.
    fn name(self) -> &'static str;
    /// Whether it runs on AVX-512F only.
    fn needs_avx512(self) -> bool;
}

/// The choices of one kind of operation, by shape class `K`.
pub(crate) struct ChoiceTable<K, V> {
    chosen: RwLock<Option<HashMap<K, V>>>,
    /// Held while a shape class is timed: concurrent first calls wait for its choice.
    timing: Mutex<()>,
}

/// Whether the fixed rules are used instead of measurements.
static FIXED: AtomicBool = AtomicBool::new(false);
/// Every choice made so far, as text.
static RECORD: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
/// Choices to reuse (a resumed run's), as text.
static REPLAY: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());
/// Kernels that override every choice where one of them is a candidate ([`prefer`]), by name.
static PREFERRED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// From now on in this process, every choice whose candidates include a kernel named in
/// `kernels` takes the first such kernel (in the candidates' order), and every other choice its
/// fixed rules' kernel — untimed, unrecorded and not kept, so that clearing the preference
/// (`&[]`) restores the choices measured before. For tests that run a model on each kernel in
/// turn. The names must have been checked by the dispatch.
pub(crate) fn prefer(kernels: &[&str]) {
    *PREFERRED.write().expect("kernel preference poisoned") =
        kernels.iter().map(|name| name.to_string()).collect();
}

/// Chooses kernels by `selection` from now on, in this process.
pub fn select(selection: KernelSelection) {
    FIXED.store(selection == KernelSelection::Fixed, Ordering::Relaxed);
}

/// How kernels are chosen in this process.
pub fn selection() -> KernelSelection {
    if FIXED.load(Ordering::Relaxed) {
        KernelSelection::Fixed
    } else {
        KernelSelection::Measured
    }
}

/// The kernels chosen so far in this process, and the choices it was given to replay (which it
/// will use when their shape classes come).
pub fn choices() -> KernelChoices {
    KernelChoices {
        selection: selection(),
        kernels: RECORD.lock().expect("kernel record poisoned").clone(),
    }
}

/// Makes every later first call of a shape class in `kernels` use the kernel named there instead
/// of timing the candidates (a class already chosen in this process keeps its kernel). The names
/// must have been checked by the dispatch.
pub(crate) fn preload(kernels: &BTreeMap<String, String>) {
    let mut replay = REPLAY.write().expect("kernel replay poisoned");
    replay.extend(kernels.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Recorded at once, so that a run that replays choices records them before it uses them;
    // a shape class this process has already chosen keeps its kernel (the table's).
    let mut record = RECORD.lock().expect("kernel record poisoned");
    for (class, kernel) in kernels {
        record
            .entry(class.clone())
            .or_insert_with(|| kernel.clone());
    }
}

impl<K: Eq + Hash + Display + Copy, V: Candidate> ChoiceTable<K, V> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        Self {
            chosen: RwLock::new(None),
            timing: Mutex::new(()),
        }
    }

    /// The kernel for shape class `key` among `candidates()` (the first is the fixed rules'
    /// choice): the one chosen before, the replayed one, or the fastest, timed with `run` (which
    /// computes the operation on its inputs with the kernel given, into scratch space). A single
    /// candidate is returned untimed and unrecorded; so is the first with [`KernelSelection::Fixed`].
    /// The candidates are listed only when the class has no kernel yet (calls after the first are
    /// one table lookup), so every call of a class must have the same ones, in any order.
    pub(crate) fn choose(
        &self,
        key: K,
        candidates: impl FnOnce() -> Vec<V>,
        mut run: impl FnMut(V),
    ) -> V {
        {
            let preferred = PREFERRED.read().expect("kernel preference poisoned");
            if !preferred.is_empty() {
                let candidates = candidates();
                return candidates
                    .iter()
                    .copied()
                    .find(|kernel| preferred.iter().any(|name| name == kernel.name()))
                    .unwrap_or(candidates[0]);
            }
        }
        let fixed = FIXED.load(Ordering::Relaxed);
        if !fixed && let Some(kernel) = self.lookup(&key) {
            return kernel;
        }
        let candidates = candidates();
        assert!(!candidates.is_empty(), "a kernel choice without candidates");
        if fixed {
            return candidates[0];
        }
        if candidates.len() == 1 {
            self.keep(key, candidates[0]);
            return candidates[0];
        }
        let _timing = self.timing.lock().expect("kernel timing poisoned");
        if let Some(kernel) = self.lookup(&key) {
            return kernel;
        }
        let name = key.to_string();
        let replayed = REPLAY
            .read()
            .expect("kernel replay poisoned")
            .get(&name)
            .and_then(|kernel| candidates.iter().copied().find(|c| c.name() == kernel));
        let kernel = replayed.unwrap_or_else(|| fastest(&candidates, &mut run));
        self.keep(key, kernel);
        RECORD
            .lock()
            .expect("kernel record poisoned")
            .insert(name, kernel.name().to_string());
        kernel
    }

    /// Makes `kernel` the one of `key` for the rest of the process.
    fn keep(&self, key: K, kernel: V) {
        self.chosen
            .write()
            .expect("kernel table poisoned")
            .get_or_insert_with(HashMap::new)
            .insert(key, kernel);
    }

    fn lookup(&self, key: &K) -> Option<V> {
        let chosen = self.chosen.read().expect("kernel table poisoned");
        chosen.as_ref().and_then(|table| table.get(key).copied())
    }
}

/// The candidate whose shortest timed run is shortest (see the module's rule).
fn fastest<V: Candidate>(candidates: &[V], run: &mut impl FnMut(V)) -> V {
    let mut best = (candidates[0], Duration::MAX);
    for &candidate in candidates {
        run(candidate);
        let (mut shortest, mut spent) = (Duration::MAX, Duration::ZERO);
        for _ in 0..TIMED_RUNS {
            let started = Instant::now();
            run(candidate);
            let took = started.elapsed();
            shortest = shortest.min(took);
            spent += took;
            if spent >= TIMING_BUDGET {
                break;
            }
        }
        if shortest < best.1 {
            best = (candidate, shortest);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Sleep {
        Long,
        Short,
    }

    impl Candidate for Sleep {
        const ALL: &'static [Self] = &[Sleep::Long, Sleep::Short];

        fn needs_avx512(self) -> bool {
            false
        }

        fn name(self) -> &'static str {
            match self {
                Sleep::Long => "test-long",
                Sleep::Short => "test-short",
            }
        }
    }

    #[test]
    fn the_fastest_candidate_is_kept_and_replayed_choices_are_not_timed() {
        static TABLE: ChoiceTable<u64, Sleep> = ChoiceTable::new();
        let runs = std::cell::Cell::new(0);
        let run = |kernel: Sleep| {
            runs.set(runs.get() + 1);
            std::thread::sleep(Duration::from_millis(match kernel {
                Sleep::Long => 4,
                Sleep::Short => 1,
            }));
        };
        assert_eq!(
            TABLE.choose(1, || vec![Sleep::Long, Sleep::Short], run),
            Sleep::Short
        );
        // One untimed run and TIMED_RUNS timed ones each (both stay within the budget).
        assert_eq!(runs.get(), 2 * (1 + TIMED_RUNS));
        // Chosen once: later calls run nothing.
        assert_eq!(
            TABLE.choose(1, || vec![Sleep::Long, Sleep::Short], run),
            Sleep::Short
        );
        assert_eq!(runs.get(), 2 * (1 + TIMED_RUNS));
        assert_eq!(
            RECORD.lock().unwrap().get("1").map(String::as_str),
            Some("test-short")
        );

        // A replayed choice is used as it is, even when slower, and recorded again.
        preload(&BTreeMap::from([(
            "2".to_string(),
            "test-long".to_string(),
        )]));
        let before = runs.get();
        assert_eq!(
            TABLE.choose(2, || vec![Sleep::Long, Sleep::Short], run),
            Sleep::Long
        );
        assert_eq!(runs.get(), before, "a replayed choice is not timed");
        assert_eq!(
            choices().kernels.get("2").map(String::as_str),
            Some("test-long")
        );

        // A single candidate is not a choice.
        assert_eq!(TABLE.choose(3, || vec![Sleep::Long], run), Sleep::Long);
        assert_eq!(runs.get(), before);
        assert!(!choices().kernels.contains_key("3"));
    }

    #[test]
    fn the_summary_counts_wins_per_operation() {
        let choices = KernelChoices {
            selection: KernelSelection::Measured,
            kernels: BTreeMap::from(
                [
                    ("conv forward: 128×16×32×32 → 16, 3×3", "implicit"),
                    ("conv forward: 128×32×16×16 → 32, 3×3", "im2col"),
                    ("conv input gradient: 128×16×32×32 → 16, 3×3", "implicit"),
                    ("gemm general: m≤32 k≤256 n≤1024", "gemm"),
                    ("gemm general: m≤64 k≤256 n≤1024", "gemm"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            ),
        };
        assert_eq!(
            choices.summary(),
            "conv forward: im2col 1, implicit 1; conv input gradient: implicit 1; \
             gemm general: gemm 2"
        );
        assert_eq!(KernelChoices::default().summary(), "none yet");
    }
}
