//! Every operation as the OpenAPI document declares it, read once from the
//! document (which is collected from the handlers' own attributes): its
//! name, method, route template, query parameters, IAM action and whether
//! it answers JSON. The audit log names a call's event from it, and the AWS
//! endpoint dispatches an `X-Amz-Target` to the route it names: an operation
//! is written once, on its handler, and both protocols follow.

use std::collections::{HashMap, HashSet};

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr};

/// One operation.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The operationId: the AWS operation name.
    pub name: String,
    pub method: &'static str,
    /// The route template, e.g. `/v1/pipelines/{name}/state`.
    pub template: String,
    /// Its query parameters.
    pub query: Vec<String>,
    /// Its query parameters that are not strings, by type (`integer`,
    /// `number`, `boolean`).
    pub query_types: HashMap<String, String>,
    /// Whether it takes a request body.
    pub body: bool,
    /// Its IAM action (`service:Operation`), `None` for an operation that
    /// takes no credentials.
    pub action: Option<String>,
    /// Whether its successful answer is JSON (not a download or a stream).
    pub json: bool,
    /// Its JSON body's top-level fields that are not strings, by type
    /// (`integer`, `number`, `boolean`, `array`, `object`).
    pub body_types: HashMap<String, String>,
}

impl Entry {
    /// The names of the template's path parameters, in order.
    pub fn path_parameters(&self) -> Vec<&str> {
        self.template.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
    }
}

/// All operations, by route and by name, and the fields that are times.
#[derive(Debug, Default)]
pub struct Catalogue {
    by_route: HashMap<(String, String), String>,
    by_name: HashMap<String, Entry>,
    /// Properties of the document's schemas that hold a date-time.
    timestamps: HashSet<String>,
}

impl Catalogue {
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let mut catalogue = Self::default();
        let schemas =
            doc.components.as_ref().map(|c| serde_json::to_value(&c.schemas).unwrap_or_default()).unwrap_or_default();
        for (path, item) in &doc.paths.paths {
            for (method, operation) in [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                let Some(operation) = operation else { continue };
                let Some(name) = operation.operation_id.clone() else { continue };
                catalogue.by_route.insert((method.to_owned(), path.clone()), name.clone());
                let mut entry = entry(name.clone(), method, path, operation);
                entry.body_types = body_types(operation, &schemas);
                catalogue.by_name.insert(name, entry);
            }
        }
        collect_timestamps(&schemas, &mut catalogue.timestamps);
        catalogue
    }

    /// The operation served at a method and route template.
    pub fn name_of(&self, method: &str, template: &str) -> Option<&str> {
        self.by_route.get(&(method.to_owned(), template.to_owned())).map(String::as_str)
    }

    /// The operation of that name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name)
    }

    /// The IAM action an operation is declared with.
    pub fn action_of(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).and_then(|e| e.action.as_deref())
    }

    /// Whether a property of the API's schemas holds a date-time.
    pub fn is_timestamp(&self, property: &str) -> bool {
        self.timestamps.contains(property)
    }
}

fn entry(name: String, method: &'static str, path: &str, operation: &Operation) -> Entry {
    let parameters: Vec<_> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query) => Some(p),
            _ => None,
        })
        .collect();
    let query = parameters.iter().map(|p| p.name.clone()).collect();
    let query_types = parameters
        .iter()
        .filter_map(|p| {
            let schema = serde_json::to_value(&p.schema).ok()?;
            Some((p.name.clone(), non_string_type(&schema)?))
        })
        .collect();
    let action = operation
        .extensions
        .as_ref()
        .and_then(|e| e.get("x-pw-authorization"))
        .and_then(|a| a.get("action"))
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    let json = operation.responses.responses.iter().any(|(status, response)| {
        status.starts_with('2')
            && serde_json::to_value(response)
                .ok()
                .and_then(|r| r.get("content").cloned())
                .is_none_or(|content| content.get("application/json").is_some())
    });
    Entry {
        name,
        method,
        template: path.to_owned(),
        query,
        query_types,
        body: operation.request_body.is_some(),
        action,
        json,
        body_types: HashMap::new(),
    }
}

/// The types of a JSON request body's top-level fields that are not strings.
fn body_types(operation: &Operation, schemas: &serde_json::Value) -> HashMap<String, String> {
    let body = serde_json::to_value(&operation.request_body).unwrap_or_default();
    let Some(schema) = body.pointer("/content/application~1json/schema") else { return HashMap::new() };
    let schema = match schema.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => {
            schemas.get(reference.trim_start_matches("#/components/schemas/")).cloned().unwrap_or_default()
        }
        None => schema.clone(),
    };
    let mut types = HashMap::new();
    for (name, property) in schema.get("properties").and_then(|p| p.as_object()).into_iter().flatten() {
        if let Some(kind) = non_string_type(property) {
            types.insert(name.clone(), kind);
        }
    }
    types
}

/// A schema's type when it is not a string (nor only null).
fn non_string_type(schema: &serde_json::Value) -> Option<String> {
    let kinds: Vec<&str> = match schema.get("type") {
        Some(serde_json::Value::String(kind)) => vec![kind.as_str()],
        Some(serde_json::Value::Array(kinds)) => kinds.iter().filter_map(|k| k.as_str()).collect(),
        _ => Vec::new(),
    };
    kinds.into_iter().find(|k| !matches!(*k, "null" | "string")).map(str::to_owned)
}

/// Adds every property (at any depth) whose schema is a date-time.
fn collect_timestamps(schema: &serde_json::Value, into: &mut HashSet<String>) {
    match schema {
        serde_json::Value::Object(fields) => {
            if let Some(serde_json::Value::Object(properties)) = fields.get("properties") {
                for (name, property) in properties {
                    if property.get("format").and_then(|f| f.as_str()) == Some("date-time") {
                        into.insert(name.clone());
                    }
                }
            }
            for value in fields.values() {
                collect_timestamps(value, into);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_timestamps(v, into)),
        _ => {}
    }
}
