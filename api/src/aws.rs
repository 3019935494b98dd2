//! The AWS endpoint (`/aws`): the AWS CLI and SDKs call Pipewright with
//! the protocols they speak to AWS — CodePipeline's and CloudTrail's JSON
//! 1.1 (`POST` with `X-Amz-Target: Service.Operation`), signed with
//! Signature Version 4 by a Pipewright access key.
//!
//! A call is not served here: it is verified, then turned into the `/v1`
//! call of the operation of that name (found in the [`Catalogue`], read
//! from the handlers' own declarations) and routed to that handler, so that
//! the principal, the `authz` decision (same action, same ARN), the limits
//! and the audit event are those of `/v1`. Its answer is turned back into
//! the AWS protocol's: the same fields, times as epoch seconds, errors as
//! `{"__type", "message"}` with 400 for a client's error (decision 027).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use pipewright_core::auth::tokens::{Claims, PrincipalKind, TokenError};
use pipewright_core::iam::access_keys::{self, SigningKey};
use pipewright_core::iam::users;
use pipewright_core::sigv4::{self, Authorization, Refusal};
use serde_json::{Map, Value, json};

use crate::audit::AuditedResponse;
use crate::catalogue::{Catalogue, Entry};
use crate::error::{ApiError, ErrorCode};
use crate::server::AppState;

/// Where the AWS tools are pointed (`--endpoint-url http://HOST:PORT/aws`).
pub const PATH: &str = "/aws";

/// The largest request body taken: `/v1`'s JSON limit (1 MiB).
const BODY_LIMIT: usize = crate::error::rejections::JSON_LIMIT;

/// Whether a request is for the AWS endpoint.
pub fn is_aws_path(path: &str) -> bool {
    path == PATH || path == "/aws/"
}

/// An error as AWS's JSON protocols give it (the query protocol's is
/// `<ErrorResponse>` XML with the same code and message).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AwsError {
    /// The error code, e.g. `AccessDeniedException`, `InvalidSignatureException`.
    #[serde(rename = "__type")]
    pub kind: String,
    pub message: String,
}

/// A call in an AWS protocol, as the AWS CLI and SDKs make it: CodePipeline
/// and CloudTrail in JSON 1.1 (`X-Amz-Target: CodePipeline_20150709.GetPipeline`,
/// a JSON body with the operation's fields), STS and IAM in the query
/// protocol (a form with `Action`, `Version` and the fields, answered in
/// XML). Each call is the `/v1` operation of that name, authorised and
/// audited as it; the operations and their fields are AWS's, as botocore's
/// models describe them. Point a tool here with `endpoint_url`.
#[utoipa::path(
    post,
    path = "/aws",
    tag = "aws",
    operation_id = "AwsProtocolCall",
    params(("X-Amz-Target" = Option<String>, Header, description = "JSON 1.1: the service and operation, e.g. `CodePipeline_20150709.GetPipeline`")),
    request_body(
        content = Object,
        content_type = "application/x-amz-json-1.1",
        description = "the operation's fields, as the AWS service's model names them"
    ),
    responses(
        (status = 200, description = "the operation's answer, as the AWS service's model describes it (times in epoch seconds)", content_type = "application/x-amz-json-1.1", body = Object),
        (status = 400, description = "refused: a bad or missing signature, an unknown operation, a field not taken, or the operation's own error", content_type = "application/x-amz-json-1.1", body = AwsError),
        (status = 500, description = "the service failed; the SDKs retry", content_type = "application/x-amz-json-1.1", body = AwsError),
        (status = 503, description = "the audit log or a service behind the API is down; the SDKs retry", content_type = "application/x-amz-json-1.1", body = AwsError),
    ),
    security(("sigv4" = []))
)]
#[allow(dead_code, reason = "documentation only: the gateway middleware serves /aws")]
pub async fn aws_protocol_call() {}

/// The claims of a request whose SigV4 signature was verified here;
/// `auth::authenticate` takes them instead of a bearer token.
#[derive(Debug, Clone)]
pub struct SignedClaims(pub Claims);

/// The AWS operation a call named, for its audit event (also when it is
/// refused before it reaches an operation).
#[derive(Debug, Clone)]
pub struct AwsOperation(pub String);

/// A JSON protocol's service: its `X-Amz-Target` prefix, its SigV4 signing
/// name and its IAM service.
struct Service {
    prefixes: &'static [&'static str],
    signing_name: &'static str,
    iam: &'static str,
}

const SERVICES: &[Service] = &[
    Service { prefixes: &["CodePipeline_20150709."], signing_name: "codepipeline", iam: "codepipeline" },
    Service {
        prefixes: &["com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.", "CloudTrail_20131101."],
        signing_name: "cloudtrail",
        // Pipewright's audit log answers CloudTrail's operations.
        iam: "audit",
    },
];

/// A query protocol's service (STS, IAM): its SigV4 signing name (also its
/// IAM service), its API version and its XML namespace.
struct QueryService {
    signing_name: &'static str,
    version: &'static str,
    xmlns: &'static str,
}

const QUERY_SERVICES: &[QueryService] = &[
    QueryService { signing_name: "sts", version: "2011-06-15", xmlns: "https://sts.amazonaws.com/doc/2011-06-15/" },
    QueryService { signing_name: "iam", version: "2010-05-08", xmlns: "https://iam.amazonaws.com/doc/2010-05-08/" },
];

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The protocol a call speaks, and so the form of its answer.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// JSON 1.1 (`X-Amz-Target`): CodePipeline, CloudTrail.
    Json,
    /// The query protocol (`Action=…` in a form, XML answers): STS, IAM.
    Query { xmlns: &'static str },
}

impl Protocol {
    /// The protocol a request to the AWS endpoint speaks, from its headers:
    /// a form without `X-Amz-Target` is the query protocol.
    pub fn of(headers: &actix_web::http::header::HeaderMap) -> Self {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if form && !headers.contains_key("x-amz-target") {
            // Which service's namespace: read from the signature's scope.
            let service = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| Authorization::parse(Some(h)).ok())
                .map(|a| a.service);
            let xmlns = QUERY_SERVICES
                .iter()
                .find(|s| Some(s.signing_name) == service.as_deref())
                .map_or(QUERY_SERVICES[0].xmlns, |s| s.xmlns);
            Self::Query { xmlns }
        } else {
            Self::Json
        }
    }
}

