//! The error returned for a configuration that makes no sense.

use core::fmt;

/// An [`RAdamConfig`](crate::RAdamConfig) field holds a value the optimizer cannot use.
///
/// Its message names the field, the value and the rule, e.g.
/// `invalid RAdamConfig: beta_2 = 1.0 must lie in [0, 1)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RAdamConfigError {
    /// The name of the offending field, as spelled in [`RAdamConfig`](crate::RAdamConfig).
    pub field: &'static str,
    /// The offending value, formatted.
    pub value: String,
    /// The rule the value breaks.
    pub rule: &'static str,
}

impl RAdamConfigError {
    pub(crate) fn new(field: &'static str, value: impl fmt::Debug, rule: &'static str) -> Self {
        Self {
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
            "invalid RAdamConfig: {} = {} {}",
            self.field, self.value, self.rule
        )
    }
}

impl std::error::Error for RAdamConfigError {}
