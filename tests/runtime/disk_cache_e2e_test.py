#!/usr/bin/env python3
"""The disk prefix cache end to end: `v4flash serve --cache-dir DIR --db DB` on a synthesised tiny
checkpoint (random weights), compared with a server without a cache directory.

  - restart: a ~4.2K-token prompt served, the server stopped and started again: the same prompt
    reports >= 3,968 cached tokens in usage and in the ledger, and the same logprobs (every value,
    as JSON prints them: shortest round-trip, so equal text = equal floats) as the uncached server;
  - corruption: one byte flipped in every snapshot file, restart: the request succeeds uncached,
    with the same logprobs, and /metrics counts the corrupt files;
  - kill -9 while six concurrent prompts are writing snapshots, restart: no temporary left, no
    corrupt file, and every prompt's logprobs equal the uncached server's (no bad state used).
usage: disk_cache_e2e_test.py --binary build/v4flash --tokenizer tokenizer.json
"""
import argparse
import glob
import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from e2e_checks import FAILURES, check  # noqa: E402
from e2e_server import ServerProcess  # noqa: E402


ADMIN_KEY = "sk-disk-cache-operator"


class Server(ServerProcess):
    def __init__(self, binary, model, db, extra=()):
        super().__init__(
            [binary, "serve", "--model", model, "--db", db, "--threads", "2", "--max-running", "8",
             "--api-key", ADMIN_KEY,
             # The disk tier serves the shared namespace only (docs/security.md): the operator opts in.
             "--shared-prefix-cache", *extra], ready_seconds=120, stop_seconds=60)

    def chat(self, key, text):
        body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": text}], "max_tokens": 3,
                "temperature": 0, "logprobs": True, "top_logprobs": 5}
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", "/v1/chat/completions", json.dumps(body),
                  {"Content-Type": "application/json", "Authorization": "Bearer " + key})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"chat: HTTP {r.status}: {data[:500]!r}")
        res = json.loads(data)
        lp = [(t["token"], repr(t["logprob"]), [(a["token"], repr(a["logprob"])) for a in t["top_logprobs"]])
              for t in res["choices"][0]["logprobs"]["content"]]
        return {"id": res["id"], "usage": res["usage"], "logprobs": lp}

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/metrics", headers={"Authorization": "Bearer " + ADMIN_KEY})  # /metrics: operator only
        text = c.getresponse().read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("v4flash:disk_cache_") and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name[len("v4flash:"):]] = float(value)
        return out


