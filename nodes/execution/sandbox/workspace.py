"""One run's folder (Workspace) and how the agent's code is launched, watched and ended in it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .cgroups import RunCgroups
from .environment import DEFAULT_PATH, scrubbed_env
from .isolation import (
    LANDLOCK_NET_ABI,
    SANDBOX_ENV,
    Isolation,
    check_level,
    check_sandbox_uid,
    probe_isolation,
    requested_isolation,
    unshare_argv,
    workspace_uid,
)
from .limits import PathEscapeError, SandboxError, SandboxLimits
from .paths import confine, disk_usage, others_can_run, trim_to
from .results import HARD_OUTPUT_FACTOR, OutputCapture, RunResult, read_status, run_result

# Host folders mounted read-only into the sandbox's root (when they exist). Symlinks such as
# Debian's merged-/usr `/bin -> usr/bin` are recreated as symlinks.
SYSTEM_RO = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# How often a running call's workspace is measured against its disk cap.
DISK_CHECK_S = 0.1

# The launcher runs as the first process of every run (as root until the last moment when we
# are root). It is a stdlib-only script run by path with our interpreter, so it needs nothing
# installed; it reports how the child ended on a private pipe because `unshare` cannot relay
# death by signal.
LAUNCHER = str(Path(__file__).resolve().with_name("launcher.py"))


def _newroot_mountpoint() -> str:
    """An empty root-owned folder the launcher mounts the sandbox's tmpfs root on (privately)."""
    path = Path(tempfile.gettempdir()) / "memento-sandbox-root"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.geteuid():
        raise SandboxError(f"{path} is not a folder owned by us; remove it and retry")
    return str(path)


