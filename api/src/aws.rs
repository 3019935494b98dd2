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
use pipewright_core::auth::tokens::{Claims, PrincipalKind};
use pipewright_core::iam::access_keys::{self, SigningKey};
use pipewright_core::iam::users;
use pipewright_core::sigv4::{self, Authorization, Refusal};
use serde_json::{Map, Value, json};

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

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The middleware: serves `/aws` by way of the `/v1` operations, and lets
/// every other request through untouched.
pub async fn gateway(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !is_aws_path(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    match enter(&mut req).await {
        Ok(call) => Ok(answer(next.call(req).await?.map_into_boxed_body(), &call).await),
        Err(refused) => Ok(req.into_response(error_response(&refused))),
    }
}

/// What the answer of a routed call is turned back with.
struct Call {
    operation: String,
    account: String,
}

/// Verifies the call and turns it into its `/v1` request.
async fn enter(req: &mut ServiceRequest) -> Result<Call, ApiError> {
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let found = SERVICES
        .iter()
        .find_map(|s| s.prefixes.iter().find_map(|p| target.strip_prefix(p)).map(|operation| (s, operation)));
    if let Some((_, operation)) = found {
        req.extensions_mut().insert(AwsOperation(operation.to_owned()));
    }
    if req.method() != Method::POST {
        return Err(unknown_operation("the AWS endpoint takes POST requests with an X-Amz-Target header"));
    }
    let Some((service, operation)) = found else {
        return Err(unknown_operation(
            "X-Amz-Target names no service Pipewright speaks: CodePipeline_20150709.* and CloudTrail_20131101.*",
        ));
    };
    let operation = operation.to_owned();
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)?;
    let catalogue = req.app_data::<web::Data<Catalogue>>().cloned().ok_or_else(ApiError::internal)?;
    let body = crate::auth::read_limited(req.take_payload(), BODY_LIMIT, "the body").await?;
    let claims = authenticate(req, &state, service, &body).await?;
    let account = claims.acct.clone();
    req.extensions_mut().insert(SignedClaims(claims));

    let entry = catalogue
        .get(&operation)
        .filter(|e| e.json && e.action.as_deref().is_some_and(|a| a.split(':').next() == Some(service.iam)))
        .ok_or_else(|| {
            unknown_operation(format!(
                "Pipewright does not implement {operation} of {}; see the README's list of operations",
                service.signing_name
            ))
        })?;
    let mut fields = match body.iter().all(u8::is_ascii_whitespace) {
        true => Map::new(),
        false => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(ApiError::new(ErrorCode::SerializationException, "the body must be a JSON object")),
            Err(e) => {
                return Err(ApiError::new(ErrorCode::SerializationException, format!("the body is not JSON: {e}")));
            }
        },
    };
    if let Some(pipeline) = fields.get_mut("pipeline").and_then(Value::as_object_mut)
        && pipeline.get("roleArn").and_then(Value::as_str) == Some(no_role(&account).as_str())
    {
        pipeline.remove("roleArn");
    }
    let routed = route(entry, fields, &state.region)?;
    rewrite(req, entry, routed)?;
    Ok(Call { operation, account })
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

