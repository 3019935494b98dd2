//! Pipelines in PostgreSQL: the current declaration and every version.

use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper, TextExpressionMethods,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::PipelineDeclaration;
use crate::iam::IamError;
use crate::iam::names::Tag;
use crate::schema::{pipeline_versions, pipelines};

/// A stored pipeline.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pipelines)]
pub struct Pipeline {
    pub pipeline_id: Uuid,
    pub account_id: String,
    pub name: String,
    pub version: i32,
    pub declaration: serde_json::Value,
    pub tags: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Pipeline {
    pub fn declaration(&self) -> Result<PipelineDeclaration, IamError> {
        serde_json::from_value(self.declaration.clone())
            .map_err(|e| IamError::InvalidInput(format!("the stored pipeline {:?} does not read: {e}", self.name)))
    }

    pub fn tags(&self) -> Vec<Tag> {
        serde_json::from_value(self.tags.clone()).unwrap_or_default()
    }

    pub fn arn(&self, region: &str) -> String {
        arn(region, &self.account_id, &self.name)
    }
}

/// `arn:pw:codepipeline:REGION:ACCOUNT:NAME`.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:pw:codepipeline:{region}:{account}:{name}")
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Creates the pipeline at version 1; `None` when the name is taken.
pub async fn create(
    conn: &mut AsyncPgConnection,
    account: &str,
    declaration: &PipelineDeclaration,
    tags: &[Tag],
) -> Result<Option<Pipeline>, IamError> {
    let mut declaration = declaration.clone();
    declaration.version = Some(1);
    let id = Uuid::new_v4();
    let inserted: Option<Pipeline> = diesel::insert_into(pipelines::table)
        .values((
            pipelines::pipeline_id.eq(id),
            pipelines::account_id.eq(account),
            pipelines::name.eq(&declaration.name),
            pipelines::version.eq(1),
            pipelines::declaration.eq(to_json(&declaration)),
            pipelines::tags.eq(to_json(&tags)),
        ))
        .on_conflict_do_nothing()
        .returning(Pipeline::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(pipeline) = &inserted {
        diesel::insert_into(pipeline_versions::table)
            .values((
                pipeline_versions::pipeline_id.eq(pipeline.pipeline_id),
                pipeline_versions::version.eq(1),
                pipeline_versions::declaration.eq(&pipeline.declaration),
            ))
            .execute(conn)
            .await?;
    }
    Ok(inserted)
}

pub async fn find(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Option<Pipeline>, IamError> {
    Ok(pipelines::table
        .filter(pipelines::account_id.eq(account))
        .filter(pipelines::name.eq(name))
        .select(Pipeline::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A pipeline by its id.
pub async fn by_id(conn: &mut AsyncPgConnection, pipeline_id: uuid::Uuid) -> Result<Option<Pipeline>, IamError> {
    Ok(pipelines::table.find(pipeline_id).select(Pipeline::as_select()).first(conn).await.optional()?)
}

/// The pipeline, its row locked until the transaction ends (for an update).
pub async fn find_for_update(
    conn: &mut AsyncPgConnection,
    account: &str,
    name: &str,
) -> Result<Option<Pipeline>, IamError> {
    Ok(pipelines::table
        .filter(pipelines::account_id.eq(account))
        .filter(pipelines::name.eq(name))
        .select(Pipeline::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// An earlier version's declaration and when it was made.
pub async fn find_version(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    version: i32,
) -> Result<Option<(serde_json::Value, DateTime<Utc>)>, IamError> {
    Ok(pipeline_versions::table
        .find((pipeline_id, version))
        .select((pipeline_versions::declaration, pipeline_versions::created_at))
        .first(conn)
        .await
        .optional()?)
}

/// What an update found.
pub enum Updated {
    Done(Pipeline),
    NotFound,
    /// The pipeline is at another version than the one the change was based on.
    Stale(i32),
}

/// Replaces the declaration if the pipeline is still at `based_on`; the
/// version goes up by one. Of two updates from one version, one wins.
pub async fn update(
    conn: &mut AsyncPgConnection,
    account: &str,
    based_on: i32,
    declaration: &PipelineDeclaration,
) -> Result<Updated, IamError> {
    let next =
        based_on.checked_add(1).ok_or_else(|| IamError::InvalidInput(format!("version {based_on} is too large")))?;
    let mut declaration = declaration.clone();
    declaration.version = Some(next);
    let updated: Option<Pipeline> = diesel::update(
        pipelines::table
            .filter(pipelines::account_id.eq(account))
            .filter(pipelines::name.eq(&declaration.name))
            .filter(pipelines::version.eq(based_on)),
    )
    .set((
        pipelines::version.eq(next),
        pipelines::declaration.eq(to_json(&declaration)),
        pipelines::updated_at.eq(Utc::now()),
    ))
    .returning(Pipeline::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match updated {
        Some(pipeline) => {
            diesel::insert_into(pipeline_versions::table)
                .values((
                    pipeline_versions::pipeline_id.eq(pipeline.pipeline_id),
                    pipeline_versions::version.eq(pipeline.version),
                    pipeline_versions::declaration.eq(&pipeline.declaration),
                ))
                .execute(conn)
                .await?;
            Ok(Updated::Done(pipeline))
        }
        None => Ok(match find(conn, account, &declaration.name).await? {
            Some(current) => Updated::Stale(current.version),
            None => Updated::NotFound,
        }),
    }
}

/// Deletes the pipeline and its versions; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<bool, IamError> {
    let removed =
        diesel::delete(pipelines::table.filter(pipelines::account_id.eq(account)).filter(pipelines::name.eq(name)))
            .execute(conn)
            .await?;
    Ok(removed > 0)
}

/// A pipeline's latest activity: its latest execution's last change, or
/// its own (created, updated) when that is later or it never ran.
const ACTIVITY: &str = "GREATEST(pipelines.updated_at, COALESCE((SELECT e.updated_at FROM pipeline_executions e \
     WHERE e.pipeline_id = pipelines.pipeline_id ORDER BY e.seq DESC LIMIT 1), pipelines.updated_at))";

/// How a page of pipelines is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By name, A to Z (CodePipeline's ListPipelines).
    Name,
    /// Latest activity first, then by name.
    LastActivity,
}

/// Where a page of pipelines starts: after this name, or (latest activity
/// first) after this activity and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Name(String),
    Activity(DateTime<Utc>, String),
}

/// A page of the account's pipelines, each with its latest activity.
pub async fn list_ordered(
    conn: &mut AsyncPgConnection,
    account: &str,
    prefix: Option<&str>,
    order: Order,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<(Pipeline, DateTime<Utc>)>, IamError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text, Timestamptz};
    let mut query = pipelines::table.filter(pipelines::account_id.eq(account)).into_boxed();
    if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
        let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        query = query.filter(pipelines::name.like(format!("{escaped}%")));
    }
    match after {
        None => {}
        Some(After::Name(name)) => query = query.filter(pipelines::name.gt(name.clone())),
        Some(After::Activity(at, name)) => {
            query = query.filter(
                sql::<Bool>(&format!("({ACTIVITY} < "))
                    .bind::<Timestamptz, _>(*at)
                    .sql(&format!(" OR ({ACTIVITY} = "))
                    .bind::<Timestamptz, _>(*at)
                    .sql(" AND pipelines.name > ")
                    .bind::<Text, _>(name.clone())
                    .sql("))"),
            );
        }
    }
    query = match order {
        Order::Name => query.order(pipelines::name.asc()),
        Order::LastActivity => query.order((sql::<Timestamptz>(ACTIVITY).desc(), pipelines::name.asc())),
    };
    Ok(query.limit(limit).select((Pipeline::as_select(), sql::<Timestamptz>(ACTIVITY))).load(conn).await?)
}

/// Replaces the pipeline's tags.
pub async fn set_tags(conn: &mut AsyncPgConnection, pipeline_id: Uuid, tags: &[Tag]) -> Result<(), IamError> {
    diesel::update(pipelines::table.find(pipeline_id)).set(pipelines::tags.eq(to_json(&tags))).execute(conn).await?;
    Ok(())
}

/// The tags of a pipeline by ARN parts (for `pw:ResourceTag/…`).
pub async fn tags_of(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Vec<Tag>, IamError> {
    Ok(find(conn, account, name).await?.map(|p| p.tags()).unwrap_or_default())
}

/// A stage's inbound transition, as someone last set it.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = crate::schema::stage_transitions)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    #[serde(skip)]
    pub pipeline_id: Uuid,
    #[serde(skip)]
    pub stage_name: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub last_changed_by: String,
    pub last_changed_at: DateTime<Utc>,
}

/// Enables or disables a stage's inbound transition.
pub async fn set_transition(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    stage: &str,
    enabled: bool,
    reason: Option<&str>,
    by: &str,
) -> Result<Transition, IamError> {
    use crate::schema::stage_transitions as t;
    let now = Utc::now();
    Ok(diesel::insert_into(t::table)
        .values((
            t::pipeline_id.eq(pipeline_id),
            t::stage_name.eq(stage),
            t::enabled.eq(enabled),
            t::disabled_reason.eq(reason),
            t::last_changed_by.eq(by),
            t::last_changed_at.eq(now),
        ))
        .on_conflict((t::pipeline_id, t::stage_name))
        .do_update()
        .set((
            t::enabled.eq(enabled),
            t::disabled_reason.eq(reason),
            t::last_changed_by.eq(by),
            t::last_changed_at.eq(now),
        ))
        .returning(Transition::as_returning())
        .get_result(conn)
        .await?)
}

/// The pipeline's stages' transitions that someone changed.
pub async fn transitions(conn: &mut AsyncPgConnection, pipeline_id: Uuid) -> Result<Vec<Transition>, IamError> {
    use crate::schema::stage_transitions as t;
    Ok(t::table.filter(t::pipeline_id.eq(pipeline_id)).select(Transition::as_select()).load(conn).await?)
}
