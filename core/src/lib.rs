//! What Pipewright's api and worker share: configuration, the three services
//! (PostgreSQL, RabbitMQ, Redis) and their readiness, and the secrets the
//! service keeps. The pipeline model, the execution state machine and the
//! repositories join it as they are built.

pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod cache;
pub mod config;
pub mod db;
pub mod deps;
pub mod executions;
pub mod iam;
pub mod keyring;
pub mod keys;
pub mod messaging;
pub mod metrics;
pub mod notifications;
pub mod pipelines;
pub mod schema;
pub mod secrets;
pub mod services;
pub mod signing;
pub mod sigv4;
pub mod webhooks;
