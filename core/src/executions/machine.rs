//! The execution state machine, pure: from a pipeline's declaration and what
//! an execution has done so far, the next steps. The orchestrator applies
//! them in one transaction; nothing here touches the database, so every rule
//! is tested on its own.

use super::Status;
use crate::pipelines::PipelineDeclaration;

/// What an execution has done in one stage (its latest attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageRun {
    /// `None`: the stage was not entered.
    pub status: Option<Status>,
    /// Per action of the declaration, in its order: its latest status.
    pub actions: Vec<Option<Status>>,
}

/// What holds an execution at a stage's inbound boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The inbound transition is disabled.
    TransitionDisabled,
    /// Another execution is in the stage (SUPERSEDED: one per stage).
    StageBusy,
    /// An older execution is still running (QUEUED: one at a time).
    Queued,
}

/// The world around one execution, as the orchestrator read it.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    pub pipeline: &'a PipelineDeclaration,
    pub status: Status,
    pub stages: Vec<StageRun>,
    /// Per stage: what would hold this execution before entering it.
    pub holds: Vec<Option<Hold>>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Enter stage `stage` (a new attempt).
    EnterStage { stage: usize },
    /// Start these actions of the stage (their indexes in the declaration).
    StartActions { stage: usize, actions: Vec<usize> },
    /// The stage ended.
    FinishStage { stage: usize, status: Status },
    /// The execution ended.
    FinishExecution { status: Status },
    /// The execution waits before entering `stage`.
    Wait { stage: usize, hold: Hold },
}

/// The next steps of an execution.
pub fn next(snapshot: &Snapshot<'_>) -> Vec<Step> {
    if snapshot.status.is_terminal() {
        return Vec::new();
    }
    let stopping = snapshot.status == Status::Stopping;
    for (index, declared) in snapshot.pipeline.stages.iter().enumerate() {
        let run = snapshot.stages.get(index).cloned().unwrap_or_default();
        match run.status {
            Some(Status::Succeeded) => continue,
            Some(status) if status.is_terminal() => {
                // A stage that failed or was stopped ends the execution.
                let end = if status == Status::Failed { Status::Failed } else { Status::Stopped };
                return vec![Step::FinishExecution { status: end }];
            }
            None if stopping => return vec![Step::FinishExecution { status: Status::Stopped }],
            None => {
                if let Some(hold) = snapshot.holds.get(index).copied().flatten() {
                    return vec![Step::Wait { stage: index, hold }];
                }
                let mut steps = vec![Step::EnterStage { stage: index }];
                let first = first_group(&declared.actions.iter().map(|a| a.run_order).collect::<Vec<_>>(), &[]);
                steps.push(Step::StartActions { stage: index, actions: first });
                return steps;
            }
            Some(_) => {
                // In the stage: the actions decide.
                let orders: Vec<i32> = declared.actions.iter().map(|a| a.run_order).collect();
                let statuses: Vec<Option<Status>> =
                    (0..orders.len()).map(|i| run.actions.get(i).copied().flatten()).collect();
                let running = statuses.iter().any(|s| s.is_some_and(|s| !s.is_terminal()));
                let failed = statuses.iter().any(|s| matches!(s, Some(Status::Failed)));
                let stopped = statuses.iter().any(|s| matches!(s, Some(Status::Abandoned | Status::Stopped)));
                if running {
                    return Vec::new();
                }
                if failed {
                    return vec![
                        Step::FinishStage { stage: index, status: Status::Failed },
                        Step::FinishExecution { status: Status::Failed },
                    ];
                }
                if stopped || stopping {
                    return vec![
                        Step::FinishStage { stage: index, status: Status::Stopped },
                        Step::FinishExecution { status: Status::Stopped },
                    ];
                }
                let remaining: Vec<usize> = (0..orders.len()).filter(|i| statuses[*i].is_none()).collect();
                if remaining.is_empty() {
                    let mut steps = vec![Step::FinishStage { stage: index, status: Status::Succeeded }];
                    if index + 1 == snapshot.pipeline.stages.len() {
                        steps.push(Step::FinishExecution { status: Status::Succeeded });
                    } else {
                        // Straight on to the next stage, in the same pass.
                        let mut after = snapshot.clone();
                        if let Some(stage) = after.stages.get_mut(index) {
                            stage.status = Some(Status::Succeeded);
                        }
                        steps.extend(next(&after));
                    }
                    return steps;
                }
                let done: Vec<usize> = (0..orders.len()).filter(|i| statuses[*i].is_some()).collect();
                return vec![Step::StartActions { stage: index, actions: first_group(&orders, &done) }];
            }
        }
    }
    vec![Step::FinishExecution { status: Status::Succeeded }]
}

