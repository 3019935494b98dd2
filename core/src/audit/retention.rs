//! Retention: each account keeps its events for a number of days (CloudTrail
//! Lake's `retentionPeriod`), and older ones are purged — a whole digested
//! range at a time, so that the chain still verifies across the cut.
//!
//! A purge is itself an event in the account's chain (`PurgeEvents`, naming
//! the last event it removed), and the chain head remembers the cut; verify
//! accepts a log that starts after the first event only where a signed digest
//! ends and a recorded purge says so.

use chrono::{DateTime, Duration, Utc};
use diesel::{ExpressionMethods, JoinOnDsl, NullableExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::Event;
use crate::iam::IamError;
use crate::schema::{audit_chain_heads, audit_digests, audit_events, audit_settings};

/// CloudTrail Lake's default: seven years.
pub const DEFAULT_DAYS: i32 = 2557;
/// CloudTrail Lake's bounds.
pub const MIN_DAYS: i32 = 7;
pub const MAX_DAYS: i32 = 3653;

/// The name of the event a purge leaves in the chain.
pub const PURGE_EVENT: &str = "PurgeEvents";

/// The account's retention period in days.
pub async fn retention_days(conn: &mut AsyncPgConnection, account: &str) -> Result<i32, IamError> {
    Ok(audit_settings::table
        .find(account)
        .select(audit_settings::retention_days)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(DEFAULT_DAYS))
}

/// Sets the account's retention period (days, already validated).
pub async fn set_retention_days(conn: &mut AsyncPgConnection, account: &str, days: i32) -> Result<(), IamError> {
    diesel::insert_into(audit_settings::table)
        .values((audit_settings::account_id.eq(account), audit_settings::retention_days.eq(days)))
        .on_conflict(audit_settings::account_id)
        .do_update()
        .set((audit_settings::retention_days.eq(days), audit_settings::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Purges `account`'s events recorded before `cutoff`, up to the end of the
/// newest digest that holds none newer. Returns how many were removed.
pub async fn purge(conn: &mut AsyncPgConnection, account: &str, cutoff: DateTime<Utc>) -> Result<i64, IamError> {
    let account = account.to_owned();
    conn.transaction::<_, IamError, _>(async move |conn| {
        let Some(purged_seq): Option<i64> = audit_chain_heads::table
            .find(&account)
            .select(audit_chain_heads::purged_seq)
            .for_update()
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(0);
        };
        // The oldest event kept is recent enough: nothing to do (the common case, and cheap).
        let oldest: Option<DateTime<Utc>> = audit_events::table
            .filter(audit_events::account_id.eq(&account))
            .filter(audit_events::seq.gt(purged_seq))
            .order(audit_events::seq.asc())
            .select(audit_events::event_time)
            .first(conn)
            .await
            .optional()?;
        if oldest.is_none_or(|t| t >= cutoff) {
            return Ok(0);
        }
        // Everything up to the cut must be older than the cutoff.
        let first_kept: Option<i64> = audit_events::table
            .filter(audit_events::account_id.eq(&account))
            .filter(audit_events::seq.gt(purged_seq))
            .filter(audit_events::event_time.ge(cutoff))
            .select(diesel::dsl::min(audit_events::seq))
            .first(conn)
            .await?;
        let mut digests = audit_digests::table
            .filter(audit_digests::account_id.eq(&account))
            .filter(audit_digests::last_seq.gt(purged_seq))
            .into_boxed();
        if let Some(first_kept) = first_kept {
            digests = digests.filter(audit_digests::last_seq.lt(first_kept));
        }
        let Some((through, hash)): Option<(i64, String)> = digests
            .order(audit_digests::last_seq.desc())
            .select((audit_digests::last_seq, audit_digests::last_hash))
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(0);
        };
        let removed = diesel::delete(
            audit_events::table
                .filter(audit_events::account_id.eq(&account))
                .filter(audit_events::seq.gt(purged_seq))
                .filter(audit_events::seq.le(through)),
        )
        .execute(conn)
        .await?;
        diesel::update(audit_chain_heads::table.find(&account))
            .set((audit_chain_heads::purged_seq.eq(through), audit_chain_heads::purged_hash.eq(&hash)))
            .execute(conn)
            .await?;
        let record = purge_event(&account, through, cutoff, removed);
        super::store::append_in(conn, &account, vec![record]).await?;
        Ok(i64::try_from(removed).unwrap_or(i64::MAX))
    })
    .await
}

/// The event a purge leaves in the chain, as CloudTrail records a service's
/// own actions.
fn purge_event(account: &str, through: i64, cutoff: DateTime<Utc>, removed: usize) -> Event {
    Event {
        event_id: Uuid::new_v4(),
        recipient_account_id: account.to_owned(),
        event_time: Utc::now(),
        event_source: "audit.pipewright".to_owned(),
        event_name: PURGE_EVENT.to_owned(),
        read_only: false,
        user_identity: json!({"type": "PipewrightService", "invokedBy": "audit.pipewright"}),
        source_ip_address: "audit.pipewright".to_owned(),
        user_agent: "audit.pipewright".to_owned(),
        request_parameters: Some(json!({"throughSeq": through, "eventsBefore": cutoff})),
        response_elements: Some(json!({"eventsPurged": removed})),
        error_code: None,
        error_message: None,
        http_status: 200,
        request_id: Uuid::new_v4().to_string(),
        resources: Vec::new(),
        shared_event_id: None,
    }
}

/// Purges every account by its own retention period.
pub async fn purge_all(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> Result<i64, IamError> {
    let accounts: Vec<(String, Option<i32>)> = audit_chain_heads::table
        .left_join(audit_settings::table.on(audit_settings::account_id.eq(audit_chain_heads::account_id)))
        .select((audit_chain_heads::account_id, audit_settings::retention_days.nullable()))
        .load(conn)
        .await?;
    let mut removed = 0;
    for (account, days) in accounts {
        let cutoff = now - Duration::days(i64::from(days.unwrap_or(DEFAULT_DAYS)));
        removed += purge(conn, &account, cutoff).await?;
    }
    Ok(removed)
}
