//! "Did you mean" suggestions: the one rule by which every error naming an unknown name
//! (script functions and parameters, manifest keys, profiles and scenarios, fault names and
//! their parameters) offers the known name nearest to it.

/// The candidate nearest to `name`, if it is near enough to be a likely typo: at most one
/// edit per three characters of `name` (at least one), ignoring case and counting a swap of
/// neighbours as one edit (`wiat` is one edit from `wait`), or a candidate of more than three
/// characters that `name` begins or that begins `name`. Of equally near candidates the
/// shorter wins, then the earlier; `name` itself is never suggested.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::osa_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= limit || (c.len() > 3 && (c.starts_with(name) || name.starts_with(*c))))
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_near_names_only() {
        let names = ["connect", "check", "threshold", "stage", "metric"];
        assert_eq!(suggest("conect", names), Some("connect"));
        assert_eq!(suggest("chek", names), Some("check"));
        assert_eq!(suggest("treshold", names), Some("threshold"));
        assert_eq!(suggest("Stage", names), Some("stage"));
        assert_eq!(suggest("zzzzzz", names), None);
        assert_eq!(suggest("connect", names), None);
        assert_eq!(suggest("wiat", ["wait", "n"]), Some("wait"));
        assert_eq!(suggest("lateny", ["latency", "bandwidth"]), Some("latency"));
        assert_eq!(suggest("aa", ["a", "b"]), Some("a"));
        assert_eq!(suggest("connection", ["connections", "connect"]), Some("connections"));
    }
}
