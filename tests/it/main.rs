//! End-to-end tests: the API over HTTP against the real PostgreSQL, RabbitMQ
//! and Redis. One binary, so that the workspace links one test executable.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod action_types;
mod artifacts;
mod audit;
mod aws;
mod clients;
mod cluster;
mod console;
mod deploy;
mod errors;
mod examples;
mod executions;
mod hardening;
mod identity;
mod invoke;
mod isolation;
mod jobs;
mod keys;
mod notifications;
mod openapi;
mod ops;
mod outages;
mod pipelines;
mod process;
mod schemathesis;
mod secrets;
mod security;
mod sigv4;
mod sts;
mod support;
mod triggers;
mod webhooks;