class Workspace:
    """One run's folder, and the only place the agent's code may write.

    `isolation` names the level: "auto" (the default, from $MEMENTO_SANDBOX when that is set)
    runs code only with the strong level, namespaces; where they are unavailable every run is
    refused (`refused` says why and how to opt in) until the operator names a weaker level
    from ISOLATION_LEVELS. `ro_paths` are extra host folders the child may read (the skill's
    folder is added per run by the tools).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        isolation: str | None = None,
        uid: int | None = None,
        ro_paths: Sequence[Path | str] = (),
    ):
        requested = requested_isolation(isolation)
        probe = probe_isolation()
        level = probe.strongest if requested == "auto" else requested
        self.refused: str | None = None
        """Why code is refused here (the strong level is missing and no weaker one was named)."""
        if requested == "auto" and level != "namespaces":
            self.refused = (
                f"running code is refused: the strong sandbox (namespaces) is unavailable here "
                f"({probe.missing}); the operator can opt in to the weaker level {level!r} with "
                f"{SANDBOX_ENV}={level} (or the context field sandbox_level). Use the file "
                "tools, or work the answer out without running code"
            )
        check_level(level, probe)
        if uid is not None:
            check_sandbox_uid(uid)
        self.root = Path(root).expanduser().resolve()
        if self.root == Path("/") or self.root == Path.home().resolve():
            raise SandboxError(f"refusing to use {self.root} as a workspace: give a fresh folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(exist_ok=True)
        self.isolation: Isolation = level  # type: ignore[assignment]
        self.uid: int | None = None
        if self.isolation != "rlimits":
            self.uid = uid if uid is not None else workspace_uid(self.root)
        if self.isolation == "uid" and self.refused is None:
            # Without a mount namespace the child reaches the workspace through the host's tree.
            for folder in self.root.parents:
                if not folder.stat().st_mode & 0o001:
                    raise SandboxError(
                        f"the sandbox uid cannot reach {self.root}: {folder} is not "
                        "traversable by others (chmod o+x it, or put the workspace elsewhere)"
                    )
        self.ro_paths = tuple(Path(p).resolve() for p in ro_paths)
        self._counter = itertools.count()
        self.root.chmod(0o700)
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in (*dirnames, *filenames):
                self.adopt(Path(dirpath) / name)
        self.adopt(self.root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, isolation={self.isolation!r}, uid={self.uid})"

    def network_note(self, limits: SandboxLimits | None = None) -> str:
        """What the network looks like from a run here, in words fit for a tool description."""
        limits = limits or SandboxLimits()
        probe = probe_isolation()
        if limits.network:
            return "the network is reachable"
        if self.isolation == "namespaces":
            return "no network"
        if probe.seccomp:
            return "no network"
        if probe.landlock_abi >= LANDLOCK_NET_ABI:
            return "no TCP; UDP and unix sockets reach the host"
        return "the network is NOT cut: this machine offers no way to"

    def adopt(self, path: Path) -> None:
        """Give a file the host wrote to the sandbox's uid so the child can change it.

        Never through a symlink, and never a hard-linked file: the child could have linked a
        host file into the workspace (where fs.protected_hardlinks is off) to have us hand it over.
        """
        if self.uid is None:
            return
        st = os.lstat(path)
        if st.st_uid == self.uid or (not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1):
            return
        os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def resolve(self, relative: str) -> Path:
        """A model-given path inside the workspace, or PathEscapeError saying why not."""
        return confine(self.root, relative, what="the workspace")

    def env(self) -> dict[str, str]:
        return scrubbed_env(self.root, self.tmp)

    def run_shell(self, command: str, limits: SandboxLimits | None = None) -> RunResult:
        shell = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
        return self.run([shell, "-c", command], limits)

    @property
    def python(self) -> str:
        """The interpreter the agent's Python runs with: ours, when the sandbox can reach it.

        The namespaces level mounts our interpreter's prefixes. Without them the sandbox's uid
        walks the host's tree, where ours may sit in a private folder (pyenv under /root); then
        the system's python3 runs the code instead (without our packages).
        """
        if self.uid is None or self.isolation == "namespaces" or others_can_run(sys.executable):
            return sys.executable
        system = shutil.which("python3", path=DEFAULT_PATH)
        return system if system and others_can_run(system) else sys.executable

    def run_python(self, code: str, limits: SandboxLimits | None = None) -> RunResult:
        script = self.tmp / f"snippet-{os.getpid()}-{next(self._counter)}.py"
        script.write_text(code, encoding="utf-8")
        self.adopt(script)
        return self.run([self.python, "-I", str(script)], limits)

    def run(
        self,
        argv: Sequence[str],
        limits: SandboxLimits | None = None,
        *,
        cwd: Path | str | None = None,
        ro_paths: Sequence[Path | str] = (),
    ) -> RunResult:
        """Run argv confined to this workspace; never raises for what the child does."""
        limits = limits or SandboxLimits()
        if self.refused:
            raise SandboxError(self.refused)
        if not argv:
            raise SandboxError("nothing to run: argv is empty")
        workdir = self.root if cwd is None else self._confined_cwd(cwd)
        ceiling, _ = self._disk_caps(limits)
        cgroups = RunCgroups(limits) if os.geteuid() == 0 else None
        read_fd, write_fd = os.pipe()
        launch = self._launch_argv(
            argv, limits, workdir, ro_paths, write_fd, cgroups.procs_files if cgroups else []
        )
        start = time.monotonic()
        since = time.time() - 1.0  # ctime of anything the run writes (a child cannot set it)
        try:
            proc = subprocess.Popen(
                launch,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env(),
                cwd=str(self.root),
                pass_fds=(write_fd,),
                process_group=0,
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            if cgroups:
                cgroups.remove()
            raise SandboxError(f"cannot start the sandbox launcher: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.close(write_fd)
        try:
            out, err, timed_out, output_killed, disk_full = self._pump(
                proc, limits, start, cgroups, ceiling
            )
        finally:
            self._kill(proc, cgroups)
        duration = time.monotonic() - start
        status = read_status(read_fd)
        oom = cgroups.oom_kills() if cgroups else 0
        peak = cgroups.peak_mb() if cgroups else None
        if cgroups:
            cgroups.remove()
        trimmed = trim_to(self.root, ceiling, since)
        result = run_result(
            proc, limits, out, err, status, timed_out, output_killed, oom, peak, duration
        )
        if not disk_full and not trimmed:
            return result
        gone = ", ".join(f"{name} ({size / 2**20:.1f} MB)" for name, size in trimmed)
        note = (
            f"\n[sandbox: the workspace went over its disk cap of {limits.disk_mb} MB; "
            f"deleted what this run wrote past it: {gone or 'nothing'}]\n"
        )
        reason = result.killed_reason
        if not (timed_out or output_killed):
            reason = f"workspace disk cap of {limits.disk_mb} MB exceeded" + (
                "; all its processes killed" if disk_full else ""
            )
        return replace(result, stderr=result.stderr + note, killed_reason=reason)

    def _landlock(self, ro: Sequence[str], limits: SandboxLimits) -> dict[str, object] | None:
        """The launcher's Landlock rules for the levels without a mount namespace."""
        abi = probe_isolation().landlock_abi
        if self.isolation == "namespaces" or abi <= 0:
            return None
        system = [f"/{name}" for name in SYSTEM_RO if Path(f"/{name}").exists()]
        return {
            "abi": abi,
            "network": limits.network,
            "read": sorted({*system, *ro, "/proc"}),
            "write": [str(self.root)],
            "devices": [f"/dev/{name}" for name in DEVICES],
        }

    def serve_argv(
        self,
        argv: Sequence[str],
        limits: SandboxLimits | None = None,
        *,
        cwd: Path | str | None = None,
        ro_paths: Sequence[Path | str] = (),
    ) -> list[str]:
        """The command that runs a long-lived argv (a stdio server) confined like `run` does.

        The caller starts it (with `env()` as its whole environment) and owns its stdin and
        stdout; the limits apply except the wall clock and the output cap, which are the
        caller's to enforce. `cwd` may also be one of the read-only folders (the skill's).
        """
        limits = limits or SandboxLimits()
        if self.refused:
            raise SandboxError(self.refused)
        if not argv:
            raise SandboxError("nothing to run: argv is empty")
        extra = [Path(p).resolve() for p in (*self.ro_paths, *ro_paths)]
        if cwd is None:
            workdir = self.root
        elif any(Path(cwd).resolve().is_relative_to(p) for p in extra):
            workdir = Path(cwd).resolve()
        else:
            workdir = self._confined_cwd(cwd)
        return self._launch_argv(argv, limits, workdir, ro_paths, None, [])

    def _launch_argv(
        self,
        argv: Sequence[str],
        limits: SandboxLimits,
        workdir: Path,
        ro_paths: Sequence[Path | str],
        status_fd: int | None,
        cgroup_procs: list[str],
    ) -> list[str]:
        ro = [str(Path(sys.prefix).resolve()), str(Path(sys.base_prefix).resolve())]
        ro += [str(Path(p).resolve()) for p in (*self.ro_paths, *ro_paths)]
        big = lambda mb: int(mb * 2**20)  # noqa: E731
        _, file_cap = self._disk_caps(limits)
        cpu = int(limits.cpu_s)
        rlimits = [
            ("RLIMIT_CPU", cpu, cpu + 1),
            ("RLIMIT_AS", big(limits.memory_mb), big(limits.memory_mb)),
            ("RLIMIT_FSIZE", file_cap, file_cap),
            ("RLIMIT_NPROC", limits.max_processes, limits.max_processes),
            ("RLIMIT_CORE", 0, 0),
        ]
        config = {
            "mode": self.isolation,
            "status_fd": status_fd,
            "cgroups": cgroup_procs,
            "newroot": _newroot_mountpoint() if self.isolation == "namespaces" else None,
            "system_ro": SYSTEM_RO,
            "devices": DEVICES,
            "ro": sorted(set(ro)),
            "workspace": str(self.root),
            "tmp_mb": limits.memory_mb,
            "rlimits": rlimits,
            "uid": self.uid,
            "gid": self.uid,
            "cwd": str(workdir),
            "argv": list(argv),
            "landlock": self._landlock(ro, limits),
            "seccomp": self.isolation != "namespaces"
            and probe_isolation().seccomp
            and not limits.network,
        }
        prefix = unshare_argv(limits.network) if self.isolation == "namespaces" else []
        return [*prefix, sys.executable, "-I", "-S", LAUNCHER, json.dumps(config)]

    def _disk_caps(self, limits: SandboxLimits) -> tuple[int, int]:
        """The workspace's byte ceiling for a run, and the most one file may take of it.

        A workspace that starts over the cap (large attachments) may not grow; one file can
        never take more than is left, and the pump watches the total while the run goes on.
        """
        used = disk_usage(self.root)
        ceiling = max(int(limits.disk_mb * 2**20), used)
        return ceiling, min(int(limits.file_mb * 2**20), ceiling - used)

    def _confined_cwd(self, cwd: Path | str) -> Path:
        path = Path(cwd)
        if path.is_absolute():
            path = path.resolve()
            if not path.is_relative_to(self.root):
                raise PathEscapeError(f"cwd {cwd} is outside the workspace {self.root}")
            return path
        return self.resolve(str(cwd))

    def _pump(
        self,
        proc: subprocess.Popen[bytes],
        limits: SandboxLimits,
        start: float,
        cgroups: RunCgroups | None,
        disk_ceiling: int,
    ) -> tuple[OutputCapture, OutputCapture, bool, bool, bool]:
        """Read both streams with caps until they close or a limit is hit."""
        assert proc.stdout is not None and proc.stderr is not None
        captures = {
            proc.stdout.fileno(): OutputCapture(limits.output_bytes),
            proc.stderr.fileno(): OutputCapture(limits.output_bytes),
        }
        hard_cap = limits.output_bytes * HARD_OUTPUT_FACTOR
        deadline = start + limits.wall_s
        exited_at: float | None = None
        timed_out = output_killed = disk_full = False
        disk_checked, disk_every = start, DISK_CHECK_S
        with selectors.DefaultSelector() as sel:
            for fd in captures:
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    break
                if exited_at is None and proc.poll() is not None:
                    # The launcher is gone; anything still holding the pipes is a leftover.
                    exited_at = now
                    self._sweep(cgroups)
                if exited_at is not None and now - exited_at > 1.0:
                    break
                for key, _ in sel.select(timeout=min(deadline - now, 0.2)):
                    fd = key.fd
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(fd)
                        continue
                    captures[fd].add(data)
                if sum(c.total for c in captures.values()) > hard_cap:
                    output_killed = True
                    break
                if now - disk_checked >= disk_every:
                    used = disk_usage(self.root)
                    disk_checked = time.monotonic()
                    # a workspace of many files is measured less often: at most 10% of a core
                    disk_every = max(DISK_CHECK_S, 10 * (disk_checked - now))
                    if used > disk_ceiling:
                        disk_full = True
                        break
        if not timed_out and not output_killed and not disk_full:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        return (
            captures[proc.stdout.fileno()],
            captures[proc.stderr.fileno()],
            timed_out,
            output_killed,
            disk_full,
        )

    def _sweep(self, cgroups: RunCgroups | None, spare: int | None = None) -> None:
        """Kill whatever the run left behind (the PID namespace already did, when there is one).

        `spare` is the launcher, kept alive (it is root, and the uid sweep cannot reach it) so
        that it reaps what is killed.
        """
        if cgroups:
            cgroups.kill_all(spare)
        if self.isolation == "uid" and self.uid is not None and self.uid > 0:
            # kill(-1) as the workspace's own uid reaches exactly that uid's processes.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["kill", "-KILL", "-1"],
                    user=self.uid,
                    group=self.uid,
                    extra_groups=[],
                    env={"PATH": DEFAULT_PATH},
                    capture_output=True,
                    timeout=5,
                )

    def _kill(self, proc: subprocess.Popen[bytes], cgroups: RunCgroups | None) -> None:
        if self.isolation == "uid" and proc.poll() is None:
            # Kill the tree first and let the (subreaper) launcher reap it, so no zombie is left
            # counting against the uid's process limit.
            self._sweep(cgroups, spare=proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        if proc.poll() is None:
            # Only while the leader is unreaped: after that its pid, and so the group id, may
            # already belong to someone else.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._sweep(cgroups)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
