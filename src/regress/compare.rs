//! A run against its baseline, metric by metric.