/// The middleware: serves `/aws` by way of the `/v1` operations, and lets
/// every other request through untouched.
pub async fn gateway(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !is_aws_path(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let protocol = Protocol::of(req.headers());
    req.extensions_mut().insert(protocol);
    match enter(&mut req, protocol).await {
        Ok(call) => Ok(answer(next.call(req).await?.map_into_boxed_body(), &call).await),
        Err(refused) => Ok(req.into_response(error_response(protocol, &refused))),
    }
}

fn holds_nul(fields: &Map<String, Value>) -> bool {
    fn value(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(value),
            Value::Object(map) => holds_nul(map),
            _ => false,
        }
    }
    fields.iter().any(|(k, v)| k.contains('\0') || value(v))
}

/// IAM's operations whose `UserName` defaults to the caller's own.
const OWN_USER_BY_DEFAULT: &[&str] =
    &["GetUser", "CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey"];

/// A call's fields as they came: a JSON object, or a form's pairs.
enum Fields {
    Json(Result<Map<String, Value>, ApiError>),
    Form(Vec<(String, String)>),
}

/// What the answer of a routed call is turned back with.
struct Call {
    operation: String,
    account: String,
    protocol: Protocol,
}

/// Verifies the call and turns it into its `/v1` request.
async fn enter(req: &mut ServiceRequest, protocol: Protocol) -> Result<Call, ApiError> {
    if req.method() != Method::POST {
        return Err(unknown_operation(
            "the AWS endpoint takes POST requests: JSON with an X-Amz-Target header, or a form with Action",
        ));
    }
    if !req.query_string().is_empty() {
        return Err(ApiError::validation(
            "the AWS endpoint takes no query string: send the operation's fields in the body",
        ));
    }
    // One of each header that names who calls and what: a second one could
    // be read otherwise by whatever stands in front.
    for name in ["authorization", "x-amz-target", "x-amz-security-token", "x-amz-date", "content-type", "host"] {
        if req.headers().get_all(name).nth(1).is_some() {
            return Err(ApiError::new(
                ErrorCode::IncompleteSignatureException,
                format!("the request has more than one {name} header"),
            ));
        }
    }
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)?;
    let catalogue = req.app_data::<web::Data<Catalogue>>().cloned().ok_or_else(ApiError::internal)?;
    let (service, iam, operation, body, fields) = match protocol {
        Protocol::Json => {
            let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let found = SERVICES
                .iter()
                .find_map(|s| s.prefixes.iter().find_map(|p| target.strip_prefix(p)).map(|operation| (s, operation)));
            let Some((service, operation)) = found else {
                return Err(unknown_operation(
                    "X-Amz-Target names no service Pipewright speaks: CodePipeline_20150709.* and CloudTrail_20131101.* (STS and IAM take the query protocol)",
                ));
            };
            let content_type =
                req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let json = content_type.starts_with("application/x-amz-json-1.");
            let body = crate::auth::read_limited(req.take_payload(), BODY_LIMIT, "the body").await?;
            // Read now, refused (if it must be) once the caller is known.
            let fields = if !json {
                Err(ApiError::new(
                    ErrorCode::UnsupportedMediaTypeException,
                    "a call with X-Amz-Target is sent as application/x-amz-json-1.1",
                ))
            } else if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Map::new())
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(fields)) => Ok(fields),
                    Ok(_) => Err(ApiError::new(ErrorCode::SerializationException, "the body must be a JSON object")),
                    Err(e) => {
                        Err(ApiError::new(ErrorCode::SerializationException, format!("the body is not JSON: {e}")))
                    }
                }
            };
            (service.signing_name, service.iam, operation.to_owned(), body, Fields::Json(fields))
        }
        Protocol::Query { .. } => {
            let body = crate::auth::read_limited(req.take_payload(), BODY_LIMIT, "the body").await?;
            let form = parse_form(&body).ok_or_else(|| {
                ApiError::validation("the body is not a form of UTF-8 text (application/x-www-form-urlencoded)")
            })?;
            for once in ["Action", "Version"] {
                if form.iter().filter(|(k, _)| k == once).count() > 1 {
                    return Err(ApiError::validation(format!("{once} is given twice")));
                }
            }
            let action = form.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
            if action.is_empty() {
                return Err(unknown_operation("the form names no Action"));
            }
            let scope = Authorization::parse(req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
                .map_err(refused)?;
            let Some(service) = QUERY_SERVICES.iter().find(|s| s.signing_name == scope.service) else {
                return Err(unknown_operation(format!(
                    "the query protocol serves sts and iam here, not {:?}",
                    scope.service
                )));
            };
            let version = form.iter().find(|(k, _)| k == "Version").map(|(_, v)| v.as_str());
            if version != Some(service.version) {
                return Err(ApiError::validation(format!(
                    "Version must be {} for {}",
                    service.version, service.signing_name
                )));
            }
            let form = form.into_iter().filter(|(k, _)| k != "Action" && k != "Version").collect();
            (service.signing_name, service.signing_name, action, body, Fields::Form(form))
        }
    };
    // The event is named by the operation only when it is one of the
    // service's (a made-up name is recorded as UnknownOperation).
    let entry = catalogue
        .get(&operation)
        .filter(|e| e.json && e.action.as_deref().is_some_and(|a| a.split(':').next() == Some(iam)));
    if let Some(entry) = entry {
        req.extensions_mut().insert(AwsOperation(entry.name.clone()));
    }
    let (claims, checked) = authenticate(req, &state, protocol, service, &body).await?;
    let account = claims.acct.clone();
    req.extensions_mut().insert(SignedClaims(claims.clone()));
    // The principal is checked now, so that a call refused from here on is
    // recorded in its account, as its caller's. (An access key's user was
    // found, and the key active, just now: that is the check.)
    if checked {
        crate::auth::caller_of(req.request(), claims);
    } else {
        crate::auth::principal_stands(req.request(), &state, claims).await?;
    }
    let entry = entry.ok_or_else(|| {
        unknown_operation(format!(
            "Pipewright does not implement {} of {service}; see the README's list of operations",
            operation.chars().take(64).collect::<String>()
        ))
    })?;
    let mut fields = match fields {
        Fields::Json(fields) => fields?,
        Fields::Form(form) => query_fields(entry, form)?,
    };
    // As at the edge for /v1: no field takes a NUL character.
    if holds_nul(&fields) {
        return Err(ApiError::validation(
            "the request holds a NUL character (\\u0000 in JSON, %00 in a form), which no field takes: remove it",
        ));
    }
    // The call's fields as the AWS tool sent them (secrets hidden by name).
    req.extensions_mut().insert(crate::audit::AuditedRequest(Value::Object(fields.clone())));
    if let Some(pipeline) = fields.get_mut("pipeline").and_then(Value::as_object_mut)
        && pipeline.get("roleArn").and_then(Value::as_str) == Some(no_role(&account).as_str())
    {
        pipeline.remove("roleArn");
    }
    // IAM: a user's own name where `UserName` is left out (GetUser,
    // ListAccessKeys, CreateAccessKey, …), as IAM takes it from the key.
    if service == "iam"
        && OWN_USER_BY_DEFAULT.contains(&entry.name.as_str())
        && !fields.contains_key("userName")
        && let Some(caller) = req.extensions().get::<crate::auth::Caller>()
        && caller.claims.typ == PrincipalKind::User
        && let Some(name) = &caller.claims.name
    {
        fields.insert("userName".to_owned(), json!(name));
    }
    let routed = route(entry, fields, &state.region, &account)?;
    rewrite(req, entry, routed)?;
    Ok(Call { operation, account, protocol })
}

