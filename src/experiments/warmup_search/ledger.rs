//! The search's ledger: one line per finished run — its directory, its flags, its optimizer
//! steps, its final training loss and its training-loss curve — in a file of its own that the
//! search reads before training a run and extends after each one.
//!
//! The search takes tens of hours on two cores, run a few hours at a time on machines whose run
//! directories do not survive. A ledger committed to the repository (`--ledger
//! docs/warmup-search-ledger.csv`) lets any machine continue where the last one stopped: a run
//! found there with the same flags is not trained again. Curves are stored to the last digit
//! (Rust's shortest round-trip form), so a search resumed from the ledger writes the same table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Curve, SearchRun};
use crate::experiments::{PlannedRun, write_file};
use crate::harness::HarnessError;

/// The header of a ledger file.
pub const LEDGER_HEADER: &str = "run,flags,steps,final_train_loss,train_loss_curve";

/// The finished runs of a search, and the file that keeps them.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// `"<setting>/<run> <flags>"` → the run's line (without the key's fields).
    runs: BTreeMap<String, String>,
}

/// The key of `run` in directory `setting`: its place, every flag it was trained with and the
/// models' numerical revision (`models-revision=N`, [`radam_models::NUMERICS_REVISION`]): a run
/// recorded before the models changed their numbers is trained again.
fn key(setting: &str, run: &PlannedRun) -> (String, String) {
    (
        format!("{setting}/{}", run.name),
        format!(
            "{} models-revision={}",
            run.flags.join(" "),
            radam_models::NUMERICS_REVISION
        ),
    )
}

