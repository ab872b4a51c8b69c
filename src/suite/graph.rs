//! The dependency graph of a suite (petgraph): scenarios are nodes, `depends_on` are edges
//! from a dependency to its dependent. [`Graph::build`] rejects unknown dependencies and
//! cycles (spelt out, `a -> b -> c -> a`, read "a depends on b..."); it gives a topological
//! order that keeps the suite's listing order where dependencies allow, the level of each
//! scenario (0: no dependencies), `--only` selections closed over dependencies, and the
//! critical path once durations are known.

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::collections::{BTreeSet, HashMap};

/// Why a set of scenarios does not form a runnable graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Scenario `scenario` depends on `missing`, which no manifest names.
    UnknownDependency { scenario: usize, missing: String, suggestion: Option<String> },
    /// The names of a cycle, first name repeated at the end.
    Cycle(Vec<String>),
}

/// Scenarios and their dependencies, by index in the suite's listing order.
#[derive(Debug, Clone)]
pub struct Graph {
    pub names: Vec<String>,
    /// `deps[i]`: what scenario `i` depends on.
    pub deps: Vec<Vec<usize>>,
    /// `dependents[i]`: what depends on scenario `i`.
    pub dependents: Vec<Vec<usize>>,
    /// A topological order (dependencies first), listing order among equals.
    pub order: Vec<usize>,
    /// 0 for no dependencies, else one more than the deepest dependency.
    pub levels: Vec<usize>,
}

