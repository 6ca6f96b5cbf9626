"""Start ``nnUNetv2_openvocab_serve`` as a real process on a free loopback port, for the server tests."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import httpx

STARTUP_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, model_folder: Path, work_folder: Path, env: Dict[str, str], extra: Sequence[str] = ()):
        self.port, self.work_folder = free_port(), work_folder
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work_folder.parent / f"server_{self.port}.log"
        command = [sys.executable, "-m", "nnunetv2_openvocab.commands.serve", "-m", str(model_folder),
                   "-f", "all", "-device", "cpu", "--port", str(self.port), "--work-folder", str(work_folder), *extra]
        self.process = subprocess.Popen(command, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.time() + STARTUP_TIMEOUT_S
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server did not answer within {STARTUP_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when a machine loses power mid-job."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_server(model_folder: Path, work_folder: Path, env: Dict[str, str], extra: Sequence[str] = (),
                   extra_env: Optional[Dict[str, str]] = None) -> Iterator[ServerProcess]:
    server = ServerProcess(model_folder, work_folder, {**env, **(extra_env or {})}, extra)
    try:
        yield server
    finally:
        server.stop()


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 600) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = client.get(f"/jobs/{job_id}").json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} not finished after {timeout_s} s: {status}")

