//! The shape of an IAM policy document, for the OpenAPI document only (the
//! service reads a document with `authz`, which says what is wrong with one
//! at its path): generated clients get typed statements instead of a bare
//! object. A document is sent as this object or as a string holding one.

#![allow(dead_code, clippy::large_enum_variant, reason = "schemas only: never built, only described")]

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

/// A policy document, or a string holding one (as IAM's API takes it).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PolicyDocumentOrText {
    Document(PolicyDocument),
    Text(String),
}

/// An IAM policy document.
#[derive(Serialize, ToSchema)]
pub struct PolicyDocument {
    /// `2012-10-17` (or the older `2008-10-17`).
    #[serde(rename = "Version", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "2012-10-17")]
    pub version: Option<String>,
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    /// One statement, or a list of them.
    #[serde(rename = "Statement")]
    pub statement: PolicyStatements,
}

/// One statement, or a list of them (IAM takes both).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PolicyStatements {
    One(PolicyStatement),
    Many(Vec<PolicyStatement>),
}

/// A string, or a list of strings.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// Allow or Deny.
#[derive(Serialize, ToSchema)]
pub enum PolicyEffect {
    Allow,
    Deny,
}

/// One statement: an effect on actions and resources (or, in a trust
/// policy, principals), under conditions.
#[derive(Serialize, ToSchema)]
pub struct PolicyStatement {
    #[serde(rename = "Sid", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sid: Option<String>,
    #[serde(rename = "Effect")]
    pub effect: PolicyEffect,
    /// e.g. `codepipeline:GetPipeline`, `codepipeline:*`.
    #[serde(rename = "Action", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub action: Option<StringOrList>,
    #[serde(rename = "NotAction", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub not_action: Option<StringOrList>,
    /// e.g. `arn:pw:codepipeline:local:111122223333:web/*`.
    #[serde(rename = "Resource", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub resource: Option<StringOrList>,
    #[serde(rename = "NotResource", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub not_resource: Option<StringOrList>,
    /// `*`, or `{"PW": ...}` / `{"Service": ...}` (trust policies).
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub principal: Option<Principal>,
    #[serde(rename = "NotPrincipal", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub not_principal: Option<Principal>,
    /// Operator → condition key → value(s), e.g.
    /// `{"StringEquals": {"pw:ResourceTag/team": "blue"}}`.
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub condition: Option<PolicyCondition>,
}

/// A statement's conditions: operator → condition key → value(s), e.g.
/// `{"StringEquals": {"sts:ExternalId": "ext-42"}}`.
#[derive(Serialize, ToSchema)]
pub struct PolicyCondition(HashMap<String, ConditionKeys>);

/// One operator's condition keys and their value(s).
#[derive(Serialize, ToSchema)]
pub struct ConditionKeys(HashMap<String, serde_json::Value>);

/// A statement's principal: everyone (`*`), or principals by kind.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Principal {
    Everyone(String),
    ByKind(PrincipalsByKind),
}

/// Principals by kind: `PW` (account roots, users, roles by ARN or
/// account id) or `Service`, each one or a list.
#[derive(Serialize, ToSchema)]
pub struct PrincipalsByKind(HashMap<String, StringOrList>);
