//! Pipewright's HTTP API: routing, the error type, request ids and metrics,
//! the ops endpoints and the OpenAPI document.

pub mod audit;
pub mod auth;
pub mod aws;
pub mod catalogue;
pub mod console;
pub mod error;
pub mod fallback;
pub mod handlers;
pub mod ops;
pub mod revocations;
pub mod server;
pub mod telemetry;

pub use server::{RunningApi, RunningHealth, openapi, start, start_health};

use utoipa::OpenApi;

/// The document's fixed parts; operations are collected from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pipewright",
        description = "A self-hosted continuous-delivery service modelled on AWS CodePipeline. \
            Every operation is under /v1; errors are `{code, message, requestId}`. \
            The AWS CLI and SDKs call the same operations at /aws, in AWS's protocols.",
    ),
    paths(aws::aws_protocol_call),
    components(schemas(error::ErrorBody, error::ErrorCode, aws::AwsError)),
    modifiers(&Security),
    tags(
        (name = "ops", description = "Liveness, readiness and metrics, for operators and orchestrators"),
        (name = "accounts", description = "Accounts (tenants) and their root users"),
        (name = "auth", description = "Signing in and out, tokens, and who the caller is"),
        (name = "iam", description = "Users, groups, roles and policies, as AWS IAM has them"),
        (name = "sts", description = "Assuming roles, in this account or another"),
        (name = "audit", description = "The audit log of every API call"),
        (name = "pipelines", description = "Pipeline declarations, action types and tags, as CodePipeline has them"),
        (name = "executions", description = "Runs of pipelines: starting, watching, approving"),
        (name = "secrets", description = "An account's secrets, as Secrets Manager has them: values are never answered, only read by actions"),
        (name = "notifications", description = "Notification rules on pipelines, as CodeStar Notifications has them, and their delivery log"),
        (name = "webhooks", description = "Webhooks in: URLs a Git host posts push and pull-request events to, as CodePipeline has them"),
        (name = "jobs", description = "The job API of custom actions, as CodePipeline has it: job workers poll for jobs, acknowledge them and give their results"),
        (name = "aws", description = "The AWS endpoint: the AWS CLI and SDKs call the /v1 operations in AWS's own protocols, signed with SigV4"),
    )
)]
pub struct ApiDoc;

/// The security schemes, and on every operation its IAM action and resource
/// (`x-pw-iam-action`, `x-pw-resource`).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "sigv4",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "Authorization",
                    "AWS Signature Version 4 (AWS4-HMAC-SHA256) by a Pipewright access key, as the AWS CLI and SDKs sign",
                ),
            )),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the operator token (PIPEWRIGHT_OPERATOR_TOKEN)"))
                    .build(),
            ),
        );
    }
}
