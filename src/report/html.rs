//! `report.html`: one self-contained page rendered with tera from
//! `reports/templates/report.html.tera` (a user-edited copy in the templates folder wins
//! over the embedded one). No script, no network, no `style=`: one `<style>` block (the
//! template's `style` block, rendered first) whose SHA-256 goes into the page's
//! Content-Security-Policy, and inline SVG charts drawn by [`super::svg`].
//!
//! The page's data is the view model of [`super::page`] (numbers raw, formatted in the
//! template by the [`crate::util::human`] filters registered below; charts as finished SVG
//! strings).

use super::page::Page;
use crate::script::results::RunResults;
use crate::util::human;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::path::Path;
use tera::{Context, Kwargs, State, Tera, Value};

/// The template's file name, in the templates folder or embedded.
pub const TEMPLATE_FILE: &str = "report.html.tera";
/// The embedded template.
pub const EMBEDDED: &str = include_str!("../../reports/templates/report.html.tera");
/// The template's name in tera (escaping every value: see `autoescape_on` below).
const NAME: &str = TEMPLATE_FILE;

/// Renders `r` as a self-contained page. `templates` may hold a `report.html.tera` that
/// replaces the embedded one; a broken template is an error naming it.
pub fn render(r: &RunResults, templates: Option<&Path>) -> Result<String, String> {
    let user = templates.map(|d| d.join(TEMPLATE_FILE)).filter(|p| p.is_file());
    let (source, origin) = match &user {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
            p.display().to_string(),
        ),
        None => (EMBEDDED.to_string(), format!("{TEMPLATE_FILE} (embedded)")),
    };
    let fail = |e: tera::Error| format!("report template {origin}: {}", error_chain(&e));
    let mut tera = Tera::default();
    tera.autoescape_on([".tera"]);
    register_filters(&mut tera);
    tera.add_raw_template(NAME, &source).map_err(fail)?;
    let mut ctx = Context::new();
    ctx.insert("r", &Page::of(r));
    let style = tera.render_block(NAME, "style", &ctx).map_err(fail)?;
    let hash = style_hash(&style);
    ctx.insert("csp", &format!("default-src 'none'; style-src '{hash}'; img-src data:"));
    let page = tera.render(NAME, &ctx).map_err(fail)?;
    // The CSP must name the style block the browser will see.
    match style_text(&page) {
        Some(s) if style_hash(s) == hash => Ok(page),
        _ => Err(format!(
            "report template {origin}: the page must hold exactly one <style> block, the template's `style` block"
        )),
    }
}

/// Renders the template once over an empty run, so a broken user template is found
/// before a run starts rather than after it.
pub fn check_template(templates: Option<&Path>) -> Result<(), String> {
    let empty = RunResults::new(String::new(), String::new(), std::time::SystemTime::now(), Vec::new());
    render(&empty, templates).map(drop)
}

/// `sha256-BASE64` of `text`, as a CSP source.
pub fn style_hash(text: &str) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
}

/// The text between the page's only `<style>` and `</style>`.
pub fn style_text(page: &str) -> Option<&str> {
    let start = page.find("<style>")? + "<style>".len();
    let end = start + page[start..].find("</style>")?;
    (page.matches("<style").count() == 1).then(|| &page[start..end])
}

fn error_chain(e: &tera::Error) -> String {
    // tera's parse errors start with their own "error: ", and ours is printed before them.
    let mut s = e.to_string().trim_start_matches("error: ").to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// The value as a finite number, if it is one.
fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn register_filters(tera: &mut Tera) {
    fn reg(tera: &mut Tera, name: &'static str, f: fn(f64) -> String) {
        tera.register_filter(name, move |v: &Value, _: Kwargs, _: &State| num(v).map(f).unwrap_or("n/a".into()));
    }
    reg(tera, "sig3", human::sig3);
    reg(tera, "count", human::count);
    reg(tera, "ms", human::ms);
    reg(tera, "bytes", human::bytes);
    reg(tera, "pct", human::pct);
    reg(tera, "signed_pct", human::signed_pct);
    reg(tera, "int", |x| {
        if x >= 0.0 {
            human::int(x.round() as u64)
        } else {
            format!("-{}", human::int((-x).round() as u64))
        }
    });
    reg(tera, "secs", |x| human::ms(x * 1000.0));
    tera.register_filter("with_unit", |v: &Value, k: Kwargs, _: &State| {
        let unit: Option<String> = k.get::<&Value>("unit").ok().flatten().and_then(|u| u.as_str().map(String::from));
        num(v).map(|x| human::with_unit(x, unit.as_deref())).unwrap_or("n/a".into())
    });
}
