#!/usr/bin/env python3
"""Speculative decoding end to end: `v4flash serve --speculative 2` on a synthesised tiny checkpoint
(random weights, with its MTP block) against the same server without it: greedy Chat answers (text
and every logprob, as JSON prints them), streamed and not, are identical; a seeded sampled answer
repeats; /metrics counts the verify steps; an out-of-range --speculative is refused at start.
usage: speculative_e2e_test.py --binary build/v4flash --tokenizer tokenizer.json
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from e2e_checks import FAILURES, check  # noqa: E402
from e2e_server import ServerProcess  # noqa: E402

KEY = "sk-speculative-operator"


class Server(ServerProcess):
    def __init__(self, binary, model, extra=()):
        super().__init__([binary, "serve", "--model", model, "--threads", "2", "--max-running", "4",
                          "--api-key", KEY, *extra], ready_seconds=120, stop_seconds=60)

    def post(self, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        c.request("POST", "/v1/chat/completions", json.dumps(body),
                  {"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"chat: HTTP {r.status}: {data[:500]!r}")
        return data

    def chat(self, text, **extra):
        body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": text}], "max_tokens": 32,
                "temperature": 0, "logprobs": True, "top_logprobs": 3, "thinking": {"type": "disabled"}, **extra}
        res = json.loads(self.post(body))
        lp = [(t["token"], repr(t["logprob"]), [(a["token"], repr(a["logprob"])) for a in t["top_logprobs"]])
              for t in res["choices"][0]["logprobs"]["content"]]
        return res["choices"][0]["message"]["content"], lp, res["choices"][0]["finish_reason"]

    def streamed_text(self, text):
        body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": text}], "max_tokens": 32,
                "temperature": 0, "stream": True, "thinking": {"type": "disabled"}}
        out = ""
        for line in self.post(body).decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices", []):
                    out += choice.get("delta", {}).get("content") or ""
        return out

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/metrics", headers={"Authorization": "Bearer " + KEY})
        out = {}
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith("v4flash:") and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name[len("v4flash:"):]] = float(value)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tokenizer", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="v4-speculative-e2e-")
    model = os.path.join(work, "model")
    subprocess.run([a.binary, "synth", "--out", model, "--shape", "tiny", "--tokenizer", a.tokenizer], check=True,
                   capture_output=True)
    prompts = ["Count the primes below one hundred.", "A poem about the sea."]

    plain = Server(a.binary, model)
    want = [plain.chat(p) for p in prompts]
    plain.stop()

    spec = Server(a.binary, model, ("--speculative", "2"))
    got = [spec.chat(p) for p in prompts]
    for p, w, g in zip(prompts, want, got):
        check(g == w, f"greedy answer to {p!r} differs with --speculative 2:\n  {w[0]!r}\n  {g[0]!r}")
    check(spec.streamed_text(prompts[0]) == want[0][0], "the streamed greedy answer differs from the plain one")
    sampled = [spec.chat(prompts[1], temperature=0.9, seed=11) for _ in range(2)]
    check(sampled[0] == sampled[1], "a seeded sampled answer did not repeat")
    m = spec.metrics()
    check(m.get("spec_decode_num_drafts_total", 0) > 0, f"no verify steps in /metrics: {m}")
    check(m.get("spec_decode_num_draft_tokens_total", 0) == 2 * m.get("spec_decode_num_drafts_total", -1),
          "two draft tokens per verify step")
    check("spec_decode_acceptance_rate" in m and "spec_decode_tokens_per_step" in m, "the gauges are missing")
    print(f"speculative: {m.get('spec_decode_num_drafts_total')} verify steps, "
          f"acceptance {m.get('spec_decode_acceptance_rate')}", flush=True)
    spec.stop()

    r = subprocess.run([a.binary, "serve", "--model", model, "--speculative", "9", "--port", "0"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "--speculative" in r.stderr, f"--speculative 9: rc {r.returncode}, {r.stderr[-300:]!r}")

    if FAILURES:
        print("FAILED:", len(FAILURES))
        return 1
    print("speculative e2e: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
