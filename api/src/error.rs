//! The API's one error type and its table of codes: each code has one HTTP
//! status, and every error leaves as `{"code", "message", "requestId"}`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use pipewright_core::deps::Unavailable;
use serde::Serialize;
use utoipa::ToSchema;

use crate::telemetry;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $status:ident;)*) => {
        /// Every error code the API answers with, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

error_codes! {
    /// A field or parameter is missing or has a value that is not allowed.
    ValidationException = BAD_REQUEST;
    /// The body is not well-formed JSON.
    SerializationException = BAD_REQUEST;
    /// IAM: a value is not valid (a name, a path, a parameter).
    InvalidInputException = BAD_REQUEST;
    /// IAM: the policy document is not valid; the message names the statement and element.
    MalformedPolicyDocumentException = BAD_REQUEST;
    /// IAM: the password does not meet the account's password policy.
    PasswordPolicyViolationException = BAD_REQUEST;
    /// No credentials were given: send `Authorization: Bearer <accessToken>`.
    MissingAuthenticationTokenException = UNAUTHORIZED;
    /// The credentials are not valid (unknown, malformed, or signed out).
    UnrecognizedClientException = UNAUTHORIZED;
    /// The AWS endpoint: the request's SigV4 signature is not the one its
    /// access key's secret makes, or its time is more than 15 minutes off.
    InvalidSignatureException = FORBIDDEN;
    /// The AWS endpoint: the request's SigV4 authorization is not whole.
    IncompleteSignatureException = BAD_REQUEST;
    /// The access token has expired: refresh it or sign in again.
    ExpiredTokenException = UNAUTHORIZED;
    /// Sign-in failed: the account, user name or password is wrong.
    NotAuthorizedException = UNAUTHORIZED;
    /// The caller's policies do not allow the action on the resource.
    AccessDeniedException = FORBIDDEN;
    /// IAM: the entity does not exist.
    NoSuchEntityException = NOT_FOUND;
    /// IAM: an entity of that name exists already.
    EntityAlreadyExistsException = CONFLICT;
    /// IAM: the entity still has things attached; remove them first.
    DeleteConflictException = CONFLICT;
    /// IAM: a quota would be exceeded.
    LimitExceededException = CONFLICT;
    /// CodePipeline: the pipeline's structure is not valid; `errors` names each path and rule.
    InvalidStructureException = BAD_REQUEST;
    /// CodePipeline: no pipeline of that name in the account.
    PipelineNotFoundException = NOT_FOUND;
    /// CodePipeline: the pipeline has no execution of that id.
    PipelineExecutionNotFoundException = NOT_FOUND;
    /// CodePipeline: no action type of that id (a built-in one, or the account's custom one).
    ActionTypeNotFoundException = NOT_FOUND;
    /// CodePipeline: the pipeline has no action execution of that id.
    ActionExecutionNotFoundException = NOT_FOUND;
    /// CodePipeline: the stage has no action of that name.
    ActionNotFoundException = NOT_FOUND;
    /// The action produced no artifact of that name.
    ArtifactNotFoundException = NOT_FOUND;
    /// CodePipeline: the approval token is not the waiting approval's.
    InvalidApprovalTokenException = BAD_REQUEST;
    /// CodePipeline: the approval was already answered (or is not waiting).
    ApprovalAlreadyCompletedException = CONFLICT;
    /// CodePipeline: the execution cannot stop now (it is not in progress).
    PipelineExecutionNotStoppableException = CONFLICT;
    /// CodePipeline: the stage cannot be retried now (not failed, or a newer execution ran it).
    StageNotRetryableException = CONFLICT;
    /// CodePipeline: the pipeline has no stage of that name.
    StageNotFoundException = NOT_FOUND;
    /// CodePipeline: the pipeline has no such version.
    PipelineVersionNotFoundException = NOT_FOUND;
    /// CodePipeline: a pipeline of that name exists already.
    PipelineNameInUseException = CONFLICT;
    /// The resource changed since the version the request was based on: read it again.
    ConcurrentModificationException = CONFLICT;
    /// The resource named by an ARN does not exist.
    ResourceNotFoundException = NOT_FOUND;
    /// Secrets Manager: a secret of that name exists already.
    ResourceExistsException = CONFLICT;
    /// An Invoke/HTTP action's callback is not signed with the secret its request carried.
    CallbackSignatureMismatchException = UNAUTHORIZED;
    /// CodeStar Notifications: a rule of that name exists already.
    ResourceAlreadyExistsException = CONFLICT;
    /// CodePipeline: no webhook of that name (or at that URL).
    WebhookNotFoundException = NOT_FOUND;
    /// CodePipeline: a webhook's authentication is not valid (PutWebhook), or a delivery's signature,
    /// token or address is not the webhook's.
    InvalidWebhookAuthenticationParametersException = BAD_REQUEST;
    /// CodePipeline: a webhook's filter is not valid (a JSONPath that does not parse, a property
    /// the target action lacks).
    InvalidWebhookFilterPatternException = BAD_REQUEST;
    /// A webhook delivery was not signed with the webhook's secret (or came from outside its
    /// allowed range): refused, and recorded in the webhook's account.
    WebhookAuthenticationFailedException = UNAUTHORIZED;
    /// CodePipeline: no job of that id in the account.
    JobNotFoundException = NOT_FOUND;
    /// CodePipeline: the nonce is not the one of the job's latest dispatch (another job worker
    /// took it, or it was handed out again).
    InvalidNonceException = BAD_REQUEST;
    /// CodePipeline: the job is not in a state that allows this (not acknowledged, or ended).
    InvalidJobStateException = BAD_REQUEST;
    /// CodePipeline: the output variables are too large.
    OutputVariablesSizeExceededException = BAD_REQUEST;
    /// The ARN is not one of a resource this operation takes.
    InvalidArnException = BAD_REQUEST;
    /// A tag key or value is not allowed.
    InvalidTagsException = BAD_REQUEST;
    /// CloudTrail: a time range's end is before its start.
    InvalidTimeRangeException = BAD_REQUEST;
    /// The resource would have more than 50 tags.
    TooManyTagsException = BAD_REQUEST;
    /// No operation is at this path.
    UnknownOperationException = NOT_FOUND;
    /// The path exists but not with this HTTP method.
    MethodNotAllowedException = METHOD_NOT_ALLOWED;
    /// The body is larger than the operation accepts.
    RequestEntityTooLargeException = PAYLOAD_TOO_LARGE;
    /// The body is not of a media type the operation accepts.
    UnsupportedMediaTypeException = UNSUPPORTED_MEDIA_TYPE;
    /// Too many requests; retry after the time in `Retry-After`.
    ThrottlingException = TOO_MANY_REQUESTS;
    /// A service Pipewright depends on is down; retry shortly.
    ServiceUnavailableException = SERVICE_UNAVAILABLE;
    /// A fault of the service itself; the request id finds it in the logs.
    InternalFailure = INTERNAL_SERVER_ERROR;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u32>,
    /// Extra headers, e.g. `Allow` on a 405.
    pub allow: Option<String>,
    /// Every problem, where a request has several (a pipeline declaration).
    pub errors: Vec<ErrorDetail>,
    /// A pooled PostgreSQL connection turned out to be lost (the server
    /// restarted): a read may be served once more on a new one.
    pub lost_connection: bool,
}

/// On a response: the call failed on a lost PostgreSQL connection
/// ([`crate::server::RetryLostConnection`] serves a read once more).
#[derive(Debug, Clone, Copy)]
pub struct LostConnection;

/// One problem of a request: where, which rule, what to change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The offending field, e.g. `stages[2].actions[0].inputArtifacts[0]`.
    pub path: String,
    /// The rule, e.g. `ArtifactNotProducedUpstream`.
    pub rule: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
            errors: Vec::new(),
            lost_connection: false,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationException, message)
    }

    /// A service behind the API failed for now: 503, retry in a few seconds.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { retry_after: Some(5), ..Self::new(ErrorCode::ServiceUnavailableException, message) }
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::InternalFailure,
            "the service failed to process the request; the request id finds it in the service's logs",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, as a stable name, e.g. `ValidationException`.
    pub code: ErrorCode,
    /// What went wrong and what to change, for a person.
    pub message: String,
    /// The request's id, also in the `x-request-id` header and the logs.
    pub request_id: String,
    /// Every problem, when a request has several (a pipeline declaration).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDetail>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.code == ErrorCode::InternalFailure {
            tracing::error!(message = %self.message, "internal failure");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(allow) = self.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
            response.insert_header((header::ALLOW, allow));
        }
        let mut response = response.json(ErrorBody {
            code: self.code,
            message: self.message.clone(),
            request_id: telemetry::current_request_id().unwrap_or_default(),
            errors: self.errors.clone(),
        });
        response
            .extensions_mut()
            .insert(crate::audit::AuditedError { code: self.code.as_str(), message: self.message.clone() });
        if self.lost_connection {
            response.extensions_mut().insert(LostConnection);
        }
        response
    }
}

