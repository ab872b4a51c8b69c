//! `results.csv` (one row per scenario) and `metrics.csv` (one row per metric sample).

use crate::script::results::RunResults;

pub fn results_csv(_r: &RunResults) -> Result<Vec<u8>, String> {
    Err("results.csv: not implemented yet".into())
}

pub fn metrics_csv(_r: &RunResults) -> Result<Vec<u8>, String> {
    Err("metrics.csv: not implemented yet".into())
}