def cli(binary, *args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout


def words(seed, n):
    rnd = random.Random(seed)
    return " ".join(rnd.choice(["alpha", "beta", "gamma", "delta", "kappa", "omega", "sigma", "theta"]) +
                    str(rnd.randrange(1000)) for _ in range(n))


def cached(res):
    return (res["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0)


def ledger_cached(db, request_id):
    # The ledger row is settled after the response is sent: wait for it (bounded).
    for _ in range(100):
        con = sqlite3.connect(db)
        row = con.execute("SELECT prompt_cached_tokens, prompt_uncached_tokens FROM ledger WHERE request_id = ?",
                          (request_id,)).fetchone()
        con.close()
        if row is not None:
            return row
        time.sleep(0.05)
    return None


def snapshots(cache_dir):
    return glob.glob(os.path.join(cache_dir, "*", "*.snap"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tokenizer", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="v4-disk-cache-e2e-")
    model = os.path.join(work, "model")
    cli(a.binary, "synth", "--out", model, "--shape", "tiny", "--tokenizer", a.tokenizer)
    db = os.path.join(work, "ledger.db")
    key = json.loads(cli(a.binary, "keys", "create", "--db", db, "--name", "t", "--json"))["key"]
    long_text = words(1, 2100)
    medium = [words(10 + i, 500) for i in range(6)]

    base = Server(a.binary, model, db)
    base.admin = key
    want_long = base.chat(key, long_text)
    want_medium = [base.chat(key, t) for t in medium]
    base.stop()
    prompt_tokens = want_long["usage"]["prompt_tokens"]
    check(prompt_tokens >= 4096, f"the long prompt has {prompt_tokens} tokens, fewer than 4096")
    print(f"long prompt: {prompt_tokens} tokens; medium: {[r['usage']['prompt_tokens'] for r in want_medium]}", flush=True)

    # Restart: the same prompt from disk, billed as cached, the same logprobs.
    cache_dir = os.path.join(work, "cache")
    flags = ("--cache-dir", cache_dir, "--cache-disk-bytes", str(8 << 30))
    s = Server(a.binary, model, db, flags)
    s.admin = key
    first = s.chat(key, long_text)
    check(cached(first) == 0 and first["logprobs"] == want_long["logprobs"], f"first run on an empty cache: {first['usage']}")
    s.stop()
    check(len(snapshots(cache_dir)) > 0, "no snapshot files after a graceful stop")
    s = Server(a.binary, model, db, flags)
    s.admin = key
    again = s.chat(key, long_text)
    check(cached(again) >= 3968, f"after a restart only {cached(again)} cached tokens")
    check(again["logprobs"] == want_long["logprobs"], "logprobs after a disk hit differ from the uncached server's")
    row = ledger_cached(db, again["id"])
    check(row is not None and row[0] == cached(again) and row[0] + row[1] == prompt_tokens,
          f"ledger row {row} != usage {again['usage']}")
    m = s.metrics()
    check(m.get("disk_cache_hits_total") == 1 and m.get("disk_cache_hit_tokens_total") == cached(again),
          f"metrics after a disk hit: {m}")
    s.stop()
    print(f"restart: {cached(again)} of {prompt_tokens} tokens cached, logprobs identical", flush=True)

    # Corruption: every snapshot has one byte flipped; the request runs uncached, nothing bad used.
    for f in snapshots(cache_dir):
        with open(f, "r+b") as fh:
            fh.seek(os.path.getsize(f) // 2)
            b = fh.read(1)
            fh.seek(os.path.getsize(f) // 2)
            fh.write(bytes([b[0] ^ 0x04]))
    s = Server(a.binary, model, db, flags)
    s.admin = key
    bad = s.chat(key, long_text)
    m = s.metrics()
    check(cached(bad) == 0, f"a corrupt cache served {cached(bad)} tokens")
    check(bad["logprobs"] == want_long["logprobs"], "logprobs with a corrupt cache differ")
    check(m.get("disk_cache_corrupt_total", 0) >= 1, f"corruption not counted: {m}")
    s.stop()
    print(f"corruption: request uncached, {m.get('disk_cache_corrupt_total')} corrupt files counted", flush=True)

    # kill -9 during heavy snapshot writes, then restart.
    cache2 = os.path.join(work, "cache2")
    flags2 = ("--cache-dir", cache2)
    s = Server(a.binary, model, db, flags2)
    s.admin = key
    threads = [threading.Thread(target=lambda t=t: _quiet(s.chat, key, t)) for t in medium]
    for t in threads:
        t.start()
    deadline = time.time() + 300
    while time.time() < deadline:
        m = s.metrics()
        if m.get("disk_cache_writes_total", 0) >= 3:
            break
        time.sleep(0.02)
    s.kill9()
    for t in threads:
        t.join()
    left = glob.glob(os.path.join(cache2, "*", "*.tmp"))
    print(f"kill -9 after {m.get('disk_cache_writes_total')} writes: {len(snapshots(cache2))} snapshots, "
          f"{len(left)} unfinished temporaries on disk", flush=True)
    s = Server(a.binary, model, db, flags2)
    s.admin = key
    check(not glob.glob(os.path.join(cache2, "*", "*.tmp")), "temporaries of the killed server left after the restart")
    hits = 0
    for text, want in zip(medium, want_medium):
        got = s.chat(key, text)
        hits += cached(got)
        check(got["logprobs"] == want["logprobs"], f"logprobs after kill -9 differ (cached {cached(got)})")
    m = s.metrics()
    check(m.get("disk_cache_corrupt_total", 0) == 0, f"kill -9 left corrupt snapshots: {m}")
    check(hits > 0, "no snapshot of the killed server was used")
    s.stop()
    print(f"kill -9: {hits} cached tokens used after the restart, logprobs identical, 0 corrupt", flush=True)

    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        sys.exit(1)
    subprocess.run(["rm", "-rf", work])
    print("disk cache end to end: OK")


def _quiet(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass  # the server was killed under it


if __name__ == "__main__":
    main()
