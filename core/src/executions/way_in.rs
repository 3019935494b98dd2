//! One way in for every execution: a pipeline's creation, a person's
//! Release change, an upload, a change of a Git source (polled or delivered
//! by a webhook, matched by its trigger) start executions here and nowhere else,
//! so that what an execution starts with (its trigger, its variables, its
//! source revisions) is decided in one place.

use diesel_async::AsyncPgConnection;

use super::store::{self, Execution, SourceRevision, Trigger};
use crate::iam::IamError;
use crate::messaging::Queued;
use crate::pipelines::PipelineDeclaration;
use crate::pipelines::store::Pipeline;

/// Why an execution starts: the trigger it records.
#[derive(Debug, Clone)]
pub enum Cause<'a> {
    /// CreatePipeline: a new pipeline runs at once on its sources' latest
    /// revisions (unless its first stage has only Upload sources, which have
    /// nothing to run until the first upload).
    Created { by: &'a str },
    /// StartPipelineExecution ("Release change").
    Released { by: &'a str },
    /// PutSourceRevision: an archive uploaded to an Upload source.
    Uploaded { by: &'a str, revision: SourceRevision },
    /// A change of a Git source that its trigger (or its own branch)
    /// matched: found by polling, or delivered by a webhook (its ARN).
    Changed { revision: SourceRevision, filter: String, webhook: Option<String> },
}

impl Cause<'_> {
    /// CodePipeline's `trigger`: its type, and who or what.
    pub fn trigger(&self) -> Trigger {
        let (kind, detail) = match self {
            Cause::Created { by } => ("CreatePipeline", (*by).to_owned()),
            Cause::Released { by } => ("StartPipelineExecution", (*by).to_owned()),
            Cause::Uploaded { by, .. } => ("PutSourceRevision", (*by).to_owned()),
            Cause::Changed { revision, webhook: None, .. } => ("PollForSourceChanges", revision.action_name.clone()),
            Cause::Changed { webhook: Some(arn), .. } => ("Webhook", arn.clone()),
        };
        let filter = match self {
            Cause::Changed { filter, .. } => Some(filter.clone()),
            _ => None,
        };
        Trigger { trigger_type: kind.to_owned(), trigger_detail: detail, filter }
    }
}

/// An execution to start.
#[derive(Debug, Clone)]
pub struct Start<'a> {
    pub cause: Cause<'a>,
    /// Values given for the pipeline's variables (the others take their
    /// defaults); each must be declared.
    pub variables: &'a [(String, String)],
    /// Makes a Release change idempotent: the same token starts one execution.
    pub client_request_token: Option<&'a str>,
    /// Revisions chosen for some sources (Release change's
    /// `sourceRevisions`); the others run their latest.
    pub revisions: Vec<SourceRevision>,
}

impl<'a> Start<'a> {
    pub fn new(cause: Cause<'a>) -> Self {
        Self { cause, variables: &[], client_request_token: None, revisions: Vec::new() }
    }
}

/// Starts the execution (in the caller's transaction) and queues its first
/// step; `None` when there is nothing to run yet (a new pipeline whose first
/// stage waits for an upload).
pub async fn start(
    conn: &mut AsyncPgConnection,
    pipeline: &Pipeline,
    start: Start<'_>,
) -> Result<Option<(Execution, Vec<Queued>)>, NotStarted> {
    let declaration = pipeline.declaration()?;
    if matches!(start.cause, Cause::Created { .. })
        && !declaration.stages.first().is_some_and(|s| s.actions.iter().any(|a| a.action_type_id.provider != "Upload"))
    {
        return Ok(None);
    }
    let variables = resolve_variables(&declaration, start.variables).map_err(NotStarted::Refused)?;
    let trigger = start.cause.trigger();
    let mut revisions = start.revisions;
    match start.cause {
        Cause::Uploaded { revision, .. } | Cause::Changed { revision, .. } => {
            // The cause's revision is its source's: no other for it.
            revisions.retain(|r| r.action_name != revision.action_name);
            revisions.push(revision);
        }
        Cause::Created { .. } | Cause::Released { .. } => {}
    }
    Ok(Some(store::start(conn, pipeline, &trigger, &variables, start.client_request_token, &revisions).await?))
}

/// Why an execution did not start.
#[derive(Debug, thiserror::Error)]
pub enum NotStarted {
    /// What the caller gave cannot start one: a message naming the field.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] IamError),
}

/// The variables of a new execution: the declared defaults, overridden by
/// those given (which must be declared; a value is at most 1000 characters).
fn resolve_variables(
    declaration: &PipelineDeclaration,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    for (i, (name, value)) in given.iter().enumerate() {
        if !declaration.variables.iter().any(|v| v.name == *name) {
            return Err(format!(
                "variables[{i}]: {name:?} is not a variable of the pipeline; declare it in the pipeline first"
            ));
        }
        if value.chars().count() > 1000 {
            return Err(format!("variables[{i}]: a value is at most 1000 characters"));
        }
    }
    Ok(declaration
        .variables
        .iter()
        .map(|declared| {
            let value = given
                .iter()
                .rev()
                .find(|(name, _)| *name == declared.name)
                .map(|(_, value)| value.clone())
                .or_else(|| declared.default_value.clone())
                .unwrap_or_default();
            (declared.name.clone(), value)
        })
        .collect())
}
