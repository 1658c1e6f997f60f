#!/usr/bin/env python3
"""`v4flash bench serve --model DIR --json` against a running server on a demo checkpoint: every
level's requests succeed, the server's view is filled in, and the bounds printed are the ones the
run's own measurements give: read = tokens/step x bandwidth / bytes per step (from the checkpoint's
header), compute = peak / FLOPs per token, the level's bound the lower of the two.
usage: bench_serve_test.py --binary build/v4flash --tokenizer tokenizer.json"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from e2e_checks import FAILURES, check  # noqa: E402
from e2e_server import ServerProcess  # noqa: E402


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def costs(model):
    """(dense bytes + head bytes, embedding row bytes, bytes of one routed expert, FLOPs per token, cfg)"""
    cfg = json.load(open(os.path.join(model, "config.json")))
    E, k, L, V = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["num_hidden_layers"], cfg["vocab_size"]
    size = {"F32": 4, "BF16": 2, "F8_E4M3": 1, "I8": 1, "F8_E8M0": 1, "U8": 1, "I32": 4, "I64": 8}
    dense_b = embed_row = routed_b = dense_p = routed_p = 0.0
    for f in os.listdir(model):
        if not f.endswith(".safetensors"):
            continue
        for name, t in header(os.path.join(model, f)).items():
            if name == "__metadata__" or name.startswith("mtp."):
                continue
            numel = math.prod(t["shape"])
            nbytes = t["data_offsets"][1] - t["data_offsets"][0]
            params = 0 if t["dtype"] == "F8_E8M0" else numel * (2 if t["dtype"] == "I8" else 1)
            if name == "embed.weight":
                embed_row = nbytes / V
            elif ".ffn.gate.tid2eid" in name:
                dense_b += nbytes / V
            elif ".ffn.experts." in name:
                routed_b += nbytes
                routed_p += params
            else:  # head.weight counts once per step, like every dense matrix
                dense_b += nbytes
                dense_p += params
    return dense_b, embed_row, routed_b / (E * L), 2 * (dense_p + routed_p / E * k), (E, k, L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tokenizer", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.tokenizer):
        print("SKIP: tokenizer not found:", a.tokenizer)
        return 77
    tmp = tempfile.mkdtemp(prefix="v4benchserve-")
    try:
        model, db = os.path.join(tmp, "tiny"), os.path.join(tmp, "ledger.db")
        subprocess.run([a.binary, "synth", "--out", model, "--shape", "tiny", "--tokenizer", a.tokenizer], check=True,
                       capture_output=True)
        operator = "bench-operator-" + os.urandom(8).hex()
        customer = json.loads(subprocess.run([a.binary, "keys", "create", "--db", db, "--credit", "5", "--json"],
                                             check=True, capture_output=True, text=True).stdout)["key"]
        server = ServerProcess([a.binary, "serve", "--model", model, "--db", db, "--api-key", operator], ready_seconds=120)
        try:
            out = subprocess.run([a.binary, "bench", "serve", "--port", str(server.port), "--api-key", operator,
                                  "--concurrency", "1,2", "--requests-per-stream", "1", "--input-len", "8",
                                  "--output-len", "6", "--model", model, "--threads", "1", "--buffer-mib", "64",
                                  "--json"], capture_output=True, text=True, timeout=300)
            # A customer's key: /metrics answers 403, and the run says so instead of printing zeros.
            cust = [a.binary, "bench", "serve", "--port", str(server.port), "--api-key", customer, "--concurrency",
                    "1", "--requests-per-stream", "1", "--input-len", "4", "--output-len", "2"]
            cust_json = subprocess.run(cust + ["--json"], capture_output=True, text=True, timeout=120)
            cust_text = subprocess.run(cust, capture_output=True, text=True, timeout=120)
        finally:
            server.stop()
        check(cust_json.returncode == 0, f"customer key: bench serve exited {cust_json.returncode}: {cust_json.stderr[-800:]}")
        lv = json.loads(cust_json.stdout)["levels"][0] if cust_json.returncode == 0 else {}
        check(lv.get("server", "missing") is None and lv.get("server_problem") == "HTTP 403",
              f"customer key: server view {lv.get('server', 'missing')}, problem {lv.get('server_problem')}")
        check(cust_text.returncode == 0 and "not available (HTTP 403)" in cust_text.stdout
              and "operator key" in cust_text.stdout and "sampling%" not in cust_text.stdout,
              f"customer key, text: {cust_text.stdout[-800:]}")
        check(out.returncode == 0, f"bench serve exited {out.returncode}: {out.stderr[-2000:]}")
        r = json.loads(out.stdout)
        bw, peak = r.get("read_bandwidth_bytes_per_s", 0), r.get("peak_flops_per_s", 0)
        check(bw > 0 and peak > 0 and r.get("generate_tokens_per_s", 0) > 0, f"run figures: {out.stdout[-600:]}")
        dense_b, embed_row, expert_b, flops, (E, k, L) = costs(model)
        check([lv["level"] for lv in r["levels"]] == [1, 2], f"levels {r['levels']}")
        for lv in r["levels"]:
            check(lv["errors"] == 0 and lv["requests"] >= 2, f"level {lv['level']}: {lv['requests']} requests, "
                                                                f"{lv['errors']} errors")
            s = lv["server"]
            b = s["tokens_per_step"]
            check(b > 0 and s["generation_tokens_per_s"] > 0, f"level {lv['level']} server view {s}")
            distinct = k if b <= 1 else E * (1 - (1 - k / E) ** b)
            step_bytes = dense_b + b * embed_row + distinct * expert_b * L
            read = b * bw / step_bytes
            compute = peak / flops
            check(math.isclose(s["read_bound_tokens_per_s"], read, rel_tol=1e-2),
                  f"level {lv['level']}: read bound {s['read_bound_tokens_per_s']} vs {read}")
            check(math.isclose(s["compute_bound_tokens_per_s"], compute, rel_tol=1e-2),
                  f"level {lv['level']}: compute bound {s['compute_bound_tokens_per_s']} vs {compute}")
            check(math.isclose(s["bound_tokens_per_s"], min(read, compute), rel_tol=1e-2),
                  f"level {lv['level']}: bound {s['bound_tokens_per_s']} is not the lower of {read} and {compute}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} failures")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
