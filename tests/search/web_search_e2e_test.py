#!/usr/bin/env python3
"""Web search end to end: `v4flash-testserver --scripted-engine` (the product's `serve` with an engine
that answers on a fixed schedule) with `--db` and `--search linkup` pointed at a Linkup-compatible
server run here (HTTPS with a test CA passed by --linkup-ca; it records what it is sent), then with
`--search local` on an index built by `v4flash search-index build` from the repository's docs/.

Checks, in the three dialects, streamed and not:
  - the search request: POST /v1/search, "Authorization: Bearer <key from LINKUP_API_KEY>", q = the
    latest user message, outputType searchResults;
  - the answer ends with the Sources footer (the last content delta when streamed), and not with
    disable_formatting; usage reports one web search;
  - the ledger holds one search call per request at the model id's rate ($0.013 / $0.02 / $0.01),
    cost = tokens at the rate card + the call; `v4flash usage --json` shows web_search_calls per model;
  - a provider failing with 5xx (after its retries) gives 503 and nothing is billed; with 401, 502;
  - the server's log holds neither the Linkup key nor the query text;
  - a server without --search answers 400 naming web_search_linkup;
  - the demo's setup (the product binary on a tiny random-weight checkpoint, the local index of docs/)
    answers a web_search_linkup request with a Sources footer.
usage: web_search_e2e_test.py --binary build/v4flash --testserver build/v4flash-testserver --tokenizer T --docs DIR
"""
import argparse
import http.client
import http.server
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time

RATES = {  # nano-dollars: (input, cached input, output) per token, search per call
    "deepseek-v4-flash": (140, 140, 280, 13_000_000),
    "deepseek-v4-flash:variant1": (200, 200, 400, 20_000_000),
    "deepseek-v4-flash:variant2": (138, 28, 275, 10_000_000),
}
LINKUP_KEY = "lk-e2e-secret-7f3a9c"
FOOTER = "\n\nSources:\n[1] Bern - Wikipedia - https://en.wikipedia.org/wiki/Bern\n[2] Swiss cities - https://example.ch/cities"
RESULTS = {"results": [
    {"type": "text", "name": "Bern - Wikipedia", "url": "https://en.wikipedia.org/wiki/Bern",
     "content": "Bern is the de facto capital of Switzerland.", "favicon": "https://en.wikipedia.org/favicon.ico"},
    {"type": "text", "name": "Swiss cities", "url": "https://example.ch/cities", "content": "Zurich is the largest."}]}
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from e2e_checks import FAILURES, check  # noqa: E402
from e2e_server import ServerProcess  # noqa: E402


class FakeLinkup:
    """HTTPS on 127.0.0.1 with a self-signed certificate (SAN IP:127.0.0.1); `mode` picks the answers."""

    def __init__(self, tmp):
        self.cert, self.key = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "ca.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "1", "-subj", "/CN=v4flash e2e CA",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"],
                       check=True, capture_output=True)
        self.requests, self.mode = [], "ok"
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": json.loads(body)})
                status, answer = {"ok": (200, RESULTS), "5xx": (503, {"statusCode": 503, "error": {"message": "down"}}),
                                  "401": (401, {"statusCode": 401, "error": {"message": "bad key"}})}[outer.mode]
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages"}


def body_for(dialect, model, question, stream, extra):
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": question}]
    if dialect == "responses":
        b = {"model": model, "input": msgs, "max_output_tokens": 200}
    else:
        b = {"model": model, "messages": msgs, "max_tokens": 200}
    if stream:
        b["stream"] = True
        if dialect == "chat":
            b["stream_options"] = {"include_usage": True}
    b.update(extra)
    return b


