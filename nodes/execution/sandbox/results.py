"""What a run gave back: its capped output, the launcher's status report, and the RunResult."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass

from .limits import SandboxLimits

# Past this many bytes of output the run is killed: the tail can no longer be worth the wait.
HARD_OUTPUT_FACTOR = 16


@dataclass(frozen=True)
class RunResult:
    """What a run did. `exit_code` is negative (-signal) when a signal ended the process."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    duration_s: float
    cpu_s: float | None = None
    max_rss_mb: float | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None

    def to_text(self) -> str:
        """The run as the model should read it: status first, then the streams."""
        head = f"exit code: {self.exit_code}"
        if self.killed_reason:
            head += f" (killed: {self.killed_reason})"
        parts = [head]
        if self.stdout:
            parts.append(f"stdout:\n{self.stdout}")
        if self.stderr:
            parts.append(f"stderr:\n{self.stderr}")
        if not self.stdout and not self.stderr:
            parts.append("(no output)")
        return "\n".join(parts)


class OutputCapture:
    """Keeps the head and the tail of a stream (errors are usually at the end), counts the rest."""

    def __init__(self, limit: int):
        self.head_cap = limit // 2
        self.tail_cap = limit - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        body = bytes(self.head)
        if dropped > 0:
            body += f"\n[truncated {dropped} bytes]\n".encode()
        body += bytes(self.tail)
        return body.decode("utf-8", errors="replace")


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def read_status(read_fd: int) -> dict[str, object]:
    try:
        os.set_blocking(read_fd, False)
        raw = os.read(read_fd, 65536)
    except (BlockingIOError, OSError):
        raw = b""
    finally:
        os.close(read_fd)
    merged: dict[str, object] = {}
    for line in raw.decode(errors="replace").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            merged.update(value)  # the child's setup error, then the launcher's exit
    return merged


def run_result(
    proc: subprocess.Popen[bytes],
    limits: SandboxLimits,
    out: OutputCapture,
    err: OutputCapture,
    status: dict[str, object],
    timed_out: bool,
    output_killed: bool,
    oom_kills: int,
    peak_mb: float | None,
    duration: float,
) -> RunResult:
    cpu = status.get("cpu_s")
    rss_kb = status.get("max_rss_kb")
    cpu_s = float(cpu) if isinstance(cpu, int | float) else None
    rss_mb = float(rss_kb) / 1024 if isinstance(rss_kb, int | float) else None
    if peak_mb is not None:
        rss_mb = max(rss_mb or 0.0, peak_mb)
    sig = status.get("signal")
    code = status.get("exit")
    if isinstance(sig, int):
        exit_code = -sig
    elif isinstance(code, int):
        exit_code = code
    else:
        exit_code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    reason: str | None = None
    if timed_out:
        reason = f"wall time limit of {limits.wall_s:g} s exceeded; all its processes killed"
    elif output_killed:
        reason = (
            f"output limit exceeded (over {limits.output_bytes * HARD_OUTPUT_FACTOR} bytes); "
            "all its processes killed"
        )
    elif "error" in status:
        reason = str(status["error"])
    elif isinstance(sig, int):
        if oom_kills:
            reason = f"memory limit of {limits.memory_mb} MB exceeded ({signal_name(sig)})"
        elif sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and cpu_s is not None and cpu_s >= limits.cpu_s
        ):
            reason = f"cpu time limit of {limits.cpu_s} s exceeded ({signal_name(sig)})"
        elif sig == signal.SIGXFSZ:
            reason = f"file size limit of {limits.file_mb} MB exceeded (SIGXFSZ)"
        else:
            reason = f"killed by {signal_name(sig)}"
    stderr = err.text()
    if oom_kills and reason is None:
        stderr += (
            f"\n[sandbox: {oom_kills} process(es) killed for going over the memory limit "
            f"of {limits.memory_mb} MB]\n"
        )
    return RunResult(
        exit_code=exit_code,
        stdout=out.text(),
        stderr=stderr,
        timed_out=timed_out,
        killed_reason=reason,
        duration_s=round(duration, 3),
        cpu_s=cpu_s,
        max_rss_mb=None if rss_mb is None else round(rss_mb, 1),
    )