impl Ledger {
    /// The ledger at `path`: read if the file exists, empty (created on the first record) if not.
    ///
    /// # Errors
    /// An unreadable file, or one that is not a ledger (with the line at fault).
    pub fn open(path: &Path) -> Result<Self, HarnessError> {
        let mut runs = BTreeMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| {
                HarnessError::Io(format!("cannot read the ledger {}: {e}", path.display()))
            })?;
            let bad = |line: usize, why: &str| {
                HarnessError::Invalid(format!("--ledger {}: line {line}: {why}", path.display()))
            };
            let mut lines = text.lines();
            if lines.next() != Some(LEDGER_HEADER) {
                return Err(bad(1, "not a warmup-search ledger (its header differs)"));
            }
            // The line each run was read from, to name both of two that disagree.
            let mut first_line = BTreeMap::new();
            for (index, line) in lines.enumerate() {
                let number = index + 2;
                let fields: Vec<&str> = line.splitn(3, ',').collect();
                let [run, flags, rest] = fields[..] else {
                    return Err(bad(number, "malformed"));
                };
                let result = parse_result(rest).ok_or_else(|| bad(number, "malformed result"))?;
                if let Some(why) = implausible(&result) {
                    return Err(bad(number, &why));
                }
                let key = format!("{run} {flags}");
                match runs.get(&key) {
                    Some(earlier) if earlier != rest => {
                        return Err(bad(
                            number,
                            &format!(
                                "{run} with the same flags is also on line {}, with another \
                                 result: remove the wrong one",
                                first_line[&key]
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        first_line.insert(key.clone(), number);
                        runs.insert(key, rest.to_string());
                    }
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            runs,
        })
    }

    /// The recorded result of `run` in directory `setting`, if the ledger has it with the same
    /// flags.
    pub fn find(&self, setting: &str, run: &PlannedRun) -> Option<SearchRun> {
        let (place, flags) = key(setting, run);
        let line = self.runs.get(&format!("{place} {flags}"))?;
        parse_result(line)
    }

    /// Adds the result of `run` and rewrites the file.
    ///
    /// # Errors
    /// A flag with a comma (it would break the line), or an unwritable file.
    pub fn record(
        &mut self,
        setting: &str,
        run: &PlannedRun,
        result: &SearchRun,
    ) -> Result<(), HarnessError> {
        let (place, flags) = key(setting, run);
        if flags.contains(',') || place.contains(',') {
            return Err(HarnessError::Invalid(format!(
                "{place}: a flag with a comma cannot go into the ledger ({flags})"
            )));
        }
        let curve: Vec<String> = result
            .curve
            .iter()
            .map(|(epoch, loss)| format!("{epoch}:{loss}"))
            .collect();
        let line = format!("{},{},{}", result.steps, result.loss, curve.join(";"));
        self.runs.insert(format!("{place} {flags}"), line);
        let mut text = format!("{LEDGER_HEADER}\n");
        for (key, line) in &self.runs {
            let (place, flags) = key.split_once(' ').unwrap_or((key, ""));
            text.push_str(&format!("{place},{flags},{line}\n"));
        }
        write_file(&self.path, &text)
    }
}

/// Why a recorded result cannot be a training run's: a loss below 0 or not a number (a
/// diverged run records an infinite final loss, no step and no curve), or a finished run of no
/// step.
fn implausible(result: &SearchRun) -> Option<String> {
    let bad_loss = |loss: f64| loss.is_nan() || loss < 0.0;
    if result.steps == 0 && result.loss.is_finite() {
        Some("a run of 0 steps".to_string())
    } else if bad_loss(result.loss) {
        Some(format!("an impossible final loss of {}", result.loss))
    } else if let Some((epoch, loss)) = result
        .curve
        .iter()
        .find(|(_, loss)| bad_loss(*loss) || loss.is_infinite())
    {
        Some(format!("an impossible loss of {loss} at epoch {epoch}"))
    } else {
        None
    }
}

/// `steps,final_loss,curve` of a ledger line.
fn parse_result(text: &str) -> Option<SearchRun> {
    let mut fields = text.splitn(3, ',');
    let steps = fields.next()?.parse().ok()?;
    let loss = fields.next()?.parse().ok()?;
    let curve: Option<Curve> = fields
        .next()?
        .split(';')
        .filter(|point| !point.is_empty())
        .map(|point| {
            let (epoch, loss) = point.split_once(':')?;
            Some((epoch.parse().ok()?, loss.parse().ok()?))
        })
        .collect();
    Some(SearchRun {
        loss,
        steps,
        curve: curve?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ledger-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("ledger.csv")
    }

    #[test]
    fn a_recorded_run_is_found_with_the_same_flags_only_and_survives_a_reopen() {
        let path = temp_file("round-trip");
        let _ = std::fs::remove_file(&path);
        let run = PlannedRun::new("adam-seed0", &["--seed", "0", "--layers", "2"]);
        let mut ledger = Ledger::open(&path).unwrap();
        assert!(ledger.find("L2-d64-lr0.001-b0.98", &run).is_none());
        let trained = SearchRun {
            loss: 1.478_123_456_789,
            steps: 2016,
            curve: vec![(1.0, 5.25), (2.0, 1.478_123_456_789)],
        };
        ledger
            .record("L2-d64-lr0.001-b0.98", &run, &trained)
            .unwrap();
        let diverged = PlannedRun::new("adam-seed1", &["--seed", "1"]);
        ledger
            .record("L2-d64-lr0.001-b0.98", &diverged, &SearchRun::DIVERGED)
            .unwrap();

        let reopened = Ledger::open(&path).unwrap();
        let found = reopened.find("L2-d64-lr0.001-b0.98", &run).unwrap();
        assert_eq!(found.loss.to_bits(), trained.loss.to_bits());
        assert_eq!((found.steps, found.curve), (trained.steps, trained.curve));
        let found = reopened.find("L2-d64-lr0.001-b0.98", &diverged).unwrap();
        assert!(found.loss.is_infinite() && found.curve.is_empty());
        // Another setting, or other flags: not the same run.
        assert!(reopened.find("L4-d64-lr0.001-b0.98", &run).is_none());
        let other = PlannedRun::new("adam-seed0", &["--seed", "0", "--layers", "4"]);
        assert!(reopened.find("L2-d64-lr0.001-b0.98", &other).is_none());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_run_of_an_earlier_revision_of_the_models_is_trained_again() {
        let path = temp_file("revision");
        let run = PlannedRun::new("adam-seed0", &["--seed", "0"]);
        let line = |flags: &str| format!("{LEDGER_HEADER}\nL2/adam-seed0,{flags},12,1.5,1:1.5\n");
        // As the ledger was written before the revision was part of the key, and as now.
        std::fs::write(&path, line("--seed 0")).unwrap();
        assert!(Ledger::open(&path).unwrap().find("L2", &run).is_none());
        let current = format!(
            "--seed 0 models-revision={}",
            radam_models::NUMERICS_REVISION
        );
        std::fs::write(&path, line(&current)).unwrap();
        assert_eq!(
            Ledger::open(&path).unwrap().find("L2", &run).unwrap().steps,
            12
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_ledger_is_one_clear_error() {
        let path = temp_file("bad");
        std::fs::write(&path, "a,b\n").unwrap();
        let error = Ledger::open(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 1: not a warmup-search ledger"),
            "{error}"
        );
        std::fs::write(&path, format!("{LEDGER_HEADER}\nL2/adam,--seed 0,12,x,\n")).unwrap();
        let error = Ledger::open(&path).unwrap_err().to_string();
        assert!(error.contains("line 2: malformed result"), "{error}");
        for (row, why) in [
            ("12,-5,1:-5", "line 2: an impossible final loss of -5"),
            ("12,NaN,", "line 2: an impossible final loss of NaN"),
            (
                "12,1.5,1:2.0;2:-0.5",
                "line 2: an impossible loss of -0.5 at epoch 2",
            ),
            ("0,1.5,", "line 2: a run of 0 steps"),
        ] {
            std::fs::write(&path, format!("{LEDGER_HEADER}\nL2/adam,--seed 0,{row}\n")).unwrap();
            let error = Ledger::open(&path).unwrap_err().to_string();
            assert!(error.ends_with(why), "{row}: {error}");
        }
        // The same run twice: the same result is harmless, two results are a conflict.
        let twice = |second: &str| {
            format!("{LEDGER_HEADER}\nL2/adam,--seed 0,12,1.5,\nL2/adam,--seed 0,{second}\n")
        };
        std::fs::write(&path, twice("12,1.5,")).unwrap();
        assert!(Ledger::open(&path).is_ok());
        std::fs::write(&path, twice("12,2.5,")).unwrap();
        let error = Ledger::open(&path).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "line 3: L2/adam with the same flags is also on line 2, with another result: \
                 remove the wrong one"
            ),
            "{error}"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