def send(port, dialect, key, body):
    """-> (status, json or None, content text, last content delta, usage dict, id)"""
    h = {"Content-Type": "application/json"}
    if dialect == "anthropic":
        h.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
    else:
        h["Authorization"] = "Bearer " + key
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", PATHS[dialect], json.dumps(body), h)
    r = c.getresponse()
    if not body.get("stream") or r.status != 200:
        j = json.loads(r.read())
        if r.status != 200:
            return r.status, j, None, None, None, None
        if dialect == "chat":
            text = j["choices"][0]["message"]["content"]
        elif dialect == "responses":
            text = "".join(p["text"] for it in j["output"] if it["type"] == "message" for p in it["content"])
        else:
            text = "".join(b["text"] for b in j["content"] if b["type"] == "text")
        return 200, j, text, None, j["usage"], j["id"]
    text, last, usage, rid = "", None, {}, None
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        ev = json.loads(line[5:])
        delta = None
        if dialect == "chat":
            rid = rid or ev.get("id")
            if ev.get("choices") and ev["choices"][0]["delta"].get("content"):
                delta = ev["choices"][0]["delta"]["content"]
            if ev.get("usage"):
                usage = ev["usage"]
        elif dialect == "responses":
            if ev.get("response"):
                rid = rid or ev["response"]["id"]
                if ev["type"] == "response.completed":
                    usage = ev["response"]["usage"]
            if ev.get("type") == "response.output_text.delta":
                delta = ev["delta"]
        else:
            if ev["type"] == "message_start":
                rid = ev["message"]["id"]
            if ev["type"] == "content_block_delta" and ev["delta"]["type"] == "text_delta":
                delta = ev["delta"]["text"]
            if ev["type"] == "message_delta":
                usage = ev["usage"]
        if delta is not None:
            text += delta
            last = delta
    return 200, None, text, last, usage, rid