/// Checks the request's SigV4 signature and names its principal.
async fn authenticate(
    req: &ServiceRequest,
    state: &AppState,
    service: &Service,
    body: &[u8],
) -> Result<Claims, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if header.is_some_and(|h| h.starts_with("Bearer ") || h.starts_with("bearer ")) {
        return Err(ApiError::new(
            ErrorCode::IncompleteSignatureException,
            "the AWS endpoint takes requests signed with Signature Version 4 (an AWS SDK or the AWS CLI with an access key); a bearer token is for /v1",
        ));
    }
    let authorization = Authorization::parse(header).map_err(refused)?;
    if authorization.service != service.signing_name {
        return Err(ApiError::new(
            ErrorCode::InvalidSignatureException,
            format!("Credential should be scoped to correct service: '{}'. ", service.signing_name),
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
    for needed in ["host", "x-amz-target"] {
        if !authorization.signed_headers.iter().any(|h| h == needed) {
            return Err(ApiError::new(
                ErrorCode::IncompleteSignatureException,
                format!("'{needed}' must be a signed header"),
            ));
        }
    }
    if req.headers().contains_key("x-amz-security-token") {
        return Err(ApiError::new(
            ErrorCode::UnrecognizedClientException,
            "temporary credentials (X-Amz-Security-Token) are not accepted yet; sign with an IAM user's access key",
        ));
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
    sigv4::verify(&request, &authorization, secret.expose_secret(), chrono::Utc::now()).map_err(refused)?;
    access_keys::record_use(&mut conn, &key.access_key_id).await?;
    let Some(user) = users::find_by_id(&mut conn, &key.user_id).await? else {
        return Err(ApiError::new(
            ErrorCode::UnrecognizedClientException,
            "The security token included in the request is invalid.",
        ));
    };
    let session = access_keys::signing_session(&key.access_key_id);
    let mut claims =
        Claims::new(user.arn(), user.account_id.clone(), PrincipalKind::User, user.user_id.clone(), session, 900);
    claims.name = Some(user.user_name.clone());
    claims.key = Some(key.access_key_id);
    Ok(claims)
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
fn route(entry: &Entry, mut fields: Map<String, Value>, region: &str) -> Result<Routed, ApiError> {
    let operation = entry.name.as_str();
    adapt_request(operation, &mut fields, region)?;
    let mut path = Vec::new();
    for parameter in entry.path_parameters() {
        let value = match (operation, parameter) {
            ("UpdatePipeline", "name") => fields.get("pipeline").and_then(|p| p.get("name")).cloned(),
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
                let name = aws_field(operation, parameter).first().copied().unwrap_or(parameter);
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
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        query.push((name.clone(), scalar(&name, item)?));
                    }
                }
                other => query.push((name.clone(), scalar(&name, other)?)),
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
                if let Some(id) = filter.remove("pipelineExecutionId") {
                    fields.insert("pipelineExecutionId".to_owned(), id);
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
                for attribute in attributes {
                    let key = attribute.get("AttributeKey").and_then(Value::as_str).unwrap_or_default();
                    let value = attribute.get("AttributeValue").cloned().unwrap_or(Value::Null);
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
            "MaxResults" => {
                query.insert("maxResults".to_owned(), value);
            }
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

/// An error as AWS's JSON protocols answer it: `{"__type", "message"}`,
/// 400 for a client's error (a server's keeps its status, which the SDKs
/// retry), with the `/v1` error's headers and audit record.
pub fn error_response(error: &ApiError) -> actix_web::HttpResponse {
    let mut response = error.error_response();
    let status = aws_status(response.status());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    let body = json!({"__type": error.code.as_str(), "message": error.message});
    response.set_body(BoxBody::new(serde_json::to_vec(&body).unwrap_or_default()))
}

fn aws_status(status: StatusCode) -> StatusCode {
    if status.is_client_error() { StatusCode::BAD_REQUEST } else { status }
}

/// The `/v1` answer in the AWS protocol's form.
async fn answer(response: ServiceResponse<BoxBody>, call: &Call) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let catalogue = response.request().app_data::<web::Data<Catalogue>>().cloned();
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
    let (status, value) = if status.is_success() {
        let mut value = value;
        match catalogue.as_deref() {
            _ if call.operation == "LookupEvents" => lookup_events_response(&mut value),
            Some(catalogue) => {
                to_epoch_seconds(&mut value, catalogue);
                if let Some(pipeline) = value.get_mut("pipeline").and_then(Value::as_object_mut)
                    && !pipeline.contains_key("roleArn")
                {
                    pipeline.insert("roleArn".to_owned(), json!(no_role(&call.account)));
                }
            }
            None => {}
        }
        (StatusCode::OK, value)
    } else {
        let fallback = if status.is_client_error() { "ValidationException" } else { "InternalFailure" };
        let code = value.get("code").and_then(Value::as_str).unwrap_or(fallback).to_owned();
        let message = value.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        // AWS's JSON protocols answer every client error with 400.
        (aws_status(status), json!({"__type": code, "message": message}))
    };
    *head.status_mut() = status;
    head.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    head.headers_mut().remove(header::CONTENT_LENGTH);
    if let Some(id) = head
        .headers()
        .get(crate::telemetry::REQUEST_ID_HEADER)
        .cloned()
        .or_else(|| crate::telemetry::current_request_id().and_then(|id| HeaderValue::from_str(&id).ok()))
    {
        head.headers_mut().insert(header::HeaderName::from_static("x-amzn-requestid"), id);
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    let response = head.set_body(BoxBody::new(bytes));
    ServiceResponse::new(request, response)
}

/// Times as AWS's JSON protocols give them: seconds since the epoch.
fn to_epoch_seconds(value: &mut Value, catalogue: &Catalogue) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if let Value::String(text) = field
                    && catalogue.is_timestamp(name)
                    && let Ok(time) = chrono::DateTime::parse_from_rfc3339(text)
                {
                    let millis = time.timestamp_millis();
                    *field = match serde_json::Number::from_f64(millis as f64 / 1000.0) {
                        Some(n) => Value::Number(n),
                        None => Value::Null,
                    };
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
    let user_name = identity
        .get("userName")
        .or_else(|| identity.pointer("/sessionContext/sessionIssuer/userName"))
        .cloned()
        .unwrap_or(Value::Null);
    let resources: Vec<Value> = event
        .get("resources")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|r| json!({"ResourceType": r.get("type").cloned().unwrap_or(Value::Null), "ResourceName": r.get("arn").cloned().unwrap_or(Value::Null)}))
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
