#!/usr/bin/env python3
"""Scale-out end to end on one machine (issue 18): a throwaway PostgreSQL (scripts/pg-test.sh), two
engine processes (`v4flash serve` on a tiny random-weight checkpoint made by `v4flash synth`, 8
output tokens per request so 200 requests take seconds on 2 cores; `--engine scripted` runs
v4flash-testserver's scripted engine instead), and two gateways (the product's
`v4flash serve --deployment`, no model) on the shared ledger, routing deepseek-v4-flash to both
engines and deepseek-v4-flash:variant1 to the first only.

Checks:
  - 200 mixed streamed requests (3 dialects, both ids) spread over both gateways, with the second
    engine SIGKILLed after a third of them: every request completes, or fails before its first byte
    (a plain HTTP error, then retried by the client), or, if it was streaming from the killed
    engine, ends with the dialect's in-stream error; none hangs;
  - the ledger holds exactly one row per completed request (its id is the response's id), with the
    tokens the client saw and the cost of its own id's rate card; no row for a request refused before
    its first byte;
  - an rpm limit of N on one key holds across both gateways: N + k requests spread over them, exactly
    k refused with 429;
  - the gateways' /metrics and /health show the dead engine ejected or down.
Without PostgreSQL binaries the test reports SKIPPED (exit 77), or fails when V4_REQUIRE_PG=1.
usage: scale_out_test.py --binary build/v4flash --testserver build/v4flash-testserver --tokenizer FILE
                         [--engine real|scripted]
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "support"))
from e2e_checks import FAILURES, check, sse_events  # noqa: E402
from e2e_server import ServerProcess  # noqa: E402

# The deployment's rate cards, nano-dollars per token (input, cached input, output).
RATES = {"deepseek-v4-flash": (140, 28, 280), "deepseek-v4-flash:variant1": (500, 100, 1000)}
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages"}
ENGINE_KEY = "sk-engine-secret"
OPERATOR_KEY = "sk-operator"  # the gateways' unmetered key, for /metrics


def rates_json(model):
    i, c, o = RATES[model]
    return {"input": f"{i / 1000:.3f}", "cached_input": f"{c / 1000:.3f}", "output": f"{o / 1000:.3f}"}


MAX_TOKENS = [48]  # 8 on the real engine (set by main)


def body_for(dialect, model, text):
    if dialect == "responses":
        return {"model": model, "input": text, "max_output_tokens": MAX_TOKENS[0], "stream": True}
    b = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": MAX_TOKENS[0], "stream": True}
    if dialect == "chat":
        b["stream_options"] = {"include_usage": True}
    return b


def headers_for(dialect, key):
    h = {"Content-Type": "application/json"}
    if dialect == "anthropic":
        h["x-api-key"] = key
    else:
        h["Authorization"] = "Bearer " + key
    return h


def stream(port, dialect, key, body):
    """-> ("completed", id, (prompt, cached, output)) | ("refused", status, None) | ("broken", id, None)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", PATHS[dialect], json.dumps(body), headers_for(dialect, key))
    r = c.getresponse()
    if r.status != 200:
        r.read()
        c.close()
        return ("refused", r.status, None)
    rid, usage, anth, ended, error = None, None, {}, False, False
    for ev in sse_events(r):
        t = ev.get("type")
        if "error" in ev or t in ("error", "response.failed"):
            error = True
        elif dialect == "chat":
            rid = rid or ev.get("id")
            if ev.get("usage"):
                u = ev["usage"]
                usage = (u["prompt_tokens"], (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0), u["completion_tokens"])
                ended = True
        elif dialect == "responses":
            if ev.get("response"):
                rid = rid or ev["response"]["id"]
            if t in ("response.completed", "response.incomplete"):  # incomplete: max_output_tokens reached
                u = ev["response"]["usage"]
                usage = (u["input_tokens"], (u.get("input_tokens_details") or {}).get("cached_tokens", 0), u["output_tokens"])
                ended = True
        else:
            if t == "message_start":
                rid = ev["message"]["id"]
                anth.update(ev["message"].get("usage", {}))
            elif t == "message_delta":
                anth.update(ev.get("usage", {}))
            elif t == "message_stop":
                cached = anth.get("cache_read_input_tokens", 0) or 0
                usage = (anth["input_tokens"] + cached, cached, anth["output_tokens"])
                ended = True
    c.close()
    if ended and not error:
        return ("completed", rid, usage)
    return ("broken", rid, None)