/// The `roleArn` a pipeline without a role is shown with, and is read back
/// as no role: the AWS CLI requires one of every pipeline it sends, so that
/// `get-pipeline` output can be sent back by `create-pipeline` unchanged.
/// No role can have this ARN (a role's name has no parentheses).
pub fn no_role(account: &str) -> String {
    format!("arn:pw:iam::{account}:role/(none)")
}

fn unknown_operation(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::UnknownOperationException, message)
}

/// Checks the request's SigV4 signature and names its principal: an IAM
/// user's access key, or a role session's temporary credentials (with its
/// session token); and whether that principal was checked as it stands now
/// (the key's user found, the key active) or still must be.
async fn authenticate(
    req: &ServiceRequest,
    state: &AppState,
    protocol: Protocol,
    service: &str,
    body: &[u8],
) -> Result<(Claims, bool), ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if header.is_some_and(|h| h.starts_with("Bearer ") || h.starts_with("bearer ")) {
        return Err(ApiError::new(
            ErrorCode::IncompleteSignatureException,
            "the AWS endpoint takes requests signed with Signature Version 4 (an AWS SDK or the AWS CLI with an access key); a bearer token is for /v1",
        ));
    }
    let authorization = Authorization::parse(header).map_err(refused)?;
    if authorization.service != service {
        return Err(ApiError::new(
            ErrorCode::InvalidSignatureException,
            format!("Credential should be scoped to correct service: '{service}'. "),
        ));
    }
    if authorization.region != state.region {
        return Err(ApiError::new(
            ErrorCode::InvalidSignatureException,
            format!(
                "Credential should be scoped to a valid region, not '{}'; this service's region is '{}' (aws configure set region {})",
                authorization.region, state.region, state.region
            ),
        ));
    }
    let needed: &[&str] = match protocol {
        Protocol::Json => &["host", "x-amz-target"],
        Protocol::Query { .. } => &["host"],
    };
    for needed in needed {
        if !authorization.signed_headers.iter().any(|h| h == needed) {
            return Err(ApiError::new(
                ErrorCode::IncompleteSignatureException,
                format!("'{needed}' must be a signed header"),
            ));
        }
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let request = sigv4::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or_default(),
        headers: &headers,
        body,
    };
    use secrecy::ExposeSecret;
    let invalid = || {
        ApiError::new(ErrorCode::UnrecognizedClientException, "The security token included in the request is invalid.")
    };
    if let Some(token) = req.headers().get("x-amz-security-token") {
        // Temporary credentials: the session token is the role session's
        // access token, and the key id and secret are derived from it.
        if !authorization.signed_headers.iter().any(|h| h == "x-amz-security-token") {
            return Err(ApiError::new(
                ErrorCode::IncompleteSignatureException,
                "'x-amz-security-token' must be a signed header",
            ));
        }
        let token = token.to_str().map_err(|_| invalid())?.trim();
        let mut verified = state.keys.verify(token);
        if matches!(verified, Err(TokenError::UnknownKey))
            && state.shared_keys.reload_for_unknown_key(&state.services.db).await
        {
            verified = state.keys.verify(token);
        }
        let claims = verified.map_err(|e| match e {
            TokenError::Expired => {
                ApiError::new(ErrorCode::ExpiredTokenException, "The security token included in the request is expired")
            }
            TokenError::Invalid | TokenError::UnknownKey => invalid(),
        })?;
        // Only a session token made for SigV4 (not a session's bearer token).
        if claims.typ != PrincipalKind::AssumedRole || !claims.sigv4 {
            return Err(invalid());
        }
        let credentials = access_keys::session_credentials(&state.secrets, claims.sid);
        if !pipewright_core::signing::same_secret(
            credentials.access_key_id.as_bytes(),
            authorization.access_key_id.as_bytes(),
        ) {
            return Err(invalid());
        }
        sigv4::verify(&request, &authorization, credentials.secret_access_key.expose_secret(), chrono::Utc::now())
            .map_err(refused)?;
        return Ok((claims, false));
    }
    let mut conn = state.services.db.conn().await?;
    let key = match access_keys::signing_key(&mut conn, &state.secrets, &authorization.access_key_id).await? {
        SigningKey::Active(key, secret) => Some((key, secret)),
        // One message for both: it does not tell whether an older key of
        // that id exists.
        SigningKey::NeedsRotation | SigningKey::Unknown => None,
    };
    let Some((key, secret)) = key else {
        return Err(ApiError::new(
            ErrorCode::UnrecognizedClientException,
            "The security token included in the request is invalid. (An active access key made before Pipewright took SigV4 cannot sign: make a new one.)",
        ));
    };
    sigv4::verify(&request, &authorization, secret.expose_secret(), chrono::Utc::now()).map_err(refused)?;
    if key.last_used_at.is_none_or(|at| at < chrono::Utc::now() - chrono::TimeDelta::minutes(1)) {
        access_keys::record_use(&mut conn, &key.access_key_id).await?;
    }
    let Some(user) = users::find_by_id(&mut conn, &key.user_id).await? else { return Err(invalid()) };
    let session = access_keys::signing_session(&key.access_key_id);
    let mut claims =
        Claims::new(user.arn(), user.account_id.clone(), PrincipalKind::User, user.user_id.clone(), session, 900);
    claims.name = Some(user.user_name.clone());
    claims.key = Some(key.access_key_id);
    Ok((claims, true))
}

