//! `variance`: the exact variance of the adaptive learning rate (Eq. 2) against its first-order
//! approximation (Eq. 5) for ρ = 5..500, and a Monte-Carlo simulation of Adam's adaptive learning
//! rate, un-rectified and rectified, over the first iterations.

use std::fmt::Write as _;

use super::progress::ProgressBar;
use super::{ExperimentArgs, Scale, format_table, save_figure, write_file};
use crate::experiments::variance::{SimulatedVariance, Simulation, theory_table};
use crate::figure::{Figure, Panel, Series};
use crate::harness::HarnessError;

/// The gradient means µ of the simulation (g ~ N(µ, 1)).
pub const MEANS: [f64; 4] = [0.0, 0.1, 1.0, 10.0];
/// β2 of the simulation (the paper's and PyTorch's default).
pub const BETA_2: f64 = 0.999;

/// Trajectories and steps of the simulation at each scale.
pub fn simulation_size(scale: Scale) -> (usize, usize) {
    match scale {
        Scale::Tiny => (200, 200),
        Scale::Cpu => (4000, 5000),
        Scale::Paper => (50_000, 20_000),
    }
}

/// Runs the analysis; writes `theory.csv`, `theory.png`, `simulation.csv`, `simulation.png` and
/// `summary.txt` into `--out/variance/`, and returns the summary it prints.
///
/// # Errors
/// If the output directory cannot be written.
pub fn run(args: &ExperimentArgs) -> Result<String, HarnessError> {
    args.refuse_setting("variance")?;
    args.refuse_ledger("variance")?;
    args.refuse_seeds("variance")?;
    let dir = args.output_dir("variance")?;
    let mut summary = String::new();

    // Eq. 2 against Eq. 5.
    let theory = theory_table(5..=500);
    let mut csv = String::from("rho,exact_eq2,first_order_eq5,relative_error\n");
    for row in &theory {
        writeln!(
            csv,
            "{},{:e},{:e},{:e}",
            row.rho, row.exact, row.first_order, row.relative_error
        )
        .unwrap();
    }
    write_file(&dir.join("theory.csv"), &csv)?;
    let points = |f: fn(&crate::experiments::variance::TheoryRow) -> f64| -> Vec<(f64, f64)> {
        theory.iter().map(|row| (row.rho, f(row))).collect()
    };
    save_figure(
        &Figure::new(
            "Var[ψ] of the adaptive learning rate (σ² = 1)",
            vec![
                Panel::new("exact (Eq. 2) and first order (Eq. 5)", "ρ", "Var[ψ]")
                    .log_x()
                    .log_y()
                    .with(Series::new("exact, Eq. 2", points(|r| r.exact)))
                    .with(Series::new("first order, Eq. 5", points(|r| r.first_order))),
                Panel::new("relative error of Eq. 5", "ρ", "(Eq.5 − Eq.2) / Eq.2")
                    .log_x()
                    .log_y()
                    .with(Series::new("relative error", points(|r| r.relative_error))),
            ],
        ),
        &dir.join("theory.png"),
    );
    let rows: Vec<Vec<String>> = theory
        .iter()
        .filter(|row| [5.0, 6.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0].contains(&row.rho))
        .map(|row| {
            vec![
                format!("{}", row.rho),
                format!("{:.5}", row.exact),
                format!("{:.5}", row.first_order),
                format!("{:.2} %", 100.0 * row.relative_error),
            ]
        })
        .collect();
    writeln!(summary, "Variance of the adaptive learning rate, σ² = 1:").unwrap();
    summary.push_str(&format_table(
        &["ρ", "exact (Eq. 2)", "first order (Eq. 5)", "error"],
        &rows,
    ));

    // Monte-Carlo trajectories.
    let (trajectories, steps) = simulation_size(args.scale);
    println!("simulating {trajectories} trajectories of {steps} steps for µ = {MEANS:?}…");
    let mut bar = ProgressBar::new(MEANS.len());
    let mut results: Vec<(f64, SimulatedVariance)> = Vec::new();
    for (index, &mu) in MEANS.iter().enumerate() {
        bar.start(&format!("µ = {mu}"));
        let started = std::time::Instant::now();
        let simulation = Simulation {
            mu,
            beta_2: BETA_2,
            trajectories,
            steps,
            seed: index as u64,
        };
        results.push((mu, simulation.run()));
        bar.finish(started.elapsed());
    }
    let mut csv = String::from("mu,step,var_adam,var_radam\n");
    for (mu, result) in &results {
        for (t, (adam, radam)) in result.adam.iter().zip(&result.radam).enumerate() {
            let radam = radam.map(|v| format!("{v:e}")).unwrap_or_default();
            writeln!(csv, "{mu},{},{adam:e},{radam}", t + 1).unwrap();
        }
    }
    write_file(&dir.join("simulation.csv"), &csv)?;
    let panels = results
        .iter()
        .map(|(mu, result)| {
            let adam = result
                .adam
                .iter()
                .enumerate()
                .map(|(t, &v)| ((t + 1) as f64, v))
                .collect();
            let radam = result
                .radam
                .iter()
                .enumerate()
                .filter_map(|(t, v)| v.map(|v| ((t + 1) as f64, v)))
                .collect();
            Panel::new(
                format!("g ~ N({mu}, 1), β2 = {BETA_2}"),
                "iteration",
                "variance",
            )
            .log_x()
            .log_y()
            .with(Series::new("Adam: Var[ψ_t]", adam))
            .with(Series::new("RAdam: Var[r_t·ψ_t]", radam))
        })
        .collect();
    let mut figure = Figure::new(
        format!("Variance of the adaptive learning rate, {trajectories} trajectories"),
        panels,
    );
    figure.columns = 2;
    save_figure(&figure, &dir.join("simulation.png"));

    let checkpoints: Vec<usize> = [1, 5, 10, 100, 1000, 5000, 20_000]
        .into_iter()
        .filter(|&t| t <= steps)
        .collect();
    writeln!(
        summary,
        "\nSimulated variance across {trajectories} trajectories (β2 = {BETA_2}): Adam Var[ψ_t] / RAdam Var[r_t·ψ_t]"
    )
    .unwrap();
    let mut header = vec!["µ".to_string()];
    header.extend(checkpoints.iter().map(|t| format!("t = {t}")));
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(mu, result)| {
            let mut row = vec![format!("{mu}")];
            for &t in &checkpoints {
                let radam = result.radam[t - 1]
                    .map(|v| format!("{v:.3e}"))
                    .unwrap_or_else(|| "—".to_string());
                row.push(format!("{:.3e} / {radam}", result.adam[t - 1]));
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    summary.push_str(&format_table(&header, &rows));
    write_file(&dir.join("summary.txt"), &summary)?;
    print!("{summary}");
    Ok(summary)
}
