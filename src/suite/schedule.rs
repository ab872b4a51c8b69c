//! The scheduler's decisions, without threads or clocks of its own: which scenario may start
//! now and what a finished scenario changes. A scenario is ready when every dependency has
//! passed; it starts when a worker is free and its resources fit: the connection budgets of
//! the running scenarios sum to at most the machine's budget, and an `exclusive` scenario
//! runs alone (it waits for the others to finish, and nothing starts beside it). A
//! scenario that fails, times out or is cancelled makes its dependents, transitively, skipped
//! with the reason; one that was skipped (its target lacks what it needs) does not.
//! Ready scenarios start in the graph's topological order.

use super::graph::Graph;
use super::manifest::Resources;
use crate::script::results::Status;
use std::collections::BTreeSet;

/// Where a scenario stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not selected by `--only`.
    Excluded,
    /// Waiting for this many dependencies.
    Waiting(usize),
    Ready,
    Running,
    Done(Status),
}

/// The scheduler of one suite run.
pub struct Scheduler<'g> {
    graph: &'g Graph,
    resources: Vec<Resources>,
    workers: usize,
    budget: u64,
    state: Vec<State>,
    /// Ready scenarios by position in the topological order.
    ready: BTreeSet<(usize, usize)>,
    position: Vec<usize>,
    running: usize,
    connections: u64,
    exclusive_running: bool,
}