/// A SigV4 refusal as the JSON protocols answer it.
fn refused(refusal: Refusal) -> ApiError {
    let code = match refusal {
        Refusal::Missing => ErrorCode::MissingAuthenticationTokenException,
        Refusal::Incomplete(_) => ErrorCode::IncompleteSignatureException,
        Refusal::Skewed(_) | Refusal::Mismatch | Refusal::Inconsistent(_) => ErrorCode::InvalidSignatureException,
    };
    ApiError::new(code, refusal.message())
}

/// A `/v1` request: its path parameters, query and body.
struct Routed {
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

/// The name of a managed policy, from its ARN: one of the caller's
/// account, or a built-in one (`arn:pw:iam::pw:policy/NAME`; no account's
/// policy may take a built-in's name, so the name finds it alone).
fn policy_name(arn: &str, account: &str) -> Result<String, ApiError> {
    let refused = || {
        ApiError::validation(format!(
            "PolicyArn {arn:?} is neither a policy of this account (arn:pw:iam::{account}:policy/NAME) nor a built-in one (arn:pw:iam::pw:policy/NAME)"
        ))
    };
    if let Some(name) = arn.strip_prefix("arn:pw:iam::pw:policy/") {
        return match pipewright_core::iam::builtin::BUILTIN_POLICIES.iter().find(|(n, ..)| *n == name) {
            Some((n, ..)) => Ok((*n).to_owned()),
            None => Err(refused()),
        };
    }
    let rest = arn.strip_prefix(&format!("arn:pw:iam::{account}:policy/")).ok_or_else(refused)?;
    let name = rest.rsplit('/').next().unwrap_or(rest);
    if name.is_empty() { Err(refused()) } else { Ok(name.to_owned()) }
}

/// The AWS field a path parameter is read from, where the names differ.
fn aws_field(operation: &str, parameter: &str) -> &'static [&'static str] {
    match (operation, parameter) {
        ("GetPipeline" | "DeletePipeline" | "GetPipelineState" | "StartPipelineExecution", "name") => &["name"],
        (_, "name") => &["pipelineName", "name"],
        (_, "stage") => &["stageName"],
        (_, "action") => &["actionName"],
        (_, "id") => &["pipelineExecutionId"],
        _ => &[],
    }
}

/// Maps an AWS request's fields onto the operation's `/v1` request.
fn route(entry: &Entry, mut fields: Map<String, Value>, region: &str, account: &str) -> Result<Routed, ApiError> {
    let operation = entry.name.as_str();
    adapt_request(operation, &mut fields, region)?;
    let mut path = Vec::new();
    for parameter in entry.path_parameters() {
        let value = match (operation, parameter) {
            ("UpdatePipeline", "name") => fields.get("pipeline").and_then(|p| p.get("name")).cloned(),
            // IAM names a managed policy by its ARN; `/v1` by its name, in
            // the caller's account.
            (_, "policyName") if !fields.contains_key("policyName") && fields.contains_key("policyArn") => {
                match fields.remove("policyArn") {
                    Some(Value::String(arn)) => Some(json!(policy_name(&arn, account)?)),
                    _ => None,
                }
            }
            ("DeleteCustomActionType", "owner") => Some(json!("Custom")),
            _ => {
                let names = aws_field(operation, parameter);
                let names = if names.is_empty() { std::slice::from_ref(&parameter) } else { names };
                names.iter().find_map(|n| fields.remove(*n))
            }
        };
        let value = match value {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                let name = match (operation, parameter) {
                    ("UpdatePipeline", "name") => "pipeline.name",
                    _ => aws_field(operation, parameter).first().copied().unwrap_or(parameter),
                };
                return Err(ApiError::validation(format!("{operation} needs {name}")));
            }
        };
        path.push((parameter.to_owned(), value));
    }
    let mut query = Vec::new();
    if entry.method == "GET" || entry.method == "DELETE" || !entry.body {
        for (name, value) in fields {
            if !entry.query.contains(&name) {
                return Err(ApiError::validation(format!(
                    "{operation}: Pipewright does not take {name} (the fields it takes here: {})",
                    entry.query.join(", ")
                )));
            }
            match value {
                Value::Null => {
                    return Err(ApiError::validation(format!("{name} is null: give a value or leave it out")));
                }
                Value::Array(items) => {
                    for item in items {
                        query.push((name.clone(), scalar(&name, item)?));
                    }
                }
                other => {
                    // Typed as the operation declares its parameter.
                    let kind = entry.query_types.get(&name).map(String::as_str);
                    let fits = match (kind, &other) {
                        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
                        (Some("integer" | "number"), _) => other.is_number(),
                        (Some("boolean"), _) => other.is_boolean(),
                        _ => true,
                    };
                    if !fits {
                        return Err(ApiError::validation(format!(
                            "{name} must be {}",
                            match kind {
                                Some("boolean") => "true or false",
                                Some("integer") => "a whole number",
                                _ => "a number",
                            }
                        )));
                    }
                    query.push((name.clone(), scalar(&name, other)?));
                }
            }
        }
        return Ok(Routed { path, query, body: None });
    }
    Ok(Routed { path, query, body: Some(Value::Object(fields)) })
}

