//! The alert detectors' thresholds, as the rules' `[alerts]` table sets them (with team and
//! service overrides applied by [`super::AlertRules::thresholds_for`]). Owned by the rules,
//! which parse them; `alert` takes them as input.

use serde::{Deserialize, Serialize};

use crate::money::Nanos;

/// Dollar and percent floors: a change must clear both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floors {
    pub min_amount: Nanos,
    pub min_percent: i64,
}

/// Detector settings for one service (after team and service overrides are applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// Trailing days in the spike baseline.
    pub baseline_days: usize,
    /// Days of history needed before a spike can be detected.
    pub min_history_days: usize,
    /// A spike must also be this many robust standard deviations (1.4826 x MAD) above the
    /// median, so normal noise does not fire.
    pub sigmas: i64,
    pub spike: Floors,
    /// While a spike lasts, a new alert only when it grows by this percent over the last
    /// alerted level.
    pub growth_step_percent: i64,
    /// After this many days, a spike's level becomes the new baseline.
    pub persistence_days: usize,
    pub mom_increase: Floors,
    pub mom_decrease: Floors,
}

impl Thresholds {
    pub fn defaults() -> Thresholds {
        Thresholds {
            baseline_days: 28,
            min_history_days: 7,
            sigmas: 4,
            spike: Floors {
                min_amount: Nanos(50 * crate::money::NANOS_PER_UNIT),
                min_percent: 30,
            },
            growth_step_percent: 50,
            persistence_days: 3,
            mom_increase: Floors {
                min_amount: Nanos(500 * crate::money::NANOS_PER_UNIT),
                min_percent: 20,
            },
            mom_decrease: Floors {
                min_amount: Nanos(500 * crate::money::NANOS_PER_UNIT),
                min_percent: 20,
            },
        }
    }
}
