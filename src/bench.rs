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
