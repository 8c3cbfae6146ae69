//! `erpos bench tasks`: handled work items per second end to end over HTTP, for the clinic's
//! leave request (`seeds/clinic/leave.json`). A real server on a local socket, SQLite in a
//! temporary file, every person logged in with their own session: nurses fill in and submit
//! requests, team leaders claim and agree with an opinion written into the form (a record
//! edit committed with the decision), the director and the president agree when the
//! days call for them, and two of the three committee members vote. Each HTTP call is timed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

/// A client that speaks JSON to the server as one person.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, json))
    }

    async fn ok(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, json) = self.send(token, method, path, body.as_ref()).await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "{method} {path}: {status} {json}"
        );
        Ok(json)
    }
}

/// Runs the suite and prints its figures.
pub async fn run(processes: usize, concurrency: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("bench.db").display());
    let kernel = erpos_kernel::Kernel::open(&url).await?;
    // The clinic's organisation and the leave request, as the demo loads them, plus one
    // nurse per client.
    let text = include_str!("../../seeds/clinic/leave.json");
    crate::pack::load_leave(&kernel, text, &mut crate::pack::Loaded::default()).await?;
    let password = "clinic-pass-2026";
    let nurses: Vec<String> = (0..concurrency.max(1))
        .map(|i| format!("nurse_{i:02}"))
        .collect();
    for n in &nurses {
        erpos_kernel::app::organisation::save_user(&kernel, &crate::pack::loader(), &json!({"id": n, "roles": ["nurse", "employee"], "department": "pifuke", "capacity": 1000, "password": password}))
            .await
            .with_context(|| format!("adding {n}"))?;
    }
    let seed: Value = serde_json::from_str(text)?;
    let mut people: Vec<String> = seed["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    people.extend(nurses.iter().cloned());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(erpos_http::server::serve(kernel, listener, async {
        let _ = stopped.await;
    }));
    let client = Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency.max(1))
            .build()?,
        base: format!("http://{addr}/api/v1"),
    };
    // Every person logs in over HTTP with their own session.
    let mut tokens = BTreeMap::new();
    for p in &people {
        let s = client
            .ok(
                "",
                "POST",
                "/sessions",
                Some(json!({"user": p, "password": password})),
            )
            .await?;
        tokens.insert(
            p.clone(),
            s["token"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let tokens = Arc::new(tokens);

    println!(
        "erpos bench tasks: the leave request over HTTP ({processes} requests, {concurrency} clients, SQLite)"
    );
    let started = Instant::now();
    let mut workers = Vec::new();
    for (w, nurse) in nurses.iter().enumerate() {
        let share = processes / nurses.len() + usize::from(w < processes % nurses.len());
        let (client, tokens, nurse) = (client.clone(), tokens.clone(), nurse.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<Duration> = Vec::new();
            let mut handled = 0usize;
            for i in 0..share {
                let token = |u: &str| tokens.get(u).cloned().unwrap_or_default();
                let days = [2, 4, 7][(w + i) % 3];
                let rec = client.ok(&token(&nurse), "POST", "/records/qingjia", Some(json!({"days": days, "reason": "家中有事"}))).await?;
                let p = client.ok(&token(&nurse), "POST", "/processes", Some(json!({"service": "leave", "record": {"item": "qingjia", "id": rec["id"]}}))).await?;
                let pid = p["id"].as_u64().unwrap_or_default();
                let leader = ["wangjing", "zhaolei", "sunli"][(w + i) % 3];
                let mut steps: Vec<(String, &str)> = vec![(nurse.clone(), "handle"), (leader.to_owned(), "claim"), (leader.to_owned(), "handle")];
                if days > 3 {
                    steps.push(("liuyang".into(), "handle"));
                }
                if days > 5 {
                    steps.push(("chenzong".into(), "handle"));
                }
                steps.push(("wei".into(), "handle"));
                steps.push(("he".into(), "handle"));
                for (user, action) in steps {
                    // The leader writes an opinion into the form: a record edit that commits
                    // with the decision in one transaction.
                    let body = match action {
                        "handle" if user == leader => json!({"attribute": "agree", "comment": "同意", "fields": {"leader_opinion": "同意，已安排顶班"}}),
                        "handle" => json!({"attribute": "agree", "comment": "同意"}),
                        _ => json!({}),
                    };
                    let t = Instant::now();
                    client.ok(&token(&user), "POST", &format!("/processes/{pid}/{action}"), Some(body)).await?;
                    latencies.push(t.elapsed());
                    handled += usize::from(action == "handle");
                }
                let (_, end) = client.send(&token(&nurse), "GET", &format!("/processes/{pid}/actions"), None).await?;
                anyhow::ensure!(end["actions"].as_array().is_some_and(Vec::is_empty), "process {pid} did not end: {end}");
            }
            Ok::<_, anyhow::Error>((handled, latencies))
        }));
    }
    let mut handled = 0usize;
    let mut latencies = Vec::new();
    for w in workers {
        let (h, l) = w.await??;
        handled += h;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  {:>10.0} work items handled/s  ({handled} decisions, plus {} claims)",
        handled as f64 / elapsed,
        latencies.len() - handled
    );
    println!(
        "  {:>10.0} leave requests/s end to end (record, start, every decision)",
        processes as f64 / elapsed
    );
    println!(
        "  claim/handle latency: p50 {:.1} ms, p99 {:.1} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}