impl Graph {
    /// Builds the graph of `names[i]` depending on `deps[i]` (names must be unique).
    pub fn build(names: &[String], deps: &[Vec<String>]) -> Result<Graph, Vec<GraphError>> {
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(names.len(), names.len());
        let nodes: Vec<NodeIndex> = (0..names.len()).map(|i| g.add_node(i)).collect();
        let mut errors = Vec::new();
        let mut dep_idx = vec![Vec::new(); names.len()];
        for (i, ds) in deps.iter().enumerate() {
            for d in ds {
                match index.get(d.as_str()) {
                    Some(&j) => {
                        if !dep_idx[i].contains(&j) {
                            dep_idx[i].push(j);
                            g.add_edge(nodes[j], nodes[i], ());
                        }
                    }
                    None => errors.push(GraphError::UnknownDependency {
                        scenario: i,
                        missing: d.clone(),
                        suggestion: crate::util::suggest(d, names.iter().map(String::as_str)).map(str::to_string),
                    }),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if toposort(&g, None).is_err() {
            return Err(cycles(&g, names));
        }
        let mut dependents = vec![Vec::new(); names.len()];
        for (i, ds) in dep_idx.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        // Kahn's algorithm taking the lowest listing index first: a stable, readable order.
        let mut missing: Vec<usize> = dep_idx.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<usize> = (0..names.len()).filter(|&i| missing[i] == 0).collect();
        let mut order = Vec::with_capacity(names.len());
        let mut levels = vec![0usize; names.len()];
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &d in &dependents[i] {
                levels[d] = levels[d].max(levels[i] + 1);
                missing[d] -= 1;
                if missing[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        Ok(Graph { names: names.to_vec(), deps: dep_idx, dependents, order, levels })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The scenarios `picked` plus everything they depend on, transitively.
    pub fn closure(&self, picked: &[usize]) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<usize> = picked.to_vec();
        while let Some(i) = stack.pop() {
            if out.insert(i) {
                stack.extend(self.deps[i].iter().copied());
            }
        }
        out
    }

    /// Everything that depends on `changed`, transitively, plus `changed` itself.
    pub fn dependents_closure(&self, changed: &BTreeSet<usize>) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<usize> = changed.iter().copied().collect();
        while let Some(i) = stack.pop() {
            if out.insert(i) {
                stack.extend(self.dependents[i].iter().copied());
            }
        }
        out
    }

    /// The longest chain of dependencies weighted by `durations` (ms; absent for scenarios
    /// that did not run): the scenarios on it, first to last, and its length.
    pub fn critical_path(&self, durations: &[Option<f64>]) -> (Vec<usize>, f64) {
        let n = self.len();
        let mut best = vec![0.0f64; n];
        let mut prev: Vec<Option<usize>> = vec![None; n];
        for &i in &self.order {
            let Some(d) = durations.get(i).copied().flatten() else { continue };
            let (p, base) = self.deps[i]
                .iter()
                .filter(|&&j| durations.get(j).copied().flatten().is_some())
                .map(|&j| (Some(j), best[j]))
                .fold((None, 0.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            best[i] = base + d;
            prev[i] = p;
        }
        let Some(end) = (0..n)
            .filter(|&i| durations.get(i).copied().flatten().is_some())
            .max_by(|&a, &b| best[a].partial_cmp(&best[b]).unwrap_or(std::cmp::Ordering::Equal).then(b.cmp(&a)))
        else {
            return (vec![], 0.0);
        };
        let mut path = vec![end];
        while let Some(p) = prev[*path.last().unwrap_or(&end)] {
            path.push(p);
        }
        path.reverse();
        (path, best[end])
    }
}

/// One cycle per strongly connected component that has one, spelt by `depends_on`.
fn cycles(g: &DiGraph<usize, ()>, names: &[String]) -> Vec<GraphError> {
    let mut out = Vec::new();
    for scc in tarjan_scc(g) {
        let self_loop = scc.len() == 1 && g.find_edge(scc[0], scc[0]).is_some();
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Start at the lowest listed member; follow "depends on" edges (incoming) within the
        // component until a node repeats.
        let start = *members.iter().min_by_key(|n| g[**n]).unwrap_or(&scc[0]);
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = g
                .neighbors_directed(cur, Direction::Incoming)
                .filter(|n| members.contains(n))
                .min_by_key(|n| g[*n])
                .unwrap_or(start);
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle: Vec<String> = path[pos..].iter().map(|n| names[g[*n]].clone()).collect();
                cycle.push(names[g[next]].clone());
                out.push(GraphError::Cycle(cycle));
                break;
            }
            path.push(next);
            cur = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(spec: &[(&str, &[&str])]) -> Result<Graph, Vec<GraphError>> {
        let names: Vec<String> = spec.iter().map(|(n, _)| n.to_string()).collect();
        let deps: Vec<Vec<String>> = spec.iter().map(|(_, d)| d.iter().map(|s| s.to_string()).collect()).collect();
        Graph::build(&names, &deps)
    }

    #[test]
    fn diamond_orders_and_levels() {
        let g = build(&[("d", &["b", "c"]), ("b", &["a"]), ("c", &["a"]), ("a", &[])]).unwrap();
        let names: Vec<&str> = g.order.iter().map(|&i| g.names[i].as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(g.levels, vec![2, 1, 1, 0]);
        assert_eq!(g.closure(&[1]), BTreeSet::from([1, 3]));
        assert_eq!(g.dependents_closure(&BTreeSet::from([2])), BTreeSet::from([0, 2]));
        let (path, len) = g.critical_path(&[Some(1.0), Some(2.0), Some(5.0), Some(1.0)]);
        assert_eq!((path, len), (vec![3, 2, 0], 7.0));
    }

    #[test]
    fn cycles_are_spelt_out() {
        let e = build(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("x", &[])]).unwrap_err();
        assert_eq!(e, vec![GraphError::Cycle(vec!["a".into(), "b".into(), "c".into(), "a".into()])]);
        let e = build(&[("a", &["a"])]).unwrap_err();
        assert_eq!(e, vec![GraphError::Cycle(vec!["a".into(), "a".into()])]);
    }

    #[test]
    fn unknown_dependencies_are_named_with_a_suggestion() {
        let e = build(&[("smoke", &[]), ("load", &["smoek"])]).unwrap_err();
        assert_eq!(
            e,
            vec![GraphError::UnknownDependency {
                scenario: 1,
                missing: "smoek".into(),
                suggestion: Some("smoke".into())
            }]
        );
    }
}
