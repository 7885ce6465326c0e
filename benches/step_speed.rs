//! Training-step throughput of one model on ndarray, for `tools/cpu-speed-vs-torch`: one
//! model per process, so that the process's peak memory is that model's.
//!
//! ```text
//! cargo bench --bench step_speed -- resnet20|lstm|transformer [--steps N] [--repeats R]
//! ```
//!
//! Prints one line per repeat, `<model> <rate> <unit>/s` (images or tokens per second, over
//! `--steps` timed steps after two untimed ones).
#![recursion_limit = "256"]

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::{LSTM_SHAPE, RESNET_BATCH, TRANSFORMER_SHAPE, time_training};
use radam_train::models::conv::ConvAlgorithm;
use radam_train::models::lstm::LstmAlgorithm;

/// Untimed steps before each repeat, on a fresh model.
const WARMUP_STEPS: u64 = 2;

/// What to measure: the model, timed steps per repeat, repeats.
struct Request {
    model: String,
    steps: u64,
    repeats: u64,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Request, String> {
    let model = args
        .next()
        .ok_or("usage: step_speed resnet20|lstm|transformer [--steps N] [--repeats R]")?;
    let mut request = Request {
        model,
        steps: 3,
        repeats: 3,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("{flag} {value}: expected a positive number"))?;
        match flag.as_str() {
            "--steps" => request.steps = number,
            "--repeats" => request.repeats = number,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(request)
}

/// Times the repeats of one model, each on a fresh model after [`WARMUP_STEPS`]: `(items per
/// step, unit, time of each repeat)`.
fn measure(request: &Request) -> Result<(usize, &'static str, Vec<Duration>), String> {
    let Request { steps, repeats, .. } = *request;
    let mut times = Vec::new();
    let (items, unit) = match request.model.as_str() {
        "resnet20" => {
            for _ in 0..repeats {
                let (model, batch) = common::resnet20(ConvAlgorithm::Auto);
                times.push(time_training(model, WARMUP_STEPS, steps, |model| {
                    model.forward_classification(batch.clone()).loss
                }));
            }
            (RESNET_BATCH, "images")
        }
        "lstm" => {
            for _ in 0..repeats {
                let (model, batch) = common::lstm_lm(LstmAlgorithm::Fused);
                times.push(time_training(model, WARMUP_STEPS, steps, |model| {
                    model.forward_stream(batch.clone()).loss
                }));
            }
            (LSTM_SHAPE.0 * LSTM_SHAPE.1, "tokens")
        }
        "transformer" => {
            for _ in 0..repeats {
                let (model, batch) = common::transformer();
                times.push(time_training(model, WARMUP_STEPS, steps, |model| {
                    model.forward_translation(batch.clone()).loss
                }));
            }
            (TRANSFORMER_SHAPE.0 * TRANSFORMER_SHAPE.1, "tokens")
        }
        other => {
            return Err(format!(
                "unknown model `{other}`; expected resnet20, lstm or transformer"
            ));
        }
    };
    Ok((items, unit, times))
}

fn main() -> ExitCode {
    let result = parse(std::env::args().skip(1)).and_then(|request| {
        common::warm_up_backend();
        let (items, unit, times) = measure(&request)?;
        for time in times {
            let rate = (items as u64 * request.steps) as f64 / time.as_secs_f64();
            println!("{} {rate:.1} {unit}/s", request.model);
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