def searches_in_usage(dialect, usage):
    return (usage.get("server_tool_use") or {}).get("web_search_requests", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--testserver", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--docs", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="v4flash-search-e2e-")
    db = os.path.join(tmp, "ledger.db")
    key = json.loads(subprocess.run([a.binary, "keys", "create", "--db", db, "--name", "e2e", "--json"],
                                    check=True, capture_output=True, text=True).stdout)["key"]
    linkup = FakeLinkup(tmp)
    base = [a.testserver, "--scripted-engine", "--tokenizer", a.tokenizer, "--db", db]
    server = ServerProcess(base + ["--search", "linkup", "--linkup-url", "https://127.0.0.1:%d/v1" % linkup.port,
                            "--linkup-ca", linkup.cert, "--search-depth", "fast"], env={"LINKUP_API_KEY": LINKUP_KEY})
    billed = {}  # response id -> model
    try:
        models = list(RATES)
        n = 0
        for dialect in ("chat", "responses", "anthropic"):
            for stream in (False, True):
                for disable in (False, True):
                    model = models[n % 3]
                    question = "What is the capital of Switzerland? (%s %d)" % (dialect, n)
                    n += 1
                    extra = {"web_search_linkup": True}
                    if disable:
                        extra["disable_formatting"] = True
                    what = "%s stream=%s disable_formatting=%s" % (dialect, stream, disable)
                    before = len(linkup.requests)
                    status, j, text, last, usage, rid = send(server.port, dialect, key,
                                                             body_for(dialect, model, question, stream, extra))
                    if not check(status == 200, what + ": status %s %s" % (status, j)):
                        continue
                    billed[rid] = model
                    check(len(linkup.requests) == before + 1, what + ": one search call")
                    req = linkup.requests[-1]
                    check(req["path"] == "/v1/search", what + ": path " + req["path"])
                    check(req["auth"] == "Bearer " + LINKUP_KEY, what + ": the key in the Authorization header")
                    check(req["body"].get("q") == question, what + ": q is the latest user message: %r" % req["body"])
                    check(req["body"].get("outputType") == "searchResults" and req["body"].get("depth") == "fast",
                          what + ": outputType/depth")
                    if disable:
                        check("Sources:" not in text, what + ": no footer")
                    else:
                        check(text.endswith(FOOTER), what + ": footer at the end: %r" % text[-200:])
                        if stream:
                            check(last == FOOTER, what + ": the footer is the last content delta: %r" % last)
                    check(searches_in_usage(dialect, usage) == 1, what + ": usage reports one search: %r" % usage)
        # Faults: nothing billed; 503 when the provider keeps failing, 502 when it refuses the key.
        for mode, want in (("5xx", 503), ("401", 502)):
            linkup.mode = mode
            for dialect in ("chat", "anthropic"):
                status, j, *_ = send(server.port, dialect, key, body_for(dialect, models[0], "fault?", False,
                                                                          {"web_search_linkup": True}))
                check(status == want, "%s from the provider -> %d in %s, got %s" % (mode, want, dialect, status))
                err = j.get("error", {})
                check("web search failed" in err.get("message", ""), "%s error names the search: %r" % (mode, j))
        linkup.mode = "ok"
        time.sleep(0.5)  # rows are settled right after the response
        con = sqlite3.connect(db)
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT request_id, model, web_search_calls, web_search_rate_nano, prompt_cached_tokens, "
            "prompt_uncached_tokens, output_tokens, cost_nano FROM ledger")}
        check(len(rows) == len(billed), "one ledger row per answered request, none for the faults: %d vs %d"
              % (len(rows), len(billed)))
        for rid, model in billed.items():
            r = rows.get(rid)
            if not check(r is not None, "ledger row for " + str(rid)):
                continue
            m, calls, rate, cached, uncached, out, cost = r
            inp, cin, outp, search = RATES[model]
            check(m == model and calls == 1 and rate == search, "%s: one search at %d nano-$ (%s %s %s)"
                  % (rid, search, m, calls, rate))
            check(cost == uncached * inp + cached * cin + out * outp + search,
                  "%s: cost %d = tokens + one search" % (rid, cost))
        report = json.loads(subprocess.run([a.binary, "usage", "--db", db, "--json"], check=True,
                                           capture_output=True, text=True).stdout)
        for model in models:
            got = report["by_model"].get(model, {}).get("web_search_calls")
            want = sum(1 for m in billed.values() if m == model)
            check(got == want, "usage --json: %s web_search_calls %s, want %d" % (model, got, want))
        log = server.output()
        check(LINKUP_KEY not in log, "the Linkup key is not in the server log")
        check("capital of Switzerland" not in log, "the query text is not in the server log")
    finally:
        server.stop()
        linkup.httpd.shutdown()

    # No --search: a request asking for it is refused, naming the field.
    off = ServerProcess(base)
    try:
        for dialect in ("chat", "responses", "anthropic"):
            status, j, *_ = send(off.port, dialect, key, body_for(dialect, "deepseek-v4-flash", "q", False,
                                                                  {"web_search_linkup": True}))
            err = j.get("error", {})
            check(status == 400 and err.get("message", "").find("web search is not enabled on this server") >= 0,
                  "%s without --search: 400 (%s %r)" % (dialect, status, j))
            if dialect != "anthropic":
                check(err.get("param") == "web_search_linkup", dialect + ": the error names web_search_linkup")
    finally:
        off.stop()

    # The local provider: an index of the repository's docs, and the footer without any network.
    index = os.path.join(tmp, "docs.db")
    built = subprocess.run([a.binary, "search-index", "build", "--docs", a.docs, "--out", index],
                           capture_output=True, text=True)
    check(built.returncode == 0 and "indexed" in built.stdout, "search-index build: " + built.stdout + built.stderr)
    local = ServerProcess(base + ["--search", "local", "--search-index", index])
    try:
        for dialect in ("chat", "anthropic"):
            status, j, text, *_ = send(local.port, dialect, key, body_for(
                dialect, "deepseek-v4-flash", "How does the prefix cache on disk work?", False, {"web_search_linkup": True}))
            check(status == 200 and "\n\nSources:\n[1] " in (text or ""), "local search footer in %s: %r" % (dialect, text))
    finally:
        local.stop()

    # The demo (scripts/run.sh): the product binary, a tiny random-weight checkpoint, the local index.
    ckpt = os.path.join(tmp, "tiny")
    subprocess.run([a.binary, "synth", "--out", ckpt, "--shape", "tiny", "--tokenizer", a.tokenizer], check=True,
                   capture_output=True)
    demo = ServerProcess([a.binary, "serve", "--model", ckpt, "--db", db, "--search", "local", "--search-index", index])
    try:
        body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "How is web search billed?"}],
                "max_tokens": 8, "thinking": {"type": "disabled"}, "web_search_linkup": True}
        status, j, text, *_ = send(demo.port, "chat", key, body)
        check(status == 200 and "\n\nSources:\n[1] " in (text or ""), "demo server: Sources footer: %s %r" % (status, text))
        check("web-search.md" in (text or ""), "demo server: the docs page about web search is a source: %r" % text)
    finally:
        demo.stop()

    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        return 1
    print("web search e2e: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