impl<'g> Scheduler<'g> {
    /// `resources[i]` of every scenario; only `selected` ones run.
    pub fn new(
        graph: &'g Graph,
        selected: &BTreeSet<usize>,
        resources: Vec<Resources>,
        workers: usize,
        budget: u64,
    ) -> Scheduler<'g> {
        let mut position = vec![0; graph.len()];
        for (p, &i) in graph.order.iter().enumerate() {
            position[i] = p;
        }
        let mut state = vec![State::Excluded; graph.len()];
        let mut ready = BTreeSet::new();
        for &i in selected {
            let waiting = graph.deps[i].iter().filter(|d| selected.contains(d)).count();
            state[i] = if waiting == 0 {
                ready.insert((position[i], i));
                State::Ready
            } else {
                State::Waiting(waiting)
            };
        }
        Scheduler {
            graph,
            resources,
            workers: workers.max(1),
            budget,
            state,
            ready,
            position,
            running: 0,
            connections: 0,
            exclusive_running: false,
        }
    }

    pub fn state(&self, i: usize) -> State {
        self.state[i]
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// The scenario to start now, if one may; it is then running.
    pub fn start_next(&mut self) -> Option<usize> {
        if self.running >= self.workers || self.exclusive_running {
            return None;
        }
        let pick = self.ready.iter().copied().find(|&(_, i)| {
            let r = &self.resources[i];
            if r.exclusive {
                self.running == 0
            } else {
                self.connections + r.connections <= self.budget
            }
        })?;
        self.ready.remove(&pick);
        let i = pick.1;
        let r = &self.resources[i];
        self.running += 1;
        self.connections += r.connections;
        self.exclusive_running |= r.exclusive;
        self.state[i] = State::Running;
        Some(i)
    }

    /// Records that running scenario `i` ended with `status`. Returns the scenarios that
    /// became ready, and those now skipped with the reason.
    pub fn finished(&mut self, i: usize, status: Status) -> (Vec<usize>, Vec<(usize, String)>) {
        if self.state[i] == State::Running {
            let r = &self.resources[i];
            self.running -= 1;
            self.connections -= r.connections;
            if r.exclusive {
                self.exclusive_running = false;
            }
        }
        self.state[i] = State::Done(status);
        let mut newly_ready = Vec::new();
        let mut skipped = Vec::new();
        // A skipped scenario (its target lacks what it needs) does not hold its dependents
        // back: they need the target, not what it would have produced.
        if matches!(status, Status::Passed | Status::Skipped) {
            for &d in &self.graph.dependents[i] {
                if let State::Waiting(n) = self.state[d] {
                    if n <= 1 {
                        self.state[d] = State::Ready;
                        self.ready.insert((self.position[d], d));
                        newly_ready.push(d);
                    } else {
                        self.state[d] = State::Waiting(n - 1);
                    }
                }
            }
        } else {
            let name = &self.graph.names[i];
            let first = format!("dependency '{name}' {}", status.as_str());
            let mut stack: Vec<(usize, String)> =
                self.graph.dependents[i].iter().map(|&d| (d, first.clone())).collect();
            while let Some((d, why)) = stack.pop() {
                if matches!(self.state[d], State::Waiting(_) | State::Ready) {
                    self.ready.remove(&(self.position[d], d));
                    self.state[d] = State::Done(Status::Skipped);
                    let next = format!("dependency '{}' skipped ({why})", self.graph.names[d]);
                    stack.extend(self.graph.dependents[d].iter().map(|&x| (x, next.clone())));
                    skipped.push((d, why));
                }
            }
        }
        (newly_ready, skipped)
    }

    /// Scenarios selected but never started (the run was stopped).
    pub fn not_started(&self) -> Vec<usize> {
        (0..self.state.len()).filter(|&i| matches!(self.state[i], State::Waiting(_) | State::Ready)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(spec: &[(&str, &[&str])]) -> Graph {
        let names: Vec<String> = spec.iter().map(|(n, _)| n.to_string()).collect();
        let deps: Vec<Vec<String>> = spec.iter().map(|(_, d)| d.iter().map(|s| s.to_string()).collect()).collect();
        Graph::build(&names, &deps).unwrap()
    }

    fn res(c: u64, exclusive: bool) -> Resources {
        Resources { connections: c, exclusive }
    }

    #[test]
    fn respects_workers_budget_and_exclusive() {
        let g = graph(&[("a", &[]), ("b", &[]), ("x", &[]), ("c", &[])]);
        let all: BTreeSet<usize> = (0..4).collect();
        let mut s =
            Scheduler::new(&g, &all, vec![res(60, false), res(60, false), res(1, true), res(10, false)], 4, 100);
        assert_eq!(s.start_next(), Some(0));
        // b does not fit beside a (120 > 100), x is exclusive, c fits.
        assert_eq!(s.start_next(), Some(3));
        assert_eq!(s.start_next(), None);
        s.finished(0, Status::Passed);
        assert_eq!(s.start_next(), Some(1));
        s.finished(1, Status::Passed);
        s.finished(3, Status::Passed);
        assert_eq!(s.start_next(), Some(2));
        assert_eq!(s.start_next(), None, "nothing beside an exclusive scenario");
    }

    #[test]
    fn a_skipped_scenario_lets_its_dependents_run() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]);
        let all: BTreeSet<usize> = (0..3).collect();
        let mut s = Scheduler::new(&g, &all, vec![res(1, false); 3], 1, 100);
        assert_eq!(s.start_next(), Some(0));
        let (ready, skipped) = s.finished(0, Status::Skipped);
        assert_eq!(ready, vec![1]);
        assert!(skipped.is_empty());
        assert_eq!(s.start_next(), Some(1));
        assert_eq!(s.finished(1, Status::Passed).0, vec![2]);
    }

    #[test]
    fn failure_skips_dependents_transitively() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]);
        let all: BTreeSet<usize> = (0..4).collect();
        let mut s = Scheduler::new(&g, &all, vec![res(1, false); 4], 1, 100);
        assert_eq!(s.start_next(), Some(0));
        let (ready, skipped) = s.finished(0, Status::Timeout);
        assert!(ready.is_empty());
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0], (1, "dependency 'a' timeout".to_string()));
        assert!(skipped[1].1.contains("dependency 'b' skipped"), "{:?}", skipped);
        assert_eq!(s.start_next(), Some(3));
        assert!(s.not_started().is_empty());
    }
}
