//! The search's record: `search.csv` (written, and read back to find the setting the `warmup`
//! experiment runs at), its figure of learning curves, and its table with the finding.

use std::fmt::Write as _;

use super::{
    Curve, FAILURE_RATIO, SEEDS, SEEDS_TO_DECIDE, SearchSetting, SettingResult, WARMUP_FRACTION,
    seed_fails,
};
use crate::experiments::seeds::{OverSeeds, series_over_seeds};
use crate::experiments::{Scale, format_table};
use crate::figure::{Figure, Panel};

/// The cheapest setting in which the search recorded in `search_csv` (the text of its
/// `search.csv`) found Adam without warmup to fail, if any.
///
/// # Errors
/// A file that is not a search's `search.csv`, with the line at fault.
pub fn cheapest_failing(search_csv: &str) -> Result<Option<SearchSetting>, String> {
    let mut lines = search_csv.lines();
    if lines.next() != Some(SEARCH_CSV_HEADER) {
        return Err("not a warmup-search search.csv (its header differs)".to_string());
    }
    for (number, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let malformed = || format!("line {}: malformed", number + 2);
        let [layers, d_model, lr, beta_2, .., setting_fails] = fields[..] else {
            return Err(malformed());
        };
        if setting_fails == "true" {
            return SearchSetting::parse(&format!("L{layers}-d{d_model}-lr{lr}-b{beta_2}"))
                .map(Some)
                .map_err(|_| malformed());
        }
    }
    Ok(None)
}

/// The header of `search.csv`.
pub(crate) const SEARCH_CSV_HEADER: &str = "layers,d_model,lr,beta_2,seed,steps,train_loss_no_warmup,\
                                 train_loss_warmup,seed_fails,setting_fails";

/// `search.csv`: one line per seed run pair.
pub(super) fn search_csv(results: &[SettingResult]) -> String {
    let mut csv = format!("{SEARCH_CSV_HEADER}\n");
    for result in results {
        let s = &result.setting;
        for (seed, &(without, with)) in result.seeds.iter().enumerate() {
            writeln!(
                csv,
                "{},{},{},{},{seed},{},{without},{with},{},{}",
                s.layers,
                s.d_model,
                s.lr,
                s.beta_2,
                result.steps,
                seed_fails(without, with),
                result.fails
            )
            .unwrap();
        }
    }
    csv
}

/// One panel per setting searched: the training loss of Adam without and with warmup, mean ± std
/// over the seeds that did not diverge.
pub(super) fn figure(results: &[SettingResult]) -> Figure {
    let panels = results
        .iter()
        .map(|result| {
            let verdict = if result.fails { "fails" } else { "trains" };
            let mut panel = Panel::new(
                format!("{} ({verdict})", result.setting.name()),
                "epoch",
                "train loss",
            )
            .log_y();
            let without: Vec<Curve> = result.curves.iter().map(|c| c.0.clone()).collect();
            let with: Vec<Curve> = result.curves.iter().map(|c| c.1.clone()).collect();
            let warmup = format!("warmup {:.0} %", 100.0 * WARMUP_FRACTION);
            for (label, curves) in [("no warmup", without), (warmup.as_str(), with)] {
                let trained: Vec<Curve> = curves.into_iter().filter(|c| !c.is_empty()).collect();
                if !trained.is_empty() {
                    let name = format!("Adam, {label} (n = {})", trained.len());
                    panel = panel.with(series_over_seeds(name, &trained));
                }
            }
            panel
        })
        .collect();
    let mut figure = Figure::new(
        "Warmup search: Adam's training loss without and with warmup, per setting",
        panels,
    );
    figure.columns = 2;
    figure
}

