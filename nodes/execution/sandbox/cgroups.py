"""Per-run cgroup v1 caps on the whole process tree (pids, memory), which rlimits cannot give."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

from .limits import SandboxLimits


def own_cgroup(controller: str) -> Path | None:
    """Our own cgroup v1 folder for a controller, if it is mounted and writable."""
    base = Path("/sys/fs/cgroup") / controller
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, rel = line.split(":", 2)
            if controller in controllers.split(","):
                folder = base / rel.lstrip("/")
                return folder if os.access(folder, os.W_OK) else None
    except OSError:
        return None
    return None


class RunCgroups:
    """Per-run v1 `pids` and `memory` cgroups nested under ours: caps on the whole tree."""

    def __init__(self, limits: SandboxLimits):
        self.dirs: dict[str, Path] = {}
        if os.geteuid() != 0:
            return
        name = f"memento-sandbox-{uuid.uuid4().hex[:12]}"
        settings = {
            "pids": [("pids.max", str(limits.max_processes))],
            "memory": [
                ("memory.limit_in_bytes", str(limits.memory_mb * 2**20)),
                ("memory.memsw.limit_in_bytes", str(limits.memory_mb * 2**20)),
            ],
        }
        for controller, files in settings.items():
            parent = own_cgroup(controller)
            if parent is None:
                continue
            folder = parent / name
            try:
                folder.mkdir()
            except OSError:
                continue
            self.dirs[controller] = folder
            for fname, value in files:
                with contextlib.suppress(OSError):  # memsw is absent without swap accounting
                    (folder / fname).write_text(value)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_kills(self) -> int:
        folder = self.dirs.get("memory")
        if folder is None:
            return 0
        try:
            for line in (folder / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
            return int((folder / "memory.failcnt").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def peak_mb(self) -> float | None:
        folder = self.dirs.get("memory")
        try:
            if folder is not None:
                return int((folder / "memory.max_usage_in_bytes").read_text()) / 2**20
        except (OSError, ValueError):
            pass
        return None

    def kill_all(self, spare: int | None = None) -> None:
        for folder in self.dirs.values():
            for _ in range(50):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    break
                pids = [p for p in pids if p != spare]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for folder in self.dirs.values():
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
