//! `report.html`: one self-contained page rendered with tera.

use crate::script::results::RunResults;
use std::path::Path;

pub fn render(_r: &RunResults, _templates: Option<&Path>) -> Result<String, String> {
    Err("report.html: not implemented yet".into())
}