/// The table of the search and its finding.
pub(super) fn summarise(scale: Scale, results: &[SettingResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|result| {
            let s = &result.setting;
            let without: Vec<f64> = result.seeds.iter().map(|seed| seed.0).collect();
            let with: Vec<f64> = result.seeds.iter().map(|seed| seed.1).collect();
            let diverged = without.iter().filter(|loss| !loss.is_finite()).count();
            vec![
                format!("{} × d{}", s.layers, s.d_model),
                s.lr.to_string(),
                s.beta_2.to_string(),
                result.seeds.len().to_string(),
                format!("{:.3}", OverSeeds::of(&without))
                    + &if diverged > 0 {
                        format!(" ({diverged} diverged)")
                    } else {
                        String::new()
                    },
                format!("{:.3}", OverSeeds::of(&with)),
                if result.fails { "fails" } else { "trains" }.to_string(),
            ]
        })
        .collect();
    let mut summary = format!(
        "Warmup search ({scale:?} scale; post-norm Transformer, Adam; warmup = {:.0} % of the \
         run; a seed fails when its final train loss without warmup ≥ {FAILURE_RATIO}× with \
         warmup; a setting fails when {SEEDS_TO_DECIDE} of {SEEDS} seeds fail):\n",
        100.0 * WARMUP_FRACTION
    );
    summary.push_str(&format_table(
        &[
            "layers × width",
            "lr",
            "β2",
            "seeds",
            "no warmup (mean ± std)",
            "warmup",
            "verdict",
        ],
        &rows,
    ));
    match results.iter().find(|result| result.fails) {
        Some(found) => writeln!(
            summary,
            "cheapest failing setting: {} ({} steps per run)",
            found.setting.name(),
            found.steps
        )
        .unwrap(),
        None => summary.push_str(
            "no setting of the grid fails: Adam without warmup trains as well as with warmup \
             at every size tried\n",
        ),
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::super::grid;
    use super::super::tests::curve;
    use super::*;

    #[test]
    fn the_figure_has_a_panel_per_setting_and_leaves_out_diverged_seeds() {
        let result = SettingResult {
            setting: grid(Scale::Tiny)[0],
            seeds: vec![(f64::INFINITY, 3.0), (6.0, 3.0)],
            fails: true,
            steps: 10,
            curves: vec![(Vec::new(), curve(3.0)), (curve(6.0), curve(3.0))],
        };
        let figure = figure(&[
            result.clone(),
            SettingResult {
                fails: false,
                ..result
            },
        ]);
        assert_eq!(figure.panels.len(), 2);
        assert_eq!(figure.panels[0].title, "L1-d16-lr0.001-b0.999 (fails)");
        assert_eq!(figure.panels[1].title, "L1-d16-lr0.001-b0.999 (trains)");
        let series = &figure.panels[0].series;
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["Adam, no warmup (n = 1)", "Adam, warmup 10 % (n = 2)"]
        );
        // One seed: its curve, no band; two equal seeds: their curve, a band of zero width.
        assert_eq!(series[0].points, curve(6.0));
        assert!(series[0].band.is_empty());
        assert_eq!(series[1].points, curve(3.0));
        assert!(series[1].band.iter().all(|&(_, low, high)| low == high));
    }

    #[test]
    fn the_cheapest_failing_setting_is_read_from_search_csv() {
        let rows = |fails: [&str; 2]| {
            format!(
                "{SEARCH_CSV_HEADER}\n\
                 2,64,0.001,0.98,0,2016,1.46,1.47,false,{}\n\
                 4,64,0.003,0.999,0,2016,6.1,3.0,true,{}\n\
                 6,64,0.003,0.999,0,2016,6.1,3.0,true,true\n",
                fails[0], fails[1]
            )
        };
        let found = cheapest_failing(&rows(["false", "true"])).unwrap().unwrap();
        assert_eq!(found.name(), "L4-d64-lr0.003-b0.999");
        let found = cheapest_failing(&rows(["false", "false"]))
            .unwrap()
            .unwrap();
        assert_eq!(found.name(), "L6-d64-lr0.003-b0.999");
        assert_eq!(
            cheapest_failing(&format!("{SEARCH_CSV_HEADER}\n")),
            Ok(None)
        );
        assert!(cheapest_failing("a,b\n").unwrap_err().contains("header"));
        let error = cheapest_failing(&format!("{SEARCH_CSV_HEADER}\n2,64\n")).unwrap_err();
        assert_eq!(error, "line 2: malformed");
        // The search writes what it reads.
        let result = SettingResult {
            setting: grid(Scale::Cpu)[3],
            seeds: vec![(6.0, 3.0), (6.0, 3.0)],
            fails: true,
            steps: 2016,
            curves: Vec::new(),
        };
        assert_eq!(
            cheapest_failing(&search_csv(&[result])),
            Ok(Some(grid(Scale::Cpu)[3]))
        );
    }
}
