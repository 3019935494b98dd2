//! Pipewright's access-control core, modelled on AWS IAM: ARNs, the policy
//! grammar, condition operators, policy variables, evaluation and trust
//! checks. Pure: no I/O, no async, no database.
//!
//! Compile a policy once with [`Policy::parse`], then decide requests with
//! [`evaluate`] or [`evaluate_assume_role`].

pub mod arn;
pub mod condition;
pub mod context;
pub mod eval;
pub mod glob;
pub mod policy;
pub mod simulate;
pub mod strict_json;
pub mod variables;

pub use arn::{AccountId, Arn};
pub use context::{Context, ContextValue};
pub use eval::{
    Decision, Evaluation, MatchedStatement, NamedPolicy, Principal, PrincipalType, Request, evaluate,
    evaluate_assume_role, evaluate_principal, service_may_assume,
};
pub use policy::{Effect, Policy, PolicyError, PolicyKind};

#[cfg(test)]
mod rules;

#[cfg(test)]
mod properties;
