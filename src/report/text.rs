//! `summary.txt`: what a person reads in a terminal log.

use crate::script::results::RunResults;

pub fn render(_r: &RunResults) -> String {
    String::new()
}