fn scalar(name: &str, value: Value) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ApiError::validation(format!("{name} must be a string, a number or a boolean"))),
    }
}

/// Where an operation's AWS request differs from its `/v1` one in more than
/// names.
fn adapt_request(operation: &str, fields: &mut Map<String, Value>, region: &str) -> Result<(), ApiError> {
    match operation {
        "DisableStageTransition" | "EnableStageTransition" => match fields.remove("transitionType") {
            Some(Value::String(t)) if t == "Inbound" => Ok(()),
            Some(Value::String(t)) if t == "Outbound" => Err(ApiError::validation(
                "transitionType Outbound is not built: Pipewright disables a stage's inbound transition (give Inbound, on the next stage)",
            )),
            _ => Err(ApiError::validation("transitionType must be Inbound")),
        },
        "ListActionExecutions" => {
            if let Some(filter) = fields.remove("filter") {
                let Value::Object(mut filter) = filter else {
                    return Err(ApiError::validation("filter must be an object"));
                };
                match filter.remove("pipelineExecutionId") {
                    Some(Value::String(id)) => {
                        fields.insert("pipelineExecutionId".to_owned(), Value::String(id));
                    }
                    Some(_) => return Err(ApiError::validation("filter.pipelineExecutionId must be a string")),
                    None => {}
                }
                if let Some(other) = filter.keys().next() {
                    return Err(ApiError::validation(format!(
                        "filter.{other} is not built; filter by pipelineExecutionId"
                    )));
                }
            }
            Ok(())
        }
        "ListPipelineExecutions" => match fields.get("filter") {
            Some(_) => Err(ApiError::validation("filter (succeededInStage) is not built; list without it")),
            None => Ok(()),
        },
        "ListActionTypes" => {
            match fields.remove("regionFilter") {
                Some(Value::String(r)) if r != region => {
                    return Err(ApiError::validation(format!("regionFilter: this service's region is {region}")));
                }
                _ => {}
            }
            Ok(())
        }
        "ListWebhooks" => {
            for (aws, ours) in [("NextToken", "nextToken"), ("MaxResults", "maxResults")] {
                if let Some(value) = fields.remove(aws) {
                    fields.insert(ours.to_owned(), value);
                }
            }
            Ok(())
        }
        "LookupEvents" => lookup_events_request(fields),
        _ => Ok(()),
    }
}

/// CloudTrail's LookupEvents, onto `/v1`'s query.
fn lookup_events_request(fields: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut query = Map::new();
    for (name, value) in std::mem::take(fields) {
        match name.as_str() {
            "LookupAttributes" => {
                let Value::Array(attributes) = value else {
                    return Err(ApiError::validation("LookupAttributes must be a list"));
                };
                if attributes.len() > 1 {
                    return Err(ApiError::validation("LookupAttributes takes one attribute, as CloudTrail's does"));
                }
                for attribute in attributes {
                    let key = attribute.get("AttributeKey").and_then(Value::as_str).unwrap_or_default();
                    let Some(value) = attribute.get("AttributeValue").filter(|v| v.is_string()).cloned() else {
                        return Err(ApiError::validation("LookupAttributes: AttributeValue must be a string"));
                    };
                    let ours = match key {
                        "EventName" => "eventName",
                        "Username" => "userName",
                        "ReadOnly" => "readOnly",
                        "ResourceName" => "resourceArn",
                        _ => {
                            return Err(ApiError::validation(format!(
                                "LookupAttributes: AttributeKey {key:?} is not built; use EventName, Username, ReadOnly or ResourceName (an ARN)"
                            )));
                        }
                    };
                    query.insert(ours.to_owned(), value);
                }
            }
            "StartTime" | "EndTime" => {
                let seconds = value.as_f64().ok_or_else(|| ApiError::validation(format!("{name} must be a time")))?;
                let time = chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
                    .ok_or_else(|| ApiError::validation(format!("{name} is out of range")))?;
                let ours = if name == "StartTime" { "startTime" } else { "endTime" };
                query.insert(ours.to_owned(), json!(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
            }
            "MaxResults" => match value.as_i64() {
                Some(n) if (1..=50).contains(&n) => {
                    query.insert("maxResults".to_owned(), value);
                }
                _ => {
                    return Err(ApiError::validation(
                        "MaxResults must be a whole number from 1 to 50, as CloudTrail's",
                    ));
                }
            },
            "NextToken" => {
                query.insert("nextToken".to_owned(), value);
            }
            "EventCategory" if value.as_str() == Some("management") => {}
            _ => {
                return Err(ApiError::validation(format!(
                    "LookupEvents: {name} is not built (Pipewright takes LookupAttributes, StartTime, EndTime, MaxResults, NextToken)"
                )));
            }
        }
    }
    if let (Some(Value::String(start)), Some(Value::String(end))) = (query.get("startTime"), query.get("endTime"))
        && end < start
    {
        return Err(ApiError::new(ErrorCode::InvalidTimeRangeException, "EndTime is earlier than StartTime"));
    }
    *fields = query;
    Ok(())
}

/// Turns the request into the `/v1` call that the router then serves.
fn rewrite(req: &mut ServiceRequest, entry: &Entry, routed: Routed) -> Result<(), ApiError> {
    let mut path = String::new();
    for segment in entry.template.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let value = routed.path.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_default();
                path.push_str(&crate::handlers::percent_encode(value));
            }
            None => path.push_str(segment),
        }
    }
    let query: Vec<String> = routed
        .query
        .iter()
        .map(|(n, v)| format!("{}={}", crate::handlers::percent_encode(n), crate::handlers::percent_encode(v)))
        .collect();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let uri: Uri = path.parse().map_err(|_| ApiError::validation("a name holds characters no route takes"))?;
    let method = Method::from_bytes(entry.method.as_bytes()).map_err(|_| ApiError::internal())?;
    let body = match routed.body {
        Some(body) => serde_json::to_vec(&body).map_err(|_| ApiError::internal())?,
        None => Vec::new(),
    };
    let head = req.head_mut();
    head.method = method;
    head.uri = uri.clone();
    head.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    head.headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    head.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    head.headers.remove(header::AUTHORIZATION);
    req.match_info_mut().get_mut().update(&uri);
    req.set_payload(actix_web::dev::Payload::from(web::Bytes::from(body)));
    Ok(())
}

