//! A job's steps as a graph: cycles, and which steps become ready as the
//! steps they come after end (the trigger rules).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When a step runs, given how the steps it comes after ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream step succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream step ended, however.
    AllDone,
    /// At least one upstream step failed (runs as soon as one does).
    OneFailed,
    /// At least one upstream step succeeded (runs as soon as one does).
    OneSuccess,
}

impl TriggerRule {
    /// The name as written in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneSuccess => "one_success",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> TriggerRule {
        match text {
            "all_done" => TriggerRule::AllDone,
            "one_failed" => TriggerRule::OneFailed,
            "one_success" => TriggerRule::OneSuccess,
            _ => TriggerRule::AllSuccess,
        }
    }
}

/// Where a step of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Waits for the steps it comes after.
    Pending,
    /// Ready: a worker may take it (at its `ready_at`).
    Queued,
    /// Failed and will be tried again at its `ready_at`.
    UpForRetry,
    /// A sensor whose condition was not met yet; poked again at `ready_at`,
    /// holding no worker slot meanwhile.
    Waiting,
    /// A worker holds it.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended badly, with no retries left.
    Failed,
    /// Not run: its trigger rule can no longer be met, and nothing failed.
    Skipped,
    /// Not run because a step it needed failed.
    UpstreamFailed,
}

impl StepState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Queued => "queued",
            StepState::UpForRetry => "up_for_retry",
            StepState::Waiting => "waiting",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::UpstreamFailed => "upstream_failed",
        }
    }

    /// Parses a stored state.
    pub fn parse(text: &str) -> StepState {
        match text {
            "queued" => StepState::Queued,
            "up_for_retry" => StepState::UpForRetry,
            "waiting" => StepState::Waiting,
            "running" => StepState::Running,
            "succeeded" => StepState::Succeeded,
            "failed" => StepState::Failed,
            "skipped" => StepState::Skipped,
            "upstream_failed" => StepState::UpstreamFailed,
            _ => StepState::Pending,
        }
    }

    /// Whether it has ended for good.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            StepState::Succeeded
                | StepState::Failed
                | StepState::Skipped
                | StepState::UpstreamFailed
        )
    }

    /// Whether it ended as a failure (its own or a step's it needed).
    pub fn is_failure(self) -> bool {
        matches!(self, StepState::Failed | StepState::UpstreamFailed)
    }
}

/// What [`advance`] needs to know of one step of a run.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its state now.
    pub state: StepState,
    /// The steps it comes after.
    pub after: Vec<String>,
    /// When it runs given how they ended.
    pub trigger_rule: TriggerRule,
}

/// The pending steps whose trigger rule is now decided, with their new
/// state: `Queued` to run, or `Skipped` / `UpstreamFailed` not to.
pub fn advance(nodes: &BTreeMap<String, Node>) -> Vec<(String, StepState)> {
    nodes
        .iter()
        .filter(|(_, node)| node.state == StepState::Pending)
        .filter_map(|(name, node)| {
            let upstream: Vec<StepState> = node
                .after
                .iter()
                .map(|u| nodes.get(u).map_or(StepState::Succeeded, |n| n.state))
                .collect();
            decide(node.trigger_rule, &upstream).map(|state| (name.clone(), state))
        })
        .collect()
}

/// The new state of a pending step under `rule`, or `None` while it must
/// wait.
fn decide(rule: TriggerRule, upstream: &[StepState]) -> Option<StepState> {
    let all_done = upstream.iter().all(|s| s.is_done());
    let any_failed = upstream.iter().any(|s| s.is_failure());
    let any_succeeded = upstream.contains(&StepState::Succeeded);
    match rule {
        TriggerRule::AllSuccess if any_failed => Some(StepState::UpstreamFailed),
        TriggerRule::AllSuccess if all_done => {
            Some(if upstream.iter().all(|s| *s == StepState::Succeeded) {
                StepState::Queued
            } else {
                StepState::Skipped
            })
        }
        TriggerRule::AllDone if all_done => Some(StepState::Queued),
        TriggerRule::OneFailed if any_failed => Some(StepState::Queued),
        TriggerRule::OneFailed if all_done => Some(StepState::Skipped),
        TriggerRule::OneSuccess if any_succeeded => Some(StepState::Queued),
        TriggerRule::OneSuccess if all_done => Some(if any_failed {
            StepState::UpstreamFailed
        } else {
            StepState::Skipped
        }),
        _ => None,
    }
}

