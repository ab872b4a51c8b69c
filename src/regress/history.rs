//! The history of runs: `reports/history.jsonl`, append-only.