def cli(binary, *args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout


def psql(url, sql):
    for d in sorted(os.listdir("/usr/lib/postgresql")):
        exe = os.path.join("/usr/lib/postgresql", d, "bin", "psql")
    out = subprocess.run([exe, url, "-At", "-F", "|", "-c", sql], check=True, capture_output=True, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def get(port, path, key):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers={"Authorization": "Bearer " + key})
    r = c.getresponse()
    return r.read().decode()


def traffic(gateways, key, engine2, n=200, workers=8):
    """The mixed streamed load, engine 2 killed a third of the way; -> list of (model, outcome)."""
    results, lock, counter = [], threading.Lock(), [0]
    killed = threading.Event()

    def worker():
        while True:
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= n:
                return
            if i >= n // 3 and not killed.is_set():
                with lock:
                    if not killed.is_set():
                        engine2.kill9()
                        killed.set()
            dialect = ("chat", "responses", "anthropic")[i % 3]
            model = "deepseek-v4-flash:variant1" if i % 4 == 0 else "deepseek-v4-flash"
            outcome = None
            for attempt in range(4):  # a clean refusal before the first byte is tried again
                gw = gateways[(i + attempt) % 2]
                outcome = stream(gw.port, dialect, key, body_for(dialect, model, f"request {i} to {dialect}"))
                if outcome[0] != "refused" or outcome[1] == 429:
                    break
                time.sleep(0.05)
            with lock:
                results.append((model, outcome))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        check(not t.is_alive(), "a client thread hung")
    return results


def run(args, url, work):
    token = args.tokenizer
    key = json.loads(cli(args.binary, "keys", "create", "--db", url, "--name", "load", "--credit", "100", "--json"))
    limited = json.loads(cli(args.binary, "keys", "create", "--db", url, "--name", "rpm", "--rpm", "10", "--json"))
    env = {"ENGINE_KEY": ENGINE_KEY}
    if args.engine == "scripted":
        engine = [args.testserver, "--scripted-engine", "--tokenizer", token, "--api-key", ENGINE_KEY,
                  "--scripted-token-delay-us", "5000", "--max-running", "64"]
    else:
        model_dir = os.path.join(work, "tiny")
        cli(args.binary, "synth", "--out", model_dir, "--shape", "tiny", "--tokenizer", token)
        engine = [args.binary, "serve", "--model", model_dir, "--api-key", ENGINE_KEY, "--max-running", "64"]
        MAX_TOKENS[0] = 8
    e1, e2 = ServerProcess(engine, ready_seconds=120), ServerProcess(engine, ready_seconds=120)
    deployment = {
        "models": {
            "deepseek-v4-flash": {"region": "Germany (Frankfurt)", "rates": rates_json("deepseek-v4-flash"), "backends": [
                {"url": f"http://127.0.0.1:{e1.port}/v1", "api_key_env": "ENGINE_KEY", "name": "engine-1"},
                {"url": f"http://127.0.0.1:{e2.port}/v1", "api_key_env": "ENGINE_KEY", "name": "engine-2"}]},
            "deepseek-v4-flash:variant1": {"region": "Singapore", "rates": rates_json("deepseek-v4-flash:variant1"),
                                           "backends": [{"url": f"http://127.0.0.1:{e1.port}/v1",
                                                         "model": "deepseek-v4-flash", "api_key_env": "ENGINE_KEY",
                                                         "name": "engine-1"}]}},
        "routing": {"health_interval_ms": 200, "eject_after_errors": 2, "eject_ms": 60000, "connect_timeout_ms": 1000}}
    dfile = os.path.join(work, "deployment.json")
    with open(dfile, "w") as f:
        json.dump(deployment, f)
    gateway = [args.binary, "serve", "--deployment", dfile, "--tokenizer", token, "--db", url, "--api-key", OPERATOR_KEY]
    g1, g2 = ServerProcess(gateway, env=env), ServerProcess(gateway, env=env)
    procs = [e1, e2, g1, g2]
    try:
        # RPM across replicas: 10 + 4 requests alternating over the gateways, exactly 4 refused.
        statuses = []
        for i in range(14):
            out = stream((g1, g2)[i % 2].port, "chat", limited["key"],
                         body_for("chat", "deepseek-v4-flash", f"rpm {i}"))
            statuses.append(out[0] if out[0] != "refused" else out[1])
        check(statuses.count(429) == 4 and statuses.count("completed") == 10, f"rpm 10 over two gateways: {statuses}")

        t0 = time.time()
        results = traffic((g1, g2), key["key"], e2)
        elapsed = time.time() - t0
        kinds = [o[0] for _, o in results]
        check(len(results) == 200, f"{len(results)} of 200 requests ended")
        check(all(k in ("completed", "broken") for k in kinds), f"requests refused after retries: "
              f"{[o for _, o in results if o[0] == 'refused']}")
        completed = {o[1]: (m, o[2]) for m, o in results if o[0] == "completed"}
        broken = [o for _, o in results if o[0] == "broken"]
        check(len(completed) >= 180, f"only {len(completed)} of 200 completed ({len(broken)} broken mid-stream)")

        rows = psql(url, "SELECT request_id, model, prompt_cached_tokens, prompt_uncached_tokens, output_tokens, "
                         f"cost_nano, status FROM ledger WHERE key_id = '{key['id']}'")
        by_id = {}
        for r in rows:
            check(r[0] not in by_id, f"ledger row {r[0]} twice")
            by_id[r[0]] = r
        for rid, (model, (prompt, cached, out)) in completed.items():
            r = by_id.get(rid)
            if not check(r is not None, f"completed request {rid} has no ledger row"):
                continue
            i, c, o = RATES[model]
            want = [model, str(cached), str(prompt - cached), str(out), str((prompt - cached) * i + cached * c + out * o)]
            check(r[1:6] == want, f"ledger {rid}: {r[1:6]} != {want}")
        extra = [r for rid, r in by_id.items() if rid not in completed]
        check(all(r[6] == "failed" for r in extra) and len(extra) <= len(broken),
              f"ledger rows beyond the completed requests: {extra} (broken mid-stream: {len(broken)})")

        sent = {"engine-1": 0, "engine-2": 0}
        for g in (g1, g2):
            metrics = get(g.port, "/metrics", OPERATOR_KEY)
            for name in sent:
                line = f'v4flash:backend_requests_total{{model="deepseek-v4-flash",backend="{name}"}} '
                at = metrics.find(line)
                if check(at >= 0, f"no {line} in /metrics"):
                    sent[name] += int(metrics[at + len(line):].split()[0])
        check(sent["engine-2"] > 0, f"engine-2 took no requests before it was killed: {sent}")
        for g in (g1, g2):
            health = json.loads(get(g.port, "/health", key["key"]))
            states = {b["name"]: b["state"] for b in health["backends"]["deepseek-v4-flash"]["backends"]}
            check(states.get("engine-2") in ("down", "ejected") and states.get("engine-1") == "healthy",
                  f"gateway on {g.port}: backend states {states}")
        print(f"scale-out: 200 requests in {elapsed:.1f} s over 2 gateways, engine-2 SIGKILLed after 66: "
              f"{len(completed)} completed, {len(broken)} broken mid-stream, {len(rows)} ledger rows; "
              f"rpm 10 over both gateways: {statuses.count(429)} of 14 refused; deepseek-v4-flash attempts per engine "
              f"{sent}", flush=True)
    finally:
        for p in procs:
            p.stop()
        if FAILURES:
            for p, name in zip(procs, ("engine-1", "engine-2", "gateway-1", "gateway-2")):
                print(f"--- {name} output (tail)\n{p.output()[-3000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--testserver", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--engine", choices=("real", "scripted"), default="real")
    args = ap.parse_args()
    script = os.path.join(here, "..", "..", "scripts", "pg-test.sh")
    work = tempfile.mkdtemp(prefix="v4f-scale-out-")
    pgdir = tempfile.mkdtemp(prefix="v4f-scale-out-pg-")  # its own: as root, PostgreSQL's user must reach it
    started = subprocess.run(["bash", script, "start", pgdir], capture_output=True, text=True)
    if started.returncode == 77:
        if os.environ.get("V4_REQUIRE_PG") == "1":
            print("FAIL: PostgreSQL binaries not installed but V4_REQUIRE_PG=1")
            return 1
        print("SKIPPED: PostgreSQL binaries not installed")
        return 77
    try:
        if not check(started.returncode == 0, f"pg-test.sh start: {started.stderr}"):
            return 1
        run(args, started.stdout.strip(), work)
    finally:
        subprocess.run(["bash", script, "stop", pgdir], capture_output=True)
        subprocess.run(["rm", "-rf", work, pgdir])
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
