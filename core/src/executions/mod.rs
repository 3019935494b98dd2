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