/// An error as the protocol answers it — JSON: `{"__type", "message"}`;
/// query: `<ErrorResponse>` — with 400 for a client's error (a server's
/// keeps its status, which the SDKs retry), and the `/v1` error's headers
/// and audit record.
pub fn error_response(protocol: Protocol, error: &ApiError) -> actix_web::HttpResponse {
    let mut response = error.error_response();
    let status = aws_status(response.status());
    *response.status_mut() = status;
    let (content_type, body) = error_body(protocol, error.code.as_str(), &error.message, status);
    aws_headers(response.headers_mut(), content_type);
    response.set_body(BoxBody::new(body))
}

/// An answer's headers as the AWS SDKs read them: its media type, and the
/// request id as `x-amzn-RequestId` (the body's length is the new body's).
fn aws_headers(headers: &mut actix_web::http::header::HeaderMap, content_type: &'static str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.remove(header::CONTENT_LENGTH);
    if let Some(id) = crate::telemetry::current_request_id().and_then(|id| HeaderValue::from_str(&id).ok()) {
        headers.insert(header::HeaderName::from_static("x-amzn-requestid"), id);
    }
}

fn aws_status(status: StatusCode) -> StatusCode {
    if status.is_client_error() { StatusCode::BAD_REQUEST } else { status }
}

/// An error's body in the protocol's form, and its media type.
fn error_body(protocol: Protocol, code: &str, message: &str, status: StatusCode) -> (&'static str, Vec<u8>) {
    match protocol {
        Protocol::Json => {
            (JSON_1_1, serde_json::to_vec(&json!({"__type": code, "message": message})).unwrap_or_default())
        }
        Protocol::Query { xmlns } => {
            let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
            let id = crate::telemetry::current_request_id().unwrap_or_default();
            let xml = format!(
                "<ErrorResponse xmlns=\"{xmlns}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                escape(&query_code(code)),
                escape(message),
                escape(&id)
            );
            ("text/xml", xml.into_bytes())
        }
    }
}

/// An error code as STS and IAM name it (`AccessDenied`, `NoSuchEntity`, …).
fn query_code(code: &str) -> String {
    match code {
        "ValidationException" => "ValidationError".to_owned(),
        "UnrecognizedClientException" => "InvalidClientTokenId".to_owned(),
        "InvalidSignatureException" => "SignatureDoesNotMatch".to_owned(),
        "ThrottlingException" => "Throttling".to_owned(),
        "ServiceUnavailableException" => "ServiceUnavailable".to_owned(),
        "UnknownOperationException" => "InvalidAction".to_owned(),
        other => other.strip_suffix("Exception").unwrap_or(other).to_owned(),
    }
}

/// Text for XML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // (XML takes no other control character, not even escaped, nor
            // U+FFFE and U+FFFF.)
            c if ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {
                out.push('\u{FFFD}')
            }
            c => out.push(c),
        }
    }
    out
}

/// The `/v1` answer in the AWS protocol's form.
async fn answer(response: ServiceResponse<BoxBody>, call: &Call) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let catalogue = response.request().app_data::<web::Data<Catalogue>>().cloned();
    let state = response.request().app_data::<web::Data<AppState>>().cloned();
    let (request, response) = response.into_parts();
    let (mut head, body) = response.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be read");
            web::Bytes::new()
        }
    };
    let value: Value = if bytes.is_empty() { json!({}) } else { serde_json::from_slice(&bytes).unwrap_or(json!({})) };
    let (status, content_type, body) = if status.is_success() {
        let mut value = value;
        match call.protocol {
            Protocol::Json => {
                if call.operation == "LookupEvents" {
                    lookup_events_response(&mut value);
                } else if let Some(catalogue) = catalogue.as_deref() {
                    to_epoch_seconds(&mut value, catalogue);
                    if let Some(pipeline) = value.get_mut("pipeline").and_then(Value::as_object_mut)
                        && !pipeline.contains_key("roleArn")
                    {
                        pipeline.insert("roleArn".to_owned(), json!(no_role(&call.account)));
                    }
                }
                (StatusCode::OK, JSON_1_1, serde_json::to_vec(&value).unwrap_or_default())
            }
            Protocol::Query { xmlns } => {
                // The answer's record, from before it becomes XML (which the
                // audit log does not read); its secrets are hidden by name.
                if request.method() != Method::GET && head.extensions().get::<AuditedResponse>().is_none() {
                    head.extensions_mut().insert(AuditedResponse(value.clone()));
                }
                if call.operation == "AssumeRole"
                    && state.as_deref().is_none_or(|state| assume_role_response(state, &mut value).is_err())
                {
                    tracing::error!("an assumed role's temporary credentials could not be made");
                    let (content_type, body) = error_body(
                        call.protocol,
                        "InternalFailure",
                        "the temporary credentials could not be made; retry",
                        StatusCode::INTERNAL_SERVER_ERROR,
                    );
                    *head.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    aws_headers(head.headers_mut(), content_type);
                    return ServiceResponse::new(request, head.set_body(BoxBody::new(body)));
                }
                let id = crate::telemetry::current_request_id().unwrap_or_default();
                let operation = &call.operation;
                let xml = format!(
                    "<{operation}Response xmlns=\"{xmlns}\"><{operation}Result>{}</{operation}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{operation}Response>",
                    to_xml(&value),
                    escape(&id)
                );
                (StatusCode::OK, "text/xml", xml.into_bytes())
            }
        }
    } else {
        let fallback = if status.is_client_error() { "ValidationException" } else { "InternalFailure" };
        let code = value.get("code").and_then(Value::as_str).unwrap_or(fallback).to_owned();
        let message = value.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        let status = aws_status(status);
        let (content_type, body) = error_body(call.protocol, &code, &message, status);
        (status, content_type, body)
    };
    *head.status_mut() = status;
    aws_headers(head.headers_mut(), content_type);
    let response = head.set_body(BoxBody::new(body));
    ServiceResponse::new(request, response)
}

