"""What the Python end-to-end tests share: failures collected without stopping the run, a free
loopback port for the server under test, and the events of a streamed answer. Each test puts
tests/support on sys.path to import it."""
import json
import socket

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sse_events(response):
    """The JSON of each `data:` line of a streamed (SSE) HTTP response, in order, until `[DONE]` or
    the end of the stream; read as it arrives, so a caller may stop (and abort) part way."""
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)
