//! Executions: a revision's run through a pipeline's stages. The pure state
//! machine decides; the repository keeps what happened; the worker's
//! orchestrator and runners (fed by RabbitMQ) make it happen.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod jobs;
pub mod machine;
pub mod references;
pub mod store;
pub mod way_in;

/// At most this many output variables an action gives (as a shell action's).
pub const MAX_OUTPUT_VARIABLES: usize = 50;

/// Why output variables given by something outside (an Invoke callback, a
/// job worker) cannot be kept: at most [`MAX_OUTPUT_VARIABLES`], names of
/// letters, digits and `_-` (at most 128), values of at most 1000 characters.
pub fn output_variables_problem(variables: &std::collections::BTreeMap<String, String>) -> Option<String> {
    if variables.len() > MAX_OUTPUT_VARIABLES {
        return Some(format!("outputVariables: at most {MAX_OUTPUT_VARIABLES}"));
    }
    variables.iter().find_map(|(name, value)| {
        let named = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
        (!named || value.chars().count() > 1000).then(|| {
            format!(
                "outputVariables.{name}: a name of letters, digits and _- (at most 128), a value of at most 1000 characters"
            )
        })
    })
}

/// CodePipeline's statuses, for executions, stages and actions alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Status {
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Superseded,
    Failed,
    Cancelled,
    Abandoned,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Self::InProgress,
        Self::Stopping,
        Self::Stopped,
        Self::Succeeded,
        Self::Superseded,
        Self::Failed,
        Self::Cancelled,
        Self::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Succeeded => "Succeeded",
            Self::Superseded => "Superseded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::Abandoned => "Abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether nothing more happens to it.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::InProgress | Self::Stopping)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