/// A JSON answer's fields as the query protocol's XML elements: names
/// capitalised, lists as `<member>`s, `nextToken` as IAM's `Marker`.
fn to_xml(value: &Value) -> String {
    match value {
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(name, v)| {
                let name = match name.as_str() {
                    "nextToken" => "Marker".to_owned(),
                    // (Names are the API's own; anything else could not be an element's.)
                    other => capitalised(other).chars().filter(char::is_ascii_alphanumeric).collect(),
                };
                // IAM gives policy documents as URL-encoded JSON text.
                if POLICY_DOCUMENTS.contains(&name.as_str()) && !v.is_string() {
                    return format!("<{name}>{}</{name}>", crate::handlers::percent_encode(&v.to_string()));
                }
                format!("<{name}>{}</{name}>", to_xml(v))
            })
            .collect(),
        Value::Array(items) => items.iter().map(|item| format!("<member>{}</member>", to_xml(item))).collect(),
        Value::String(text) => escape(text),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The elements of IAM's answers that hold a policy document.
const POLICY_DOCUMENTS: &[&str] = &["PolicyDocument", "AssumeRolePolicyDocument", "Document"];

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn uncapitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// STS's AssumeRole answer: the role session's temporary credentials for
/// SigV4 (decision 027), with its access token as the session token.
fn assume_role_response(state: &AppState, value: &mut Value) -> Result<(), ()> {
    use secrecy::ExposeSecret;
    let token = value.pointer("/credentials/accessToken").and_then(Value::as_str).ok_or(())?;
    let mut claims = state.keys.verify(token).map_err(|_| ())?;
    // The session token is the session's, marked for SigV4 only: alone, it
    // is no bearer token (as an AWS session token is nothing without its
    // secret).
    claims.sigv4 = true;
    let session_token = state.keys.sign(&claims).map_err(|_| ())?;
    let credentials = access_keys::session_credentials(&state.secrets, claims.sid);
    let expiration = value.pointer("/credentials/expiration").cloned().unwrap_or(Value::Null);
    value["credentials"] = json!({
        "accessKeyId": credentials.access_key_id,
        "secretAccessKey": credentials.secret_access_key.expose_secret(),
        "sessionToken": session_token,
        "expiration": expiration,
    });
    Ok(())
}

/// A query protocol form's pairs as the JSON fields of the operation's
/// `/v1` call: `UserName` → `userName`, `Tags.member.1.Key` →
/// `tags[0].key`, numbers and booleans typed as the operation's body
/// declares them; IAM's `Marker` and `MaxItems` → `nextToken` and
/// `maxResults`. A key given twice, or a list whose members are not
/// numbered 1 to n, is refused.
fn query_fields(entry: &Entry, form: Vec<(String, String)>) -> Result<Map<String, Value>, ApiError> {
    use std::collections::BTreeMap;
    let mut fields = Map::new();
    // Lists by name, their members by number (memory bounded by the pairs).
    let mut lists: BTreeMap<String, BTreeMap<usize, Value>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (key, text) in form {
        if !seen.insert(key.clone()) {
            return Err(ApiError::validation(format!("{key} is given twice")));
        }
        let mut parts = key.split('.');
        let given = parts.next().unwrap_or_default();
        let top = match given {
            "Marker" => "nextToken".to_owned(),
            "MaxItems" => "maxResults".to_owned(),
            other => uncapitalised(other),
        };
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            if lists.contains_key(&top) {
                return Err(ApiError::validation(format!("{key} is given both as a value and as a list")));
            }
            // (`RoleArn` and `roleArn` are one field: not twice either.)
            if fields.contains_key(&top) {
                return Err(ApiError::validation(format!("{key} is given twice")));
            }
            // Typed as the operation's body or query declares the field.
            let kind = entry.body_types.get(&top).or_else(|| entry.query_types.get(&top));
            let value = match kind.map(String::as_str) {
                Some("integer") | Some("number") => text
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| ApiError::validation(format!("{key} must be a number, not {text:?}")))?,
                Some("boolean") => match text.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => return Err(ApiError::validation(format!("{key} must be true or false"))),
                },
                _ => Value::String(text),
            };
            fields.insert(top, value);
            continue;
        }
        // `Name.member.N` or `Name.member.N.Field`.
        let number = rest.get(1).filter(|i| !i.starts_with('0') && i.bytes().all(|b| b.is_ascii_digit()));
        let (Some(&"member"), Some(index)) = (rest.first(), number.and_then(|i| i.parse::<usize>().ok())) else {
            return Err(ApiError::validation(format!("{key}: a list is sent as {given}.member.N (N from 1)")));
        };
        if index == 0 || index > 1000 {
            return Err(ApiError::validation(format!("{key}: members are numbered from 1 to 1000")));
        }
        if fields.contains_key(&top) {
            return Err(ApiError::validation(format!("{key}: {top} is given both as a value and as a list")));
        }
        let member = lists.entry(top.clone()).or_default().entry(index).or_insert(Value::Null);
        match rest.get(2) {
            None if member.is_null() => *member = Value::String(text),
            Some(field) if rest.len() == 3 && (member.is_null() || member.is_object()) => {
                if member.is_null() {
                    *member = Value::Object(Map::new());
                }
                let field = uncapitalised(field);
                if member.get(&field).is_some() {
                    return Err(ApiError::validation(format!("{key} is given twice")));
                }
                member[field] = Value::String(text);
            }
            Some(_) if rest.len() > 3 => {
                return Err(ApiError::validation(format!("{key}: lists of lists are not taken")));
            }
            _ => return Err(ApiError::validation(format!("{key}: a member is given both as a value and as fields"))),
        }
    }
    for (name, members) in lists {
        if members.keys().copied().ne(1..=members.len()) {
            return Err(ApiError::validation(format!("{name}: members must be numbered 1 to n, with none missing")));
        }
        fields.insert(name, Value::Array(members.into_values().collect()));
    }
    Ok(fields)
}