impl From<pipewright_core::executions::way_in::NotStarted> for ApiError {
    fn from(e: pipewright_core::executions::way_in::NotStarted) -> Self {
        use pipewright_core::executions::way_in::NotStarted;
        match e {
            NotStarted::Refused(why) => Self::validation(why),
            NotStarted::Failed(e) => e.into(),
        }
    }
}

impl From<pipewright_core::iam::IamError> for ApiError {
    fn from(e: pipewright_core::iam::IamError) -> Self {
        use pipewright_core::iam::IamError as E;
        match e {
            E::NoSuchEntity(m) => Self::new(ErrorCode::NoSuchEntityException, m),
            E::EntityAlreadyExists(m) => Self::new(ErrorCode::EntityAlreadyExistsException, m),
            E::DeleteConflict(m) => Self::new(ErrorCode::DeleteConflictException, m),
            E::LimitExceeded(m) => Self::new(ErrorCode::LimitExceededException, m),
            E::MalformedPolicyDocument(m) => Self::new(ErrorCode::MalformedPolicyDocumentException, m),
            E::InvalidInput(m) => Self::new(ErrorCode::InvalidInputException, m),
            E::PasswordPolicyViolation(m) => Self::new(ErrorCode::PasswordPolicyViolationException, m),
            E::Unavailable(u) => u.into(),
            E::Database(e) if pipewright_core::iam::is_unavailable(&e) => Self {
                retry_after: Some(5),
                lost_connection: true,
                ..Self::new(
                    ErrorCode::ServiceUnavailableException,
                    "PostgreSQL is unavailable, so the service cannot complete this request now; retry shortly",
                )
            },
            E::Database(e) => {
                tracing::error!(error = %e, "database error");
                Self::internal()
            }
        }
    }
}

