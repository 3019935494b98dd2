//! `pipewright bench-audit [N]`: LookupEvents latency with N events in one
//! account (issue 5's target: p99 under 50 ms with 1,000,000). It fills a
//! scratch database of its own (`<database>_bench`) with generated events,
//! then times each kind of filtered lookup, newest first, 50 a page.

use std::process::ExitCode;
use std::time::Instant;

use diesel_async::SimpleAsyncConnection;
use pipewright_core::audit::store::{self, Filter};
use pipewright_core::config::Config;
use pipewright_core::db::{self, Db};

const ACCOUNT: &str = "111122223333";
const RUNS: usize = 200;

pub fn audit_lookup(events: u64) -> ExitCode {
    let (config, runtime) = match crate::setup() {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        match run(&config, events).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pipewright: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: &Config, events: u64) -> Result<(), String> {
    let name = format!("{}_bench", db::database_name(&config.database_url).unwrap_or_else(|| "pipewright".into()));
    let url = db::with_database(&config.database_url, &name);
    let db = Db::connect(&url, 4).await.map_err(|e| e.explain())?;
    let mut conn = db.conn().await.map_err(|e| e.explain())?;
    println!("filling {name} with {events} events in account {ACCOUNT} ...");
    let started = Instant::now();
    // Shapes like real traffic: 40 operations, 200 users, 1 in 20 denied,
    // resources across 50 pipelines with stages and actions, ten days.
    conn.batch_execute(&format!(
        "TRUNCATE audit_events, audit_chain_heads, audit_digests;
         INSERT INTO audit_events (event_id, account_id, seq, prev_hash, hash, event_time, event_source, event_name,
             read_only, user_identity, principal_arn, user_name, source_ip, user_agent, request_parameters,
             error_code, error_message, http_status, request_id, resources, resource_keys)
         SELECT gen_random_uuid(), '{ACCOUNT}', g, md5(g::text), md5((g + 1)::text),
             now() - ((({events} - g) * 864) || ' milliseconds')::interval,
             'codepipeline.pipewright', 'Operation' || (g % 40), (g % 3) <> 0,
             jsonb_build_object('type', 'IAMUser', 'userName', 'user' || (g % 200),
                 'arn', 'arn:pw:iam::{ACCOUNT}:user/user' || (g % 200)),
             'arn:pw:iam::{ACCOUNT}:user/user' || (g % 200), 'user' || (g % 200),
             '10.0.' || (g % 250) || '.' || (g % 7), 'bench', '{{}}'::jsonb,
             CASE WHEN g % 20 = 0 THEN 'AccessDeniedException' END, NULL,
             CASE WHEN g % 20 = 0 THEN 403 ELSE 200 END, g::text,
             jsonb_build_array(jsonb_build_object('type', 'codepipeline',
                 'arn', 'arn:pw:codepipeline:local:{ACCOUNT}:p' || (g % 50) || '/Stage' || (g % 4) || '/Action' || (g % 3))),
             ARRAY['arn:pw:codepipeline:local:{ACCOUNT}:p' || (g % 50),
                   'arn:pw:codepipeline:local:{ACCOUNT}:p' || (g % 50) || '/Stage' || (g % 4),
                   'arn:pw:codepipeline:local:{ACCOUNT}:p' || (g % 50) || '/Stage' || (g % 4) || '/Action' || (g % 3)]
         FROM generate_series(1, {events}) AS g;
         ANALYZE audit_events;"
    ))
    .await
    .map_err(|e| e.to_string())?;
    println!("filled in {:.1} s", started.elapsed().as_secs_f64());

    let pipeline = format!("arn:pw:codepipeline:local:{ACCOUNT}:p7");
    let user = format!("arn:pw:iam::{ACCOUNT}:user/user42");
    let day_ago = chrono::Utc::now() - chrono::Duration::days(5);
    let cases: Vec<(&str, Filter)> = vec![
        ("no filter", Filter::default()),
        ("eventName", Filter { event_name: Some("Operation7".into()), ..Filter::default() }),
        ("userName", Filter { user_name: Some("user42".into()), ..Filter::default() }),
        ("principalArn", Filter { principal_arn: Some(user), ..Filter::default() }),
        (
            "resourceArn (a pipeline: its stages and actions too)",
            Filter { resource_arn: Some(pipeline), ..Filter::default() },
        ),
        ("errorCode", Filter { error_code: Some("AccessDeniedException".into()), ..Filter::default() }),
        ("readOnly=false", Filter { read_only: Some(false), ..Filter::default() }),
        ("sourceIpAddress", Filter { source_ip: Some("10.0.42.0".into()), ..Filter::default() }),
        ("a time window 5 days back", Filter { end_time: Some(day_ago), ..Filter::default() }),
        (
            "eventName + userName",
            Filter { event_name: Some("Operation2".into()), user_name: Some("user42".into()), ..Filter::default() },
        ),
    ];
    println!("{:<55} {:>9} {:>9}", "LookupEvents filter (50 a page, newest first)", "p50 ms", "p99 ms");
    for (label, filter) in cases {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            store::lookup(&mut conn, ACCOUNT, &filter, 50, None).await.map_err(|e| e.to_string())?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!("{label:<55} {:>9.2} {:>9.2}", at(0.50), at(0.99));
    }
    Ok(())
}

/// `pipewright bench-executions [N]`: issue 7's figures. In a scratch
/// database (`<database>_bench_exec`) with queues of its own, N executions
/// of 3-stage pipelines (an uploaded source, then a no-op shell action in
/// each of two stages) run through real worker processes, first one, then
/// two. Prints executions per second (all N started at once) and the delay
/// from a stage's last action finishing to the next stage's first action
/// being taken by a runner (p50, p99, over executions run one at a time, so
/// that queueing behind other executions is not counted).
pub fn executions(count: usize, millis: u64) -> ExitCode {
    let (config, runtime) = match crate::setup() {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        match run_executions(&config, count, millis).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pipewright: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

const PIPELINES: usize = 8;
/// Executions run one at a time for the transition delays.
const LATENCY_RUNS: usize = 50;

fn bench_pipeline(name: &str, millis: u64) -> serde_json::Value {
    // A no-op, or a wait (`sleep` takes seconds as a decimal).
    let commands =
        if millis == 0 { "true".to_owned() } else { format!("sleep {}.{:03}", millis / 1000, millis % 1000) };
    let kind =
        |c: &str, p: &str| serde_json::json!({"category": c, "owner": "Pipewright", "provider": p, "version": "1"});
    serde_json::json!({
        "name": name,
        "executionMode": "PARALLEL",
        "stages": [
            {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
            {"name": "Build", "actions": [{"name": "Build", "actionTypeId": kind("Build", "Shell"), "configuration": {"commands": commands}, "inputArtifacts": [{"name": "Src"}]}]},
            {"name": "Deploy", "actions": [{"name": "Deploy", "actionTypeId": kind("Deploy", "Shell"), "configuration": {"commands": commands}}]}
        ]
    })
}

async fn run_executions(config: &Config, count: usize, millis: u64) -> Result<(), String> {
    use pipewright_core::artifacts::{ArtifactStore, LocalStore};
    use pipewright_core::executions::store::{SourceRevision, Trigger};
    use pipewright_core::pipelines::store as pipelines;

    let name = format!("{}_bench_exec", db::database_name(&config.database_url).unwrap_or_else(|| "pipewright".into()));
    let url = db::with_database(&config.database_url, &name);
    let db = Db::connect(&url, 8).await.map_err(|e| e.explain())?;
    let mut conn = db.conn().await.map_err(|e| e.explain())?;
    conn.batch_execute("TRUNCATE pipelines, outbox CASCADE").await.map_err(|e| e.to_string())?;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("pw-bench-{unique}");
    let data_dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;

    // The uploaded source every execution takes: a tiny archive.
    let source = data_dir.join("source");
    std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
    std::fs::write(source.join("app.txt"), "hello").map_err(|e| e.to_string())?;
    let archive = data_dir.join("source.tar");
    pipewright_core::artifacts::pack(&source, &[], &archive).map_err(|e| e.to_string())?;
    let artifact = LocalStore::new(data_dir.join("artifacts")).put("Src", &archive).await.map_err(|e| e.to_string())?;
    let revision = SourceRevision {
        action_name: "Upload".to_owned(),
        revision_id: artifact.sha256.clone(),
        revision_summary: Some("bench".to_owned()),
        artifact: Some(artifact),
        ..SourceRevision::default()
    };

    let mut created = Vec::new();
    for i in 0..PIPELINES {
        let declaration =
            serde_json::from_value(bench_pipeline(&format!("bench-{i}"), millis)).map_err(|e| e.to_string())?;
        let pipeline = pipelines::create(&mut conn, "111122223333", &declaration, &[])
            .await
            .map_err(|e| e.to_string())?
            .ok_or("a bench pipeline exists already")?;
        created.push(pipeline);
    }
    let services = pipewright_core::services::Services::connect(&pipewright_core::config::Config {
        database_url: url.clone(),
        amqp_prefix: prefix.clone(),
        redis_prefix: format!("{prefix}:"),
        ..config.clone()
    })
    .await
    .map_err(|missing| missing.iter().map(|m| m.explain()).collect::<Vec<_>>().join("\n"))?;
    let publisher = pipewright_core::messaging::Publisher::new(services.broker.clone(), 600);
    let trigger =
        Trigger { trigger_type: "StartPipelineExecution".to_owned(), trigger_detail: "bench".to_owned(), filter: None };

    println!(
        "{count} executions of 3-stage pipelines (uploaded source, {} shell build and deploy), {PIPELINES} pipelines in PARALLEL mode",
        if millis == 0 { "no-op".to_owned() } else { format!("{millis} ms") }
    );
    println!("{:<10} {:>14} {:>22} {:>22}", "workers", "executions/s", "transition p50 ms", "transition p99 ms");
    let mut workers: Vec<tokio::process::Child> = Vec::new();
    for round in 1..=2usize {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(exe)
            .arg("worker")
            .env_remove("PIPEWRIGHT_CONFIG")
            .env("DATABASE_URL", url.expose())
            .env("PIPEWRIGHT_AMQP_PREFIX", &prefix)
            .env("PIPEWRIGHT_REDIS_PREFIX", format!("{prefix}:"))
            .env("PIPEWRIGHT_DATA_DIR", &data_dir)
            .env("PIPEWRIGHT_AMQP_QUEUE_EXPIRES_SECS", "600")
            .env("PIPEWRIGHT_GIT_POLL_SECS", "3600")
            .env("PIPEWRIGHT_LOG", "warn")
            // Each worker serves its health endpoints on a port of its own
            // (on the default one, the second worker could not start).
            .env("PIPEWRIGHT_LISTEN", "127.0.0.1:0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        workers.push(child);
        // Warm up (connections, queues), and give the planner statistics of
        // tables in use: right after the TRUNCATE above they are empty, and
        // plans made for empty tables (sequential scans) would stay cached
        // while they grow, which a running installation never sees.
        run_batch(&db, &services, &publisher, &created, &trigger, &revision, 300).await?;
        conn.batch_execute("ANALYZE").await.map_err(|e| e.to_string())?;
        // Latency: one execution at a time, so that nothing waits in a queue.
        let mut serial = Vec::new();
        for _ in 0..LATENCY_RUNS {
            serial.extend(run_batch(&db, &services, &publisher, &created, &trigger, &revision, 1).await?);
        }
        // Throughput: all at once.
        let started = Instant::now();
        run_batch(&db, &services, &publisher, &created, &trigger, &revision, count).await?;
        let seconds = started.elapsed().as_secs_f64();
        let mut delays = transition_delays(&mut conn, &serial).await?;
        delays.sort_by(f64::total_cmp);
        let at = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
        println!("{round:<10} {:>14.0} {:>22.1} {:>22.1}", count as f64 / seconds, at(0.5), at(0.99));
    }
    for mut worker in workers {
        let _ = worker.start_kill();
        let _ = worker.wait().await;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Starts `count` executions across the pipelines and waits until all succeeded.
async fn run_batch(
    db: &Db,
    services: &pipewright_core::services::Services,
    publisher: &pipewright_core::messaging::Publisher,
    pipelines: &[pipewright_core::pipelines::store::Pipeline],
    trigger: &pipewright_core::executions::store::Trigger,
    revision: &pipewright_core::executions::store::SourceRevision,
    count: usize,
) -> Result<Vec<uuid::Uuid>, String> {
    use diesel::{ExpressionMethods, QueryDsl};
    use diesel_async::{AsyncConnection, RunQueryDsl};
    use pipewright_core::schema::pipeline_executions as e;
    let mut conn = db.conn().await.map_err(|e| e.explain())?;
    let mut ids = Vec::with_capacity(count);
    let mut outbox = Vec::new();
    for i in 0..count {
        let pipeline = &pipelines[i % pipelines.len()];
        // One transaction, as StartPipelineExecution's request.
        let (execution, rows) = conn
            .transaction::<_, pipewright_core::iam::IamError, _>(async |conn| {
                use pipewright_core::executions::way_in;
                // A Release change naming the uploaded revision, through the one way in.
                let start = way_in::Start {
                    revisions: vec![revision.clone()],
                    ..way_in::Start::new(way_in::Cause::Released { by: &trigger.trigger_detail })
                };
                let refused = |why: String| pipewright_core::iam::IamError::InvalidInput(why);
                match way_in::start(conn, pipeline, start).await {
                    Ok(Some(started)) => Ok(started),
                    Ok(None) => Err(refused("nothing to run".to_owned())),
                    Err(way_in::NotStarted::Refused(why)) => Err(refused(why)),
                    Err(way_in::NotStarted::Failed(e)) => Err(e),
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        ids.push(execution.execution_id);
        outbox.extend(rows);
        if outbox.len() >= 50 {
            pipewright_core::messaging::publish_committed(&mut conn, publisher, std::mem::take(&mut outbox))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    pipewright_core::messaging::publish_committed(&mut conn, publisher, outbox).await.map_err(|e| e.to_string())?;
    let _ = services;
    // Nothing else runs in the scratch database: polling the running ones
    // (a partial index) costs the server little, unlike naming the batch.
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let left: i64 = e::table
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("status IN ('InProgress', 'Stopping')"))
            .count()
            .get_result(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{left} executions did not finish in 10 minutes"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(if count == 1 { 2 } else { 50 })).await;
    }
    let failed: i64 = e::table
        .filter(e::execution_id.eq_any(&ids))
        .filter(e::status.ne("Succeeded"))
        .count()
        .get_result(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if failed > 0 {
        return Err(format!("{failed} executions did not succeed"));
    }
    Ok(ids)
}

/// For each execution and stage after the first: from the previous stage's
/// last action finishing to this stage's first action being taken.
async fn transition_delays(conn: &mut db::Conn, ids: &[uuid::Uuid]) -> Result<Vec<f64>, String> {
    use diesel_async::RunQueryDsl;
    let list = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let query = format!(
        "(SELECT coalesce(array_agg(EXTRACT(EPOCH FROM (n.started - p.finished)) * 1000), '{{}}')::float8[] FROM
            (SELECT execution_id, stage_index, max(finished_at) AS finished FROM action_executions
              WHERE execution_id IN ({list}) GROUP BY execution_id, stage_index) p
          JOIN (SELECT execution_id, stage_index, min(claimed_at) AS started FROM action_executions
              WHERE execution_id IN ({list}) GROUP BY execution_id, stage_index) n
            ON n.execution_id = p.execution_id AND n.stage_index = p.stage_index + 1)"
    );
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Array<diesel::sql_types::Double>>(&query))
        .get_result::<Vec<f64>>(&mut **conn)
        .await
        .map_err(|e| e.to_string())
}
