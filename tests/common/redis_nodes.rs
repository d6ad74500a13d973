//! Plain connections to single Redis nodes (a cluster's included), to look at them from outside
//! the store: roles, `INFO` fields, subscriptions.

use std::time::Duration;

/// A connection to the one node at `url`, with 2 s timeouts. A `rediss://` node is verified
/// against the test servers' CA (`TAS_TEST_TLS_CA`).
pub async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    try_conn(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// [`conn`], or its error.
pub async fn try_conn(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let client = if url.starts_with("rediss://") {
        let ca = std::env::var("TAS_TEST_TLS_CA").expect("TAS_TEST_TLS_CA for a rediss:// node");
        redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca).unwrap()),
            },
        )?
    } else {
        redis::Client::open(url)?
    };
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Deletes `key` on the node at `url`, behind any store's back; how many keys went.
pub async fn del(url: &str, key: &str) -> i64 {
    redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn(url).await)
        .await
        .unwrap()
}

/// Whether the node at `url` holds `key` (a cluster's replica is asked with `READONLY`; a
/// server outside a cluster refuses the command and serves reads anyway); `false` when the
/// key's slot belongs to another node.
pub async fn holds(url: &str, key: &str) -> bool {
    let mut c = conn(url).await;
    let _: redis::RedisResult<redis::Value> = redis::cmd("READONLY").query_async(&mut c).await;
    let found: redis::RedisResult<i64> = redis::cmd("EXISTS").arg(key).query_async(&mut c).await;
    found.is_ok_and(|n| n == 1)
}

/// One `field:value` line of `INFO section` on the node at `url`.
pub async fn info(url: &str, section: &str, field: &str) -> String {
    try_info(url, section, field)
        .await
        .unwrap_or_else(|e| panic!("INFO {section} of {url}: {e}"))
}

/// [`info`], or why not: for polls across a failover, where a Sentinel closes every client
/// of a server it reconfigures (`CLIENT KILL`), the poll's own connection included.
pub async fn try_info(url: &str, section: &str, field: &str) -> Result<String, String> {
    let mut c = try_conn(url).await.map_err(|e| e.to_string())?;
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("no {field} in INFO {section}"))
}

/// `master` or `slave`, as the node at `url` says with `ROLE`.
pub async fn role(url: &str) -> String {
    try_role(url)
        .await
        .unwrap_or_else(|e| panic!("ROLE of {url}: {e}"))
}

/// [`role`], or why not (see [`try_info`]).
pub async fn try_role(url: &str) -> Result<String, String> {
    let mut c = try_conn(url).await.map_err(|e| e.to_string())?;
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    match role.first() {
        Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
        other => Err(format!("unexpected ROLE answer {other:?}")),
    }
}

/// How many pattern subscriptions each node serves (`INFO stats`' `pubsub_patterns`).
pub async fn psubscribed(nodes: &[&str]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(nodes.len());
    for node in nodes {
        let count = info(node, "stats", "pubsub_patterns").await;
        counts.push(count.parse().unwrap());
    }
    counts
}

/// The URL of the master the Sentinel at `sentinel` names `name` now
/// (`SENTINEL get-master-addr-by-name`).
pub async fn sentinel_master(sentinel: &str, name: &str) -> String {
    let addr: Vec<String> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn(sentinel).await)
        .await
        .unwrap();
    format!("redis://{}:{}/", addr[0], addr[1])
}

/// The URLs of the replicas the Sentinel at `sentinel` knows for `name` (`SENTINEL replicas`).
pub async fn sentinel_replicas(sentinel: &str, name: &str) -> Vec<String> {
    let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("replicas")
        .arg(name)
        .query_async(&mut conn(sentinel).await)
        .await
        .unwrap();
    replicas
        .iter()
        .map(|r| format!("redis://{}:{}/", r["ip"], r["port"]))
        .collect()
}