/// The actions with the lowest run order among those not done.
fn first_group(orders: &[i32], done: &[usize]) -> Vec<usize> {
    let lowest = (0..orders.len()).filter(|i| !done.contains(i)).map(|i| orders[i]).min();
    match lowest {
        Some(lowest) => (0..orders.len()).filter(|i| !done.contains(i) && orders[*i] == lowest).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pipeline() -> PipelineDeclaration {
        let kind = |c: &str, p: &str| json!({"category": c, "owner": "Pipewright", "provider": p, "version": "1"});
        serde_json::from_value(json!({
            "name": "web",
            "stages": [
                {"name": "Source", "actions": [{"name": "Git", "actionTypeId": kind("Source", "Git"), "outputArtifacts": [{"name": "S"}]}]},
                {"name": "Build", "actions": [
                    {"name": "A", "actionTypeId": kind("Build", "Shell"), "runOrder": 1},
                    {"name": "B", "actionTypeId": kind("Build", "Shell"), "runOrder": 1},
                    {"name": "C", "actionTypeId": kind("Test", "Shell"), "runOrder": 2}]},
                {"name": "Deploy", "actions": [{"name": "D", "actionTypeId": kind("Deploy", "Shell")}]}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn snapshot(pipeline: &PipelineDeclaration, stages: Vec<StageRun>) -> Snapshot<'_> {
        Snapshot { pipeline, status: Status::InProgress, stages, holds: vec![None; 3] }
    }

    fn run(status: Status, actions: Vec<Option<Status>>) -> StageRun {
        StageRun { status: Some(status), actions }
    }

    const OK: Option<Status> = Some(Status::Succeeded);
    const RUNNING: Option<Status> = Some(Status::InProgress);

    #[test]
    fn a_new_execution_enters_the_first_stage() {
        let p = pipeline();
        assert_eq!(
            next(&snapshot(&p, vec![])),
            vec![Step::EnterStage { stage: 0 }, Step::StartActions { stage: 0, actions: vec![0] }]
        );
    }

    #[test]
    fn equal_run_orders_start_together_and_the_next_waits_for_them() {
        let p = pipeline();
        let source_done = run(Status::Succeeded, vec![OK]);
        assert_eq!(
            next(&snapshot(&p, vec![source_done.clone()])),
            vec![Step::EnterStage { stage: 1 }, Step::StartActions { stage: 1, actions: vec![0, 1] }]
        );
        let one_done = run(Status::InProgress, vec![OK, RUNNING, None]);
        assert_eq!(next(&snapshot(&p, vec![source_done.clone(), one_done])), vec![]);
        let both_done = run(Status::InProgress, vec![OK, OK, None]);
        assert_eq!(
            next(&snapshot(&p, vec![source_done, both_done])),
            vec![Step::StartActions { stage: 1, actions: vec![2] }]
        );
    }

    #[test]
    fn a_finished_stage_leads_straight_into_the_next_and_the_last_ends_the_execution() {
        let p = pipeline();
        let source = run(Status::Succeeded, vec![OK]);
        let build = run(Status::InProgress, vec![OK, OK, OK]);
        assert_eq!(
            next(&snapshot(&p, vec![source.clone(), build])),
            vec![
                Step::FinishStage { stage: 1, status: Status::Succeeded },
                Step::EnterStage { stage: 2 },
                Step::StartActions { stage: 2, actions: vec![0] }
            ]
        );
        let build = run(Status::Succeeded, vec![OK, OK, OK]);
        let deploy = run(Status::InProgress, vec![OK]);
        assert_eq!(
            next(&snapshot(&p, vec![source, build, deploy])),
            vec![
                Step::FinishStage { stage: 2, status: Status::Succeeded },
                Step::FinishExecution { status: Status::Succeeded }
            ]
        );
    }

    #[test]
    fn a_failed_action_fails_its_stage_and_the_execution_once_its_group_is_done() {
        let p = pipeline();
        let source = run(Status::Succeeded, vec![OK]);
        let still_running = run(Status::InProgress, vec![Some(Status::Failed), RUNNING, None]);
        assert_eq!(next(&snapshot(&p, vec![source.clone(), still_running])), vec![]);
        let failed = run(Status::InProgress, vec![Some(Status::Failed), OK, None]);
        assert_eq!(
            next(&snapshot(&p, vec![source, failed])),
            vec![
                Step::FinishStage { stage: 1, status: Status::Failed },
                Step::FinishExecution { status: Status::Failed }
            ]
        );
    }

    #[test]
    fn a_hold_at_a_boundary_makes_the_execution_wait_there() {
        let p = pipeline();
        let mut s = snapshot(&p, vec![run(Status::Succeeded, vec![OK]), run(Status::Succeeded, vec![OK, OK, OK])]);
        s.holds[2] = Some(Hold::TransitionDisabled);
        assert_eq!(next(&s), vec![Step::Wait { stage: 2, hold: Hold::TransitionDisabled }]);
    }

    #[test]
    fn stopping_ends_at_the_next_boundary_and_terminal_executions_do_nothing() {
        let p = pipeline();
        let mut s = snapshot(&p, vec![run(Status::Succeeded, vec![OK])]);
        s.status = Status::Stopping;
        assert_eq!(next(&s), vec![Step::FinishExecution { status: Status::Stopped }]);
        s.status = Status::Succeeded;
        assert_eq!(next(&s), vec![]);
    }
}
