//! The error returned for a configuration that makes no sense.

use core::fmt;

/// A field of an optimizer config (radam-burn's `RAdamConfig` or `Adam2kConfig`, for any Burn
/// version) holds a value the optimizer cannot use.
///
/// Its message names the config, the field, the value and the rule, e.g.
/// `invalid RAdamConfig: beta_2 = 1.0 must lie in [0, 1)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RAdamConfigError {
    /// The config's type name (`RAdamConfig`, `Adam2kConfig`).
    pub config: &'static str,
    /// The name of the offending field, as spelled in the config.
    pub field: &'static str,
    /// The offending value, formatted.
    pub value: String,
    /// The rule the value breaks.
    pub rule: &'static str,
}

impl RAdamConfigError {
    /// A field of `RAdamConfig` breaks `rule`.
    pub fn new(field: &'static str, value: impl fmt::Debug, rule: &'static str) -> Self {
        Self::of("RAdamConfig", field, value, rule)
    }

    /// A field of the config named `config` breaks `rule`.
    pub fn of(
        config: &'static str,
        field: &'static str,
        value: impl fmt::Debug,
        rule: &'static str,
    ) -> Self {
        Self {
            config,
            field,
            value: format!("{value:?}"),
            rule,
        }
    }
}

impl fmt::Display for RAdamConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: {} = {} {}",
            self.config, self.field, self.value, self.rule
        )
    }
}

impl std::error::Error for RAdamConfigError {}
