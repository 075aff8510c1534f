#!/usr/bin/env python3
"""The durable inbox under load: four example receivers (axum, actix-web,
Rocket, warp) on one PostgreSQL, fed by four `plugipay-webhook send --count`
processes at once. Reports acknowledged deliveries/s with their latency, and
processed events/s (until every ledger row is written) — next to the inline
dispatcher (PLUGIPAY_DEDUP_URL) on the same database.

    scripts/inbox-bench [EVENTS_PER_SENDER] [CONCURRENCY] [inline|inbox|ordered|steady:RATE …]

`inline` and `inbox` send as fast as the concurrency allows (a burst);
`ordered` is `inbox` with per-object ordering on (PLUGIPAY_INBOX_ORDERED=1);
BENCH_OBJECTS=K makes the events about K objects (`send --objects K`), so
that ordered and unordered runs of the same load compare;
`steady:RATE` offers RATE deliveries/s in all (`send --rate`, split over the
four senders) to the inbox and reports whether processing keeps up: the
largest backlog (pending + running) seen, and how long after the last
acknowledgement the last event was done.

Release builds; PostgreSQL from scripts/services (fsync off), or the server
BENCH_POSTGRES_URL names (`bench/inbox/pg-server start on` makes one with
fsync on, as production runs). Not a test: it prints figures.
"""
import json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2500
C = int(sys.argv[2]) if len(sys.argv) > 2 else 16
SECRET = "whsec_inbox_bench"
FRAMEWORKS = ["axum", "actix-web", "rocket", "warp"]
TARGET = os.path.join(ROOT, "target", "release")


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw).stdout


def psql(url, sql):
    return sh("psql", "-qtA", url, "-c", sql).strip()


def start(bin_name, env):
    p = subprocess.Popen([os.path.join(TARGET, bin_name)], env={**os.environ, **env, "PORT": "0",
                         "PLUGIPAY_WEBHOOK_SECRET": SECRET, "PLUGIPAY_EXAMPLE_QUIET": "1", "RUST_LOG": "error"},
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    return p, line.split("http://", 1)[1].split()[0]


def run(mode, url):
    rate = int(mode.split(":", 1)[1]) if mode.startswith("steady:") else None
    inbox = mode in ("inbox", "ordered") or rate is not None
    env = {"PLUGIPAY_INBOX_URL": url, "PLUGIPAY_INBOX_WORKERS": os.environ.get("BENCH_INBOX_WORKERS", "4")} if inbox else {"PLUGIPAY_DEDUP_URL": url}
    if os.environ.get("BENCH_INBOX_CONNECTIONS"):
        env["PLUGIPAY_INBOX_CONNECTIONS"] = os.environ["BENCH_INBOX_CONNECTIONS"]
    if mode == "ordered":
        env["PLUGIPAY_INBOX_ORDERED"] = "1"
    objects = ["--objects", os.environ["BENCH_OBJECTS"]] if os.environ.get("BENCH_OBJECTS") else []
    procs = [start(f, env) for f in FRAMEWORKS]
    t0 = time.time()
    paced = ["--rate", str(max(1, rate // len(FRAMEWORKS)))] if rate else []
    senders = [subprocess.Popen([os.path.join(TARGET, "plugipay-webhook"), "send", f"http://{addr}/webhooks/plugipay",
                                 "--type", "plugipay.invoice.paid.v1", "--count", str(N), "--concurrency", str(C), "--json"] + paced + objects,
                                env={**os.environ, "PLUGIPAY_WEBHOOK_SECRET": SECRET}, stdout=subprocess.PIPE, text=True)
               for _, addr in procs]
    backlog = 0
    if rate:
        # Sample the backlog while the load runs.
        while any(s.poll() is None for s in senders):
            backlog = max(backlog, int(psql(url, "SELECT COUNT(*) FROM plugipay_webhook_inbox WHERE state IN ('pending', 'running')") or 0))
            time.sleep(0.25)
    results = [json.loads(s.communicate()[0]) for s in senders]
    acked_at = time.time()
    total = N * len(FRAMEWORKS)
    processed_s = None
    if inbox:
        while True:
            # Done, or (ordered) stale: settled either way.
            done = int(psql(url, "SELECT COUNT(*) FROM plugipay_webhook_inbox WHERE state IN ('done', 'stale')") or 0)
            if done >= total:
                processed_s = time.time() - t0
                break
            if time.time() - t0 > 600:
                break
            time.sleep(0.05)
        ledger = int(psql(url, "SELECT COUNT(*) FROM example_ledger"))
        distinct = int(psql(url, "SELECT COUNT(DISTINCT event_id) FROM example_ledger"))
        stale = int(psql(url, "SELECT COUNT(*) FROM plugipay_webhook_inbox WHERE state = 'stale'"))
    for p, _ in procs:
        p.terminate()
        p.wait()
    acks = sum(r["deliveries"] for r in results)
    statuses = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    out = {
        "mode": mode, "deliveries": acks, "statuses": statuses,
        "acknowledged_per_s": round(acks / (acked_at - t0)),
        "ack_p50_ms": round(sum(r["p50_ms"] for r in results) / len(results), 2),
        "ack_p99_ms": round(max(r["p99_ms"] for r in results), 2),
    }
    if rate:
        out["offered_per_s"] = rate
        out["max_backlog"] = backlog
        out["last_done_after_last_ack_s"] = round(t0 + processed_s - acked_at, 2) if processed_s else None
    if inbox:
        out["processed_per_s"] = round(total / processed_s) if processed_s else None
        out["ledger_rows"] = ledger
        out["ledger_distinct_events"] = distinct
        out["stale"] = stale
        if objects:
            out["objects"] = int(objects[1])
    return out


def main():
    sh("cargo", "build", "--release", "-q", "-p", "plugipay-webhook-examples", "-p", "plugipay-webhook-cli", cwd=ROOT)
    # BENCH_POSTGRES_URL: another server (bench/inbox/pg-server start on: fsync on).
    base = os.environ.get("BENCH_POSTGRES_URL") or os.environ["PLUGIPAY_TEST_POSTGRES_URL"]
    for mode in sys.argv[3:] or ["inline", "inbox"]:
        db = f"bench_{mode.replace(':', '_')}_{int(time.time())}"
        psql(base, f"CREATE DATABASE {db}")
        url = base.rsplit("/", 1)[0] + "/" + db
        try:
            print(json.dumps(run(mode, url)), flush=True)
        finally:
            # Left behind, its dead rows keep autovacuum busy through the next mode.
            psql(base, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


main()