impl From<Unavailable> for ApiError {
    fn from(e: Unavailable) -> Self {
        tracing::warn!(dependency = %e.dependency, address = %e.address, reason = %e.reason, "dependency unavailable");
        Self {
            retry_after: Some(5),
            ..Self::new(
                ErrorCode::ServiceUnavailableException,
                format!(
                    "{} is unavailable, so the service cannot complete this request now; retry shortly",
                    e.dependency
                ),
            )
        }
    }
}

/// Turns actix's own rejections of a request (bad JSON, bad path or query
/// parameters) into ours, so that every error has the same shape.
pub mod rejections {
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::{HttpRequest, web};

    use super::{ApiError, ErrorCode};

    /// Largest JSON body accepted.
    pub const JSON_LIMIT: usize = 1024 * 1024;

    pub fn json_config() -> web::JsonConfig {
        web::JsonConfig::default().limit(JSON_LIMIT).error_handler(json)
    }

    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default().error_handler(|e: PathError, _: &HttpRequest| {
            ApiError::validation(format!("invalid path parameter: {e}")).into()
        })
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|e: QueryPayloadError, _: &HttpRequest| {
            let detail = match &e {
                QueryPayloadError::Deserialize(inner) => without_values(&inner.to_string()),
                other => other.to_string(),
            };
            ApiError::validation(format!("invalid query string: {detail}")).into()
        })
    }

    /// serde's message without the value it found (`invalid type: integer
    /// `12345`, expected a string` names the kind only): the value may be a
    /// password sent in the wrong form, and messages reach the caller, the
    /// logs and the audit log.
    pub fn without_values(message: &str) -> String {
        for prefix in ["invalid type: ", "invalid value: "] {
            if let Some(rest) = message.strip_prefix(prefix)
                // The last ", expected ": the value may hold those words.
                && let Some((found, expected)) = rest.rsplit_once(", expected ")
            {
                let kind = if found.starts_with("floating point") {
                    "floating point"
                } else {
                    found.split([' ', '`', '"']).next().unwrap_or_default()
                };
                return format!("{prefix}{kind}, expected {expected}");
            }
        }
        if let Some(rest) = message.strip_prefix("unknown variant ")
            && let Some((_, expected)) = rest.rsplit_once(", expected ")
        {
            return format!("unknown variant, expected {expected}");
        }
        message.to_owned()
    }

    pub(crate) fn json(e: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
        let error = match &e {
            JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
                ErrorCode::RequestEntityTooLargeException,
                format!("the body is {length} bytes; at most {limit} are accepted"),
            ),
            JsonPayloadError::Overflow { limit } => ApiError::new(
                ErrorCode::RequestEntityTooLargeException,
                format!("the body is larger than the {limit} bytes accepted"),
            ),
            JsonPayloadError::ContentType => ApiError::new(
                ErrorCode::UnsupportedMediaTypeException,
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(inner) if inner.is_data() => ApiError::validation(format!(
                "the body does not fit the operation: {}",
                without_values(&inner.to_string())
            )),
            JsonPayloadError::Deserialize(inner) => {
                ApiError::new(ErrorCode::SerializationException, format!("the body is not valid JSON: {inner}"))
            }
            other => ApiError::new(ErrorCode::SerializationException, format!("the body could not be read: {other}")),
        };
        error.into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_messages_lose_the_values_they_found() {
        use super::rejections::without_values;
        for (message, shown) in [
            (
                "invalid type: integer `987654321`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            ("invalid type: string \"hunter2, expected x\", expected u32", "invalid type: string, expected u32"),
            (
                "invalid type: floating point `1.5`, expected a string",
                "invalid type: floating point, expected a string",
            ),
            ("invalid value: string \"s3cret\", expected a valid date", "invalid value: string, expected a valid date"),
            ("unknown variant `s3cret`, expected `none` or `egress`", "unknown variant, expected `none` or `egress`"),
            ("missing field `password` at line 1 column 2", "missing field `password` at line 1 column 2"),
        ] {
            assert_eq!(without_values(message), shown);
        }
    }

    use actix_web::body::MessageBody;
    use actix_web::error::JsonPayloadError;
    use actix_web::test::TestRequest;

    use super::*;

    fn rejected(error: JsonPayloadError) -> (StatusCode, serde_json::Value) {
        let request = TestRequest::default().to_http_request();
        let response = rejections::json(error, &request).error_response();
        let status = response.status();
        let body = response.into_body().try_into_bytes().expect("a whole body");
        (status, serde_json::from_slice(&body).expect("JSON"))
    }

    #[test]
    fn bad_json_bodies_get_our_codes() {
        let syntax = serde_json::from_str::<serde_json::Value>("{\"a\":").expect_err("truncated");
        let (status, body) = rejected(JsonPayloadError::Deserialize(syntax));
        assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("SerializationException")));

        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Named {
            name: String,
        }
        let shape = serde_json::from_str::<Named>("{}").expect_err("missing field");
        let (status, body) = rejected(JsonPayloadError::Deserialize(shape));
        assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("ValidationException")));
        assert!(body["message"].as_str().expect("text").contains("missing field `name`"), "{body}");

        let (status, body) = rejected(JsonPayloadError::ContentType);
        assert_eq!((status.as_u16(), body["code"].as_str()), (415, Some("UnsupportedMediaTypeException")));

        let (status, body) = rejected(JsonPayloadError::OverflowKnownLength { length: 9, limit: 4 });
        assert_eq!((status.as_u16(), body["code"].as_str()), (413, Some("RequestEntityTooLargeException")));
        assert!(body["message"].as_str().expect("text").contains("at most 4"), "{body}");
    }

    #[test]
    fn every_code_has_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            let status = code.status();
            assert!(status.is_client_error() || status.is_server_error(), "{code}: {status}");
            assert!(code.as_str().ends_with("Exception") || code.as_str() == "InternalFailure");
        }
    }
}
