"""What the Python end-to-end tests share: failures collected without stopping the run, and a free
loopback port for the server under test. Each test puts tests/support on sys.path to import it."""
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
