//! A server under the unit, scraped by a real Prometheus: nginx (Debian's)
//! under `mptcpify@nginx` with README's metrics drop-in, loaded by `curl
//! --mptcp` and by plain `curl`; Debian's Prometheus, started by the test,
//! scrapes the unit's `/metrics`, and its HTTP API returns the counts the
//! clients made, which `mptcpify status` shows too. In the lab's Debian
//! image (systemd as PID 1).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mptcpify_tests::process;
use mptcpify_tests::shell::{http_get, require_systemd, sh};

const UNIT: &str = "mptcpify@nginx.service";
/// README's drop-in listens here.
const METRICS_PORT: u16 = 9464;
const PROMETHEUS_PORT: u16 = 9090;
const MPTCP_REQUESTS: u64 = 40;
const TCP_REQUESTS: u64 = 30;
/// Prometheus starts, scrapes every second, and answers: seconds under
/// emulation.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(240);

/// README's metrics drop-in (the `ini` block after "(`systemctl edit
/// mptcpify@nginx`, for metrics").
fn readme_drop_in() -> &'static str {
    include_str!("../../README.md")
        .split("(`systemctl edit mptcpify@nginx`, for metrics")
        .nth(1)
        .and_then(|rest| rest.split("```ini\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README's metrics drop-in")
}

/// Debian's Prometheus as a child, scraping `targets` every second, its
/// data in a fresh directory. Killed on drop.
struct Prometheus {
    child: Child,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = Path::new("/tmp/mptcpify-prometheus");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mptcpify\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus (Debian's package, in the lab's image)");
        Prometheus { child }
    }

    /// The samples of an instant query, as `(labels, value)`; empty until
    /// Prometheus answers and has them.
    fn query(&self, query: &str) -> Vec<(serde_json::Value, u64)> {
        // Not listening yet: nothing to ask.
        if std::net::TcpStream::connect(("127.0.0.1", PROMETHEUS_PORT)).is_err() {
            return Vec::new();
        }
        let (status, body) = http_get(PROMETHEUS_PORT, &format!("/api/v1/query?query={query}"));
        if !status.contains("200") {
            return Vec::new();
        }
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|sample| {
                let value = sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(-1.0) as u64;
                (sample["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `count` requests to nginx with `curl ARGS`, each its own process.
fn requests(args: &str, count: u64) {
    sh(&format!(
        "i=0; while [ $i -lt {count} ]; do curl {args} -sf -o /dev/null --max-time 20 \
         http://127.0.0.1/ || exit 1; i=$((i+1)); done"
    ));
}

#[test]
fn prometheus_scrapes_the_accepted_split_that_status_shows() {
    require_systemd();
    let drop_in = Path::new("/etc/systemd/system/mptcpify@nginx.service.d/60-metrics.conf");
    std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    std::fs::write(drop_in, readme_drop_in()).unwrap();
    sh(&format!(
        "systemctl daemon-reload; systemctl stop nginx.service; systemctl start {UNIT}; \
         systemctl start nginx.service"
    ));
    let journal = || sh(&format!("journalctl -b --no-pager -o cat -u {UNIT}"));
    assert!(
        journal().contains(&format!(
            "metrics at http://127.0.0.1:{METRICS_PORT}/metrics"
        )),
        "{}",
        journal()
    );

    requests("--mptcp", MPTCP_REQUESTS);
    requests("", TCP_REQUESTS);

    // What the instance itself says (`mptcpify status`).
    let (status, out) = process::run(&["status", "--json"]);
    assert!(status.success(), "{out}");
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("status --json");
    let instances = status["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 1, "{status}");
    let counters = &instances[0]["counters"];
    assert_eq!(counters["accepted_mptcp"], MPTCP_REQUESTS, "{counters}");
    assert_eq!(counters["accepted_tcp"], TCP_REQUESTS, "{counters}");
    // The split per selector: the unit's.
    let rows = instances[0]["selectors"].as_array().expect("selectors");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["selector"], "unit nginx.service", "{rows:?}");
    assert_eq!(rows[0]["accepted_mptcp"], MPTCP_REQUESTS, "{rows:?}");
    assert_eq!(rows[0]["accepted_tcp"], TCP_REQUESTS, "{rows:?}");
    let (_, text) = process::run(&["status"]);
    eprintln!("mptcpify status:\n{text}");
    assert!(
        text.contains(&format!("accepted {MPTCP_REQUESTS} MPTCP")),
        "{text}"
    );

    // What Prometheus scraped.
    let prometheus = Prometheus::start(&format!("127.0.0.1:{METRICS_PORT}"));
    let start = Instant::now();
    let scraped = loop {
        let samples = prometheus.query("mptcpify_accepted_total");
        let of = |outcome: &str| {
            samples
                .iter()
                .find(|(labels, _)| labels["outcome"] == outcome)
                .map(|(_, v)| *v)
        };
        if let (Some(mptcp), Some(tcp)) = (of("mptcp"), of("tcp")) {
            break (mptcp, tcp, samples);
        }
        assert!(
            start.elapsed() < PROMETHEUS_WAIT,
            "Prometheus has no mptcpify_accepted_total after {PROMETHEUS_WAIT:?}: {samples:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(
        (scraped.0, scraped.1),
        (MPTCP_REQUESTS, TCP_REQUESTS),
        "{:?}",
        scraped.2
    );
    for (labels, _) in &scraped.2 {
        assert_eq!(labels["job"], "mptcpify", "{labels}");
        assert_eq!(labels["instance"], format!("127.0.0.1:{METRICS_PORT}"));
    }
    // mptcpify_closed_total{role="accepted",outcome="mptcp"}
    let closed = prometheus
        .query("mptcpify_closed_total%7Brole%3D%22accepted%22%2Coutcome%3D%22mptcp%22%7D");
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].1, counters["closed_accepted"].as_u64().unwrap());
    // Per selector, as the unit's row says.
    let per_unit = prometheus.query("mptcpify_selector_accepted_total");
    let unit = |outcome: &str| {
        per_unit
            .iter()
            .find(|(l, _)| l["outcome"] == outcome && l["selector"] == "unit nginx.service")
            .map(|(_, v)| *v)
    };
    assert_eq!(
        (unit("mptcp"), unit("tcp")),
        (Some(MPTCP_REQUESTS), Some(TCP_REQUESTS)),
        "{per_unit:?}"
    );
    let info = prometheus.query("mptcpify_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(
        info[0].0["policy"]
            .as_str()
            .is_some_and(|p| p.contains("nginx.service")),
        "{info:?}"
    );
    drop(prometheus);

    sh(&format!(
        "systemctl stop {UNIT}; systemctl restart nginx.service"
    ));
    std::fs::remove_file(drop_in).unwrap();
    sh("systemctl daemon-reload");
}
