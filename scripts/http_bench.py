#!/usr/bin/env python3
"""Drives wrk against each example receiver; see scripts/http-bench.

    http_bench.py [SECONDS]          throughput and latency, 2 KiB and 64 KiB
    http_bench.py --cpu [SECONDS]    server CPU time per request, 2 KiB and
                                     16 KiB: verified route, plain route, the
                                     core's own cost (examples/examples/
                                     core_cost.rs) and the difference, the
                                     adapter's overhead
"""
import hashlib, hmac, json, os, re, subprocess, sys, tempfile, time

CPU = "--cpu" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--cpu"]
SECS = int(ARGS[0]) if ARGS else 10
SECRET = "whsec_http_bench"
FRAMEWORKS = os.environ.get("BENCH_FRAMEWORKS", "axum tower actix-web rocket warp").split()
SIZES = [2048, 65536]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def body_of(size):
    env = {"id": "evt_http_bench", "type": "plugipay.invoice.paid.v1", "account_id": "acc_1",
           "occurred_at": "2026-01-01T00:00:00Z", "data": {"object": {"id": "inv_1", "total": 4200, "lines": []}}}
    i = 0
    while True:
        b = json.dumps(env, separators=(",", ":"))
        if len(b) >= size:
            return b
        env["data"]["object"]["lines"].append({"id": f"il_{i:08}", "description": f"seat {i}", "amount": 1000 + i})
        i += 1


def start_receiver(fw):
    """The framework's release example receiver: the process and its URL."""
    import threading
    env = dict(os.environ, PLUGIPAY_WEBHOOK_SECRET=SECRET, PORT="0", RUST_LOG="error",
               PLUGIPAY_EXAMPLE_QUIET="1")
    proc = subprocess.Popen([os.path.join(ROOT, "target", "release", fw)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = proc.stdout.readline().strip().removeprefix("listening on ")
    # Drain stdout (handled/duplicate lines) so the receiver never blocks.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, addr


def lua(body, header):
    return ("wrk.method = \"POST\"\n"
            f"wrk.body = {json.dumps(body)}\n"
            "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
            + (f"wrk.headers[\"X-Plugipay-Signature\"] = \"{header}\"\n" if header else ""))


def wrk(url, script):
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{SECS}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct(50), pct(99), int(bad.group(1)) if bad else 0


def cpu_seconds(pid):
    """(user, system) CPU seconds of every thread of `pid` (1/100 s ticks)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def wrk_cpu(pid, url, script):
    """Server CPU µs per request over one wrk run (total, user, system), the
    requests made, and the non-2xx answers."""
    (u0, s0) = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{SECS}s", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    (u1, s1) = cpu_seconds(pid)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    user, system = (u1 - u0) * 1e6 / n, (s1 - s0) * 1e6 / n
    return user + system, n, int(bad.group(1)) if bad else 0, user, system


def core_cost(body, header):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(body)
        f.flush()
        out = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "core_cost"), f.name, header],
                             env=dict(os.environ, PLUGIPAY_WEBHOOK_SECRET=SECRET, RUST_LOG="error",
                                      PLUGIPAY_EXAMPLE_QUIET="1"),
                             capture_output=True, text=True, check=True).stdout
    return json.loads(out)["cpu_us"]


def cpu_main():
    sizes = [2048, 16384]

    def signed(size):
        # Signed now: a run lasts longer than the 300 s tolerance.
        body, t = body_of(size), int(time.time())
        return body, f"t={t},v1=" + hmac.new(SECRET.encode(), f"{t}.".encode() + body.encode(),
                                             hashlib.sha256).hexdigest()
    core = {size: core_cost(*signed(size)) for size in sizes}
    rows = []
    for fw in FRAMEWORKS:
        proc, addr = start_receiver(fw)
        try:
            for size in sizes:
                body, header = signed(size)
                with tempfile.TemporaryDirectory() as d:
                    v, p = os.path.join(d, "v.lua"), os.path.join(d, "p.lua")
                    open(v, "w").write(lua(body, header))
                    open(p, "w").write(lua(body, None))
                    ver = wrk_cpu(proc.pid, f"{addr}/webhooks/plugipay", v)
                    pla = wrk_cpu(proc.pid, f"{addr}/plain", p)
                over = ver[0] - pla[0] - core[size]
                user_over = ver[3] - pla[3] - core[size]
                rows.append((fw, size, ver, pla, core[size], over, user_over))
                print(f"{fw} {size}: verified {ver[0]:.2f} µs ({ver[3]:.2f} user), plain {pla[0]:.2f} µs "
                      f"({pla[3]:.2f} user), core {core[size]:.2f} µs, overhead {over:.2f} µs "
                      f"({user_over:.2f} in user space)", file=sys.stderr)
        finally:
            proc.kill()
            proc.wait()
    print("| framework | body | verified route: CPU µs/req (user + system) | plain route | core verify + dispatch | overhead | of which user space | requests (verified / plain) | non-2xx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fw, size, ver, pla, c, over, user_over in rows:
        print(f"| {fw} | {size // 1024} KiB | {ver[0]:.2f} ({ver[3]:.2f} + {ver[4]:.2f}) | "
              f"{pla[0]:.2f} ({pla[3]:.2f} + {pla[4]:.2f}) | {c:.2f} | {over:+.2f} | **{user_over:+.2f}** | "
              f"{ver[1]:,} / {pla[1]:,} | {ver[2] + pla[2]} |")


def main():
    rows = []
    for fw in FRAMEWORKS:
        proc, addr = start_receiver(fw)
        try:
            for size in SIZES:
                body = body_of(size)
                t = int(time.time())
                sig = hmac.new(SECRET.encode(), f"{t}.".encode() + body.encode(), hashlib.sha256).hexdigest()
                with tempfile.TemporaryDirectory() as d:
                    v, p = os.path.join(d, "v.lua"), os.path.join(d, "p.lua")
                    open(v, "w").write(lua(body, f"t={t},v1={sig}"))
                    open(p, "w").write(lua(body, None))
                    ver = wrk(f"{addr}/webhooks/plugipay", v)
                    pla = wrk(f"{addr}/plain", p)
                rows.append((fw, size, ver, pla))
                print(f"{fw} {size}: verified {ver[0]:.0f} req/s, plain {pla[0]:.0f} req/s", file=sys.stderr)
        finally:
            proc.kill()
            proc.wait()
    print(f"| framework | body | verified req/s | p50 / p99 (ms) | plain req/s | p50 / p99 (ms) | verified / plain | non-2xx |")
    print("|---|---|---|---|---|---|---|---|")
    for fw, size, ver, pla in rows:
        print(f"| {fw} | {size // 1024} KiB | {ver[0]:,.0f} | {ver[1]:.2f} / {ver[2]:.2f} | {pla[0]:,.0f} | "
              f"{pla[1]:.2f} / {pla[2]:.2f} | {ver[0] / pla[0]:.2f} | {ver[3] + pla[3]} |")


if __name__ == "__main__":
    cpu_main() if CPU else main()
