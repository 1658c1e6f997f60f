"""A `v4flash serve` process for the Python end-to-end tests: started on a free loopback port,
waited for until /health answers, its output kept for failure messages, stopped with SIGTERM (or
killed). Each test puts tests/support on sys.path to import it."""
import http.client
import os
import signal
import subprocess
import tempfile
import time

from e2e_checks import free_port


class ServerProcess:
    def __init__(self, argv, env=None, ready_seconds=60, stop_seconds=20):
        """argv: the server command line without --port (added here)."""
        self.port = free_port()
        self.stop_seconds = stop_seconds
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([*argv, "--port", str(self.port)], stdout=self.log, stderr=self.log,
                                     env={**os.environ, **(env or {})})
        self._wait_ready(ready_seconds)

    def _wait_ready(self, seconds):
        deadline = time.time() + seconds
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited early:\n" + self.output())
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("server did not come up:\n" + self.output())
            time.sleep(0.1)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_seconds)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