/// A form (`application/x-www-form-urlencoded`), decoded strictly: `+` is a
/// space, `%XX` a byte, and the result must be UTF-8.
fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    fn decode(part: &str) -> Option<String> {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = part.get(i + 1..i + 3)?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Fields whose keys a tenant names (an action's configuration, output
/// variables): left as they are.
const FREE_FORM: &[&str] = &["configuration", "outputVariables", "resolvedConfiguration", "customData"];

/// Times as AWS's JSON protocols give them: seconds since the epoch.
fn to_epoch_seconds(value: &mut Value, catalogue: &Catalogue) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                // Maps whose keys are the tenant's own: nothing in them is a time.
                if FREE_FORM.contains(&name.as_str()) {
                    continue;
                }
                if field.is_string() && catalogue.is_timestamp(name) {
                    // (A text that is no time stays as it is.)
                    if let seconds @ Value::Number(_) = epoch_seconds(field) {
                        *field = seconds;
                    }
                } else {
                    to_epoch_seconds(field, catalogue);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| to_epoch_seconds(v, catalogue)),
        _ => {}
    }
}

/// CloudTrail's LookupEvents answer, from `/v1`'s.
fn lookup_events_response(value: &mut Value) {
    let events = value.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
    let events: Vec<Value> = events.iter().map(cloudtrail_event).collect();
    let mut answer = json!({ "Events": events });
    if let Some(token) = value.get("nextToken").filter(|t| !t.is_null()) {
        answer["NextToken"] = token.clone();
    }
    *value = answer;
}

fn epoch_seconds(time: &Value) -> Value {
    time.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| serde_json::Number::from_f64(t.timestamp_millis() as f64 / 1000.0))
        .map_or(Value::Null, Value::Number)
}

/// A CloudTrail `Event` (LookupEvents' summary, with the whole record as
/// `CloudTrailEvent`).
fn cloudtrail_event(event: &Value) -> Value {
    let identity = event.get("userIdentity").cloned().unwrap_or(Value::Null);
    let user_name = match identity.get("type").and_then(Value::as_str) {
        Some("Root") => json!("root"),
        _ => identity
            .get("userName")
            .or_else(|| identity.pointer("/sessionContext/sessionIssuer/userName"))
            .cloned()
            .unwrap_or(Value::Null),
    };
    let resources: Vec<Value> = event
        .get("resources")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|r| {
                    let arn = r.get("arn").and_then(Value::as_str).unwrap_or_default();
                    json!({"ResourceType": resource_type(arn), "ResourceName": arn})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut summary = json!({
        "EventId": event.get("eventId").cloned().unwrap_or(Value::Null),
        "EventName": event.get("eventName").cloned().unwrap_or(Value::Null),
        "ReadOnly": event.get("readOnly").map(|r| r.to_string()).unwrap_or_default(),
        "EventTime": event.get("eventTime").map(epoch_seconds).unwrap_or(Value::Null),
        "EventSource": event.get("eventSource").cloned().unwrap_or(Value::Null),
        "Username": user_name,
        "Resources": resources,
        "CloudTrailEvent": event.to_string(),
    });
    if let Some(key) = identity.get("accessKeyId").filter(|k| !k.is_null()) {
        summary["AccessKeyId"] = key.clone();
    }
    summary
}

/// CloudTrail's resource type of an ARN (`AWS::CodePipeline::Pipeline`,
/// `AWS::IAM::User`, …), from its service and resource.
fn resource_type(arn: &str) -> String {
    let mut parts = arn.splitn(6, ':');
    let (service, resource) = (parts.nth(2).unwrap_or_default(), parts.nth(2).unwrap_or_default());
    let kind = match service {
        "codepipeline" if resource.starts_with("webhook:") => "AWS::CodePipeline::Webhook",
        "codepipeline" if resource.starts_with("actiontype:") => "AWS::CodePipeline::CustomActionType",
        "codepipeline" => "AWS::CodePipeline::Pipeline",
        "iam" if resource.starts_with("user/") => "AWS::IAM::User",
        "iam" if resource.starts_with("role/") => "AWS::IAM::Role",
        "iam" if resource.starts_with("group/") => "AWS::IAM::Group",
        "iam" if resource.starts_with("policy/") => "AWS::IAM::Policy",
        "iam" => "AWS::IAM::Account",
        "secretsmanager" => "AWS::SecretsManager::Secret",
        "sts" => "AWS::STS::AssumedRole",
        "" => return String::new(),
        other => return format!("AWS::{other}::Resource"),
    };
    kind.to_owned()
}

#[cfg(test)]
mod tests {
    use super::resource_type;

    #[test]
    fn resource_types_are_cloudtrails() {
        for (arn, kind) in [
            ("arn:pw:codepipeline:local:111122223333:web", "AWS::CodePipeline::Pipeline"),
            ("arn:pw:codepipeline:local:111122223333:web/Build/Compile", "AWS::CodePipeline::Pipeline"),
            ("arn:pw:codepipeline:local:111122223333:webhook:hook", "AWS::CodePipeline::Webhook"),
            (
                "arn:pw:codepipeline:local:111122223333:actiontype:Custom/Test/Scan/1",
                "AWS::CodePipeline::CustomActionType",
            ),
            ("arn:pw:iam::111122223333:user/dev", "AWS::IAM::User"),
            ("arn:pw:iam::111122223333:role/ops/deployer", "AWS::IAM::Role"),
            ("arn:pw:iam::pw:policy/AdministratorAccess", "AWS::IAM::Policy"),
            ("arn:pw:secretsmanager:local:111122223333:secret:db", "AWS::SecretsManager::Secret"),
            ("", ""),
        ] {
            assert_eq!(resource_type(arn), kind, "{arn}");
        }
    }
}
