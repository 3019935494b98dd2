//! Requests that match no route: 404 `UnknownOperationException`, or 405 with
//! `Allow` when the path exists under other methods. The table of paths is
//! read from the OpenAPI document, the one list of what the API serves.

use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::OpenApi;

use crate::error::{ApiError, ErrorCode};

/// The paths the API serves, each with its methods.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<(Vec<Segment>, Vec<&'static str>)>,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Parameter,
}

impl RouteTable {
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let mut table = Self::default();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
                ("HEAD", item.head.is_some()),
                ("OPTIONS", item.options.is_some()),
            ];
            table.add(path, methods.iter().filter(|(_, on)| *on).map(|(m, _)| *m).collect());
        }
        table
    }

    /// Adds a route that is served outside the OpenAPI document.
    pub fn add(&mut self, template: &str, methods: Vec<&'static str>) {
        let segments = split(template)
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') { Segment::Parameter } else { Segment::Literal(s.to_owned()) }
            })
            .collect();
        self.routes.push((segments, methods));
    }

    /// The methods allowed on `path`, if any route has that shape.
    pub fn allowed(&self, path: &str) -> Option<Vec<&'static str>> {
        let parts: Vec<&str> = split(path).collect();
        let mut allowed: Vec<&'static str> = Vec::new();
        for (segments, methods) in &self.routes {
            let fits = segments.len() == parts.len()
                && segments.iter().zip(&parts).all(|(segment, part)| match segment {
                    Segment::Literal(literal) => literal == part,
                    Segment::Parameter => !part.is_empty(),
                });
            if fits {
                allowed.extend(methods);
            }
        }
        (!allowed.is_empty()).then(|| {
            allowed.sort_unstable();
            allowed.dedup();
            allowed
        })
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.trim_end_matches('/').split('/').skip(1)
}

/// The default service.
pub async fn unmatched(req: HttpRequest, table: web::Data<RouteTable>) -> Result<HttpResponse, ApiError> {
    let method = req.method().as_str();
    Err(match table.allowed(req.path()) {
        Some(allowed) => ApiError {
            allow: Some(allowed.join(", ")),
            ..ApiError::new(
                ErrorCode::MethodNotAllowedException,
                format!("{method} is not allowed on {}; allowed: {}", req.path(), allowed.join(", ")),
            )
        },
        None => ApiError::new(
            ErrorCode::UnknownOperationException,
            format!("no operation at {method} {}; the operations are listed at /openapi.json", req.path()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_by_shape() {
        let mut table = RouteTable::default();
        table.add("/v1/pipelines", vec!["GET", "POST"]);
        table.add("/v1/pipelines/{name}", vec!["GET", "PUT", "DELETE"]);
        table.add("/healthz", vec!["GET"]);
        assert_eq!(table.allowed("/v1/pipelines/web"), Some(vec!["DELETE", "GET", "PUT"]));
        assert_eq!(table.allowed("/v1/pipelines/"), Some(vec!["GET", "POST"]));
        assert_eq!(table.allowed("/healthz"), Some(vec!["GET"]));
        assert_eq!(table.allowed("/v1/pipelines/web/extra"), None);
        assert_eq!(table.allowed("/v2/pipelines"), None);
        assert_eq!(table.allowed("/"), None);
    }
}