/// How a run ends once every step has: failed when any step failed.
pub fn run_outcome(nodes: &BTreeMap<String, Node>) -> Option<bool> {
    if !nodes.values().all(|n| n.state.is_done()) {
        return None;
    }
    Some(!nodes.values().any(|n| n.state.is_failure()))
}

/// A cycle among steps given as (name, the steps it comes after), as the
/// names along it with the first repeated at the end (`a -> b -> a`), if
/// there is one.
pub fn find_cycle<'a>(
    steps: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = steps
        .into_iter()
        .map(|(name, after)| (name, after.iter().map(String::as_str).collect()))
        .collect();
    // Depth-first search with the path kept: 0 unseen, 1 on the path, 2 done.
    let mut mark: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        name: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        mark: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match mark.get(name) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|n| n.to_string()).collect();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        mark.insert(name, 1);
        path.push(name);
        for next in edges.get(name).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, mark, path) {
                return Some(cycle);
            }
        }
        path.pop();
        mark.insert(name, 2);
        None
    }
    for name in edges.keys() {
        if let Some(mut cycle) = visit(name, &edges, &mut mark, &mut Vec::new()) {
            // Found along `after` edges: show it in running order.
            cycle.reverse();
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepState::*;

    fn nodes(spec: &[(&str, StepState, &[&str], TriggerRule)]) -> BTreeMap<String, Node> {
        spec.iter()
            .map(|(name, state, after, rule)| {
                (
                    name.to_string(),
                    Node {
                        state: *state,
                        after: after.iter().map(|a| a.to_string()).collect(),
                        trigger_rule: *rule,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn all_success_waits_for_every_upstream_and_fails_fast() {
        let rule = TriggerRule::AllSuccess;
        assert_eq!(decide(rule, &[Succeeded, Running]), None);
        assert_eq!(decide(rule, &[Succeeded, Succeeded]), Some(Queued));
        assert_eq!(decide(rule, &[Failed, Running]), Some(UpstreamFailed));
        assert_eq!(decide(rule, &[Skipped, Succeeded]), Some(Skipped));
    }

    #[test]
    fn the_other_rules_run_on_what_they_name() {
        assert_eq!(
            decide(TriggerRule::AllDone, &[Failed, Skipped]),
            Some(Queued)
        );
        assert_eq!(decide(TriggerRule::AllDone, &[Failed, Running]), None);
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Failed, Running]),
            Some(Queued)
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Succeeded, Succeeded]),
            Some(Skipped)
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Succeeded, Running]),
            Some(Queued)
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Failed, Failed]),
            Some(UpstreamFailed)
        );
    }

    #[test]
    fn advance_moves_only_pending_steps_whose_rule_is_decided() {
        let n = nodes(&[
            ("a", Succeeded, &[], TriggerRule::AllSuccess),
            ("b", Running, &[], TriggerRule::AllSuccess),
            ("c", Pending, &["a"], TriggerRule::AllSuccess),
            ("d", Pending, &["a", "b"], TriggerRule::AllSuccess),
        ]);
        assert_eq!(advance(&n), vec![("c".to_string(), Queued)]);
        assert_eq!(run_outcome(&n), None);
    }

    #[test]
    fn a_run_fails_when_any_step_failed() {
        let n = nodes(&[
            ("a", Failed, &[], TriggerRule::AllSuccess),
            ("cleanup", Succeeded, &["a"], TriggerRule::OneFailed),
        ]);
        assert_eq!(run_outcome(&n), Some(false));
    }
}
