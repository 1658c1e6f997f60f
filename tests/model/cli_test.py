#!/usr/bin/python3
"""End-to-end check of `v4flash logits` and `v4flash generate` on the tiny checkpoint against the
reference fixtures (exact mode): case E's logits rows, the layer dumps, G's 32 greedy tokens (also
with --speculative 1 and 3), and a clear error for a bad token id. Usage: cli_test.py V4FLASH SHARED_DIR"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for k, m in header.items():
        if k == "__metadata__":
            continue
        s, e = m["data_offsets"]
        dt = {"F32": np.float32, "I32": np.int32, "I64": np.int64}[m["dtype"]]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(m["shape"])
    return out


def main():
    v4, shared = sys.argv[1], sys.argv[2]
    model = os.path.join(shared, "fixtures", "tiny-v4")
    ref = load(os.path.join(model, "reference-exact.safetensors"))
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tokens_file = os.path.join(tmp, "E.tokens")
        with open(tokens_file, "w") as f:
            f.write(",".join(str(t) for t in ref["E.tokens"]))
        out = os.path.join(tmp, "E.safetensors")
        subprocess.run([v4, "logits", "--model", model, "--tokens-file", tokens_file, "--prefill", "5", "--exact",
                        "--out", out, "--dump-layers", "--threads", "1"], check=True)
        got = load(out)
        diff = float(np.abs(got["logits"] - ref["E.logits"]).max()) if got["logits"].shape == ref["E.logits"].shape else float("inf")
        print(f"logits E: shape {got['logits'].shape}, max-abs {diff:.3g}")
        if diff > 1e-4:
            failures.append("case E logits")
        for l in range(6):
            if got[f"layer{l}.out_last"].shape != (4, 256):
                failures.append(f"layer{l}.out_last shape")
        # 5-token prefill: entry 0 (tokens 0..3) is visible from position 3 on, as id 0 + offset 5
        top = got["layer1.indexer_topk"]
        if top.shape != (5, 16) or top[:3].max() != -1 or sorted(top[3]) != [-1] * 15 + [5] or sorted(top[4]) != [-1] * 15 + [5]:
            failures.append("indexer dump of a 5-token prefill")

        prompt = ",".join(str(t) for t in ref["A.tokens"][:320])
        r = subprocess.run([v4, "generate", "--model", model, "--tokens", prompt, "--max-tokens", "32", "--exact",
                            "--no-stop", "--threads", "1"], check=True, capture_output=True, text=True)
        generated = [int(x) for x in r.stdout.split()[0].split(",")]
        same = generated == [int(x) for x in ref["G.generated"]]
        print(f"generate G: {'identical' if same else 'DIFFERENT'}")
        if not same:
            failures.append("greedy tokens of case G")
        # The same through the engine with speculative decoding (G has no EOS, so --no-stop is moot).
        if 1 in generated:
            failures.append("case G holds EOS: the speculative run cannot be compared")
        for k in ("1", "3"):
            r = subprocess.run([v4, "generate", "--model", model, "--tokens", prompt, "--max-tokens", "32", "--exact",
                                "--threads", "1", "--speculative", k], check=True, capture_output=True, text=True)
            spec = [int(x) for x in r.stdout.split()[0].split(",")]
            print(f"generate G --speculative {k}: {'identical' if spec == generated else 'DIFFERENT'}; {r.stderr.strip()}")
            if spec != generated:
                failures.append(f"greedy tokens of case G with --speculative {k}")
        r = subprocess.run([v4, "generate", "--model", model, "--tokens", "5,6", "--speculative", "1", "--no-stop"],
                           capture_output=True, text=True)
        if r.returncode == 0 or "--no-stop" not in r.stderr:
            failures.append("--speculative with --no-stop accepted: " + r.stderr)

        r = subprocess.run([v4, "logits", "--model", model, "--tokens", "1,4096", "--out", os.path.join(tmp, "x")],
                           capture_output=True, text=True)
        if r.returncode == 0 or "outside the vocabulary" not in r.stderr:
            failures.append("bad token id accepted: " + r.stderr)
    if failures:
        print("FAILED:", "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
