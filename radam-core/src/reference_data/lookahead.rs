//! The Lookahead trajectories of `tools/lookahead_reference.py`: the paper's Algorithm 1 over
//! `torch.optim.RAdam` and `torch.optim.Adam`, in `testdata/lookahead_reference.json`.

use serde::Deserialize;

use super::two_parameters::Trajectory;

/// The scaled tolerance of θ in the Lookahead cases.
pub const TOLERANCE: f32 = 2e-6;

/// One recorded trajectory of Lookahead.
#[derive(Deserialize)]
pub struct Case {
    /// The inner optimizer: `radam` (`torch.optim.RAdam`'s defaults) or `adam`
    /// (`torch.optim.Adam`, ε = 1e-8).
    pub inner: String,
    /// Fast steps between synchronisations.
    pub k: usize,
    /// The slow weights' step.
    pub alpha: f32,
    /// The parameters, gradients and results.
    #[serde(flatten)]
    pub trajectory: Trajectory,
}

#[derive(Deserialize)]
struct File {
    cases: Vec<Case>,
}

/// Every recorded case.
pub fn cases() -> Vec<Case> {
    let file: File = serde_json::from_str(include_str!("../../testdata/lookahead_reference.json"))
        .expect("testdata/lookahead_reference.json parses");
    file.cases
}

/// The case with RAdam inside (Ranger).
pub fn ranger_case() -> Case {
    cases()
        .into_iter()
        .find(|case| case.inner == "radam")
        .expect("a RAdam case in the Lookahead reference")
}
