//! What users, groups and roles share: their inline policies and attached
//! managed policies. Each entity's handlers look the entity up, then call
//! these with its id.

use actix_web::{HttpResponse, web};
use pipewright_core::iam::paging::Page;
use pipewright_core::iam::policies::{self, OwnerKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Paging;
use crate::error::{ApiError, ErrorCode};

/// A policy document: a JSON object, or a string holding one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDocumentRequest {
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub policy_document: serde_json::Value,
}

impl PolicyDocumentRequest {
    /// The document as text, as it will be stored and returned.
    pub fn text(&self) -> Result<String, ApiError> {
        document_text(&self.policy_document, "policyDocument")
    }
}

/// A policy document given as a JSON object or a string holding one, as text.
pub fn document_text(value: &serde_json::Value, field: &str) -> Result<String, ApiError> {
    match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Object(_) => Ok(value.to_string()),
        _ => Err(ApiError::new(
            ErrorCode::MalformedPolicyDocumentException,
            format!("{field} must be a JSON object or a string holding one"),
        )),
    }
}

/// A stored document, as a JSON object when it is one.
pub fn document_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlinePolicyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    pub policy_name: String,
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub policy_document: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyNamesResponse {
    pub policy_names: Vec<String>,
    pub next_token: Option<String>,
    pub is_truncated: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyArnRequest {
    #[schema(example = "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess")]
    pub policy_arn: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachedPolicy {
    pub policy_name: String,
    pub policy_arn: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachedPoliciesResponse {
    pub attached_policies: Vec<AttachedPolicy>,
    pub next_token: Option<String>,
    pub is_truncated: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PolicyArnQuery {
    pub policy_arn: String,
}

/// An entity that owns policies, already looked up in the caller's account.
pub struct Owner<'a> {
    pub kind: OwnerKind,
    pub account: &'a str,
    pub id: String,
    pub name: String,
}

impl Owner<'_> {
    pub async fn put(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        policy_name: &str,
        body: &PolicyDocumentRequest,
    ) -> Result<HttpResponse, ApiError> {
        let document = body.text()?;
        policies::put_inline(conn, self.kind, self.account, &self.id, policy_name, &document).await?;
        Ok(HttpResponse::Ok().finish())
    }

    pub async fn get(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        policy_name: String,
    ) -> Result<web::Json<InlinePolicyResponse>, ApiError> {
        let document = policies::get_inline(conn, &self.id, &policy_name).await?;
        let name = Some(self.name.clone());
        Ok(web::Json(InlinePolicyResponse {
            user_name: name.clone().filter(|_| self.kind == OwnerKind::User),
            group_name: name.clone().filter(|_| self.kind == OwnerKind::Group),
            role_name: name.filter(|_| self.kind == OwnerKind::Role),
            policy_name,
            policy_document: document_value(&document),
        }))
    }

    pub async fn delete(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        policy_name: &str,
    ) -> Result<HttpResponse, ApiError> {
        policies::delete_inline(conn, &self.id, policy_name).await?;
        Ok(HttpResponse::NoContent().finish())
    }

    pub async fn list(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        paging: &Paging,
    ) -> Result<web::Json<PolicyNamesResponse>, ApiError> {
        let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
        let (policy_names, next_token) = policies::list_inline(conn, &self.id, &page).await?;
        Ok(web::Json(PolicyNamesResponse { policy_names, is_truncated: next_token.is_some(), next_token }))
    }

    pub async fn attach(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        arn: &str,
    ) -> Result<HttpResponse, ApiError> {
        policies::attach(conn, self.account, &self.id, arn).await?;
        Ok(HttpResponse::Ok().finish())
    }

    pub async fn list_attached(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        paging: &Paging,
    ) -> Result<web::Json<AttachedPoliciesResponse>, ApiError> {
        let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
        let (arns, next_token) = policies::list_attached(conn, &self.id, &page).await?;
        let attached_policies = arns
            .into_iter()
            .map(|arn| AttachedPolicy {
                policy_name: arn.rsplit('/').next().unwrap_or_default().to_owned(),
                policy_arn: arn,
            })
            .collect();
        Ok(web::Json(AttachedPoliciesResponse { attached_policies, is_truncated: next_token.is_some(), next_token }))
    }

    pub async fn detach(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        arn: &str,
    ) -> Result<HttpResponse, ApiError> {
        policies::detach(conn, &self.id, arn).await?;
        Ok(HttpResponse::NoContent().finish())
    }
}
