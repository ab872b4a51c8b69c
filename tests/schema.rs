//! `reports/schema/results.schema.json` is the JSON Schema of `results.json`, generated from
//! the very types that write it. This test fails when the types change and the committed
//! schema was not regenerated (`UPDATE_SNAPSHOTS=1 cargo test --test schema` rewrites it).

use mcpscript::script::results::{RunResults, SCHEMA_VERSION};

#[test]
fn committed_schema_matches_the_types() {
    let schema = schemars::schema_for!(RunResults);
    let mut text = serde_json::to_string_pretty(&schema).unwrap();
    text.push('\n');
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema/results.schema.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is out of date: run UPDATE_SNAPSHOTS=1 cargo test --test schema and commit it",
        path.display()
    );
    // The schema names what a reader needs first.
    for key in ["schema_version", "summary", "scenarios", "coverage", "regression", "framework", "total_assertions"] {
        assert!(text.contains(&format!("\"{key}\"")), "schema lacks {key}");
    }
    assert_eq!(SCHEMA_VERSION, 2);
}
