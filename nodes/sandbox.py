"""A per-run workspace where the agent's untrusted code runs under hard limits.

Everything the model asks to run (shell commands, Python snippets, skill scripts) is untrusted, so
each run goes through a small launcher that stacks every confinement this machine allows:

- **namespaces** (root with util-linux `unshare`, the default here): new mount, PID, IPC, UTS,
  cgroup and network namespaces. The child sees a fresh root built from an allow-list — `/usr`,
  `/etc` and the interpreter's prefixes read-only, the workspace read-write, a private `/tmp`,
  a minimal `/dev` and a `/proc` that shows only its own processes. Nothing of the host's home
  folders, projects or other workspaces is mounted at all, and when the run's first process
  exits the kernel kills every process left in its PID namespace (no daemon outlives a call).
- **uid** (also under the namespaces): the child drops from root to an unprivileged uid of its
  own (one per workspace), with `no_new_privs`, so `RLIMIT_NPROC` binds (it never binds root: a fork bomb would otherwise be
  contained by nothing) and file permissions protect the host's files.
- **cgroups** (v1 `pids` and `memory`, nested under our own cgroup, when writable): a cap on the
  whole process tree, which per-process rlimits cannot give (64 processes x 1 GB each).
- **rlimits** always: CPU seconds, address space, file size, processes, no core files.
- a **disk cap** on the whole workspace: no file may outgrow what is left, the workspace is
  measured every 0.1 s while a call runs (the call is killed when over), and what the call
  wrote past the cap is deleted when it ends. A burst between two measurements can briefly go
  over; the cap is restored before the call returns.
- a new process group, a wall-clock timeout that SIGKILLs it, and output read in chunks with a
  hard cap, so a flood of output can neither exhaust our memory nor stall the run.

The environment is rebuilt from an allow-list: no API key, token or password reaches the child.

The level is named, by `isolation` or $MEMENTO_SANDBOX. "auto" (the default) runs code only with
namespaces; where they are unavailable every run is refused, with a message saying what is
missing and how to opt in, until the operator names a weaker level: "uid" (root without
namespaces) or "rlimits" (a normal user; as root it is refused, since it would run the agent's
code as root). Without a mount namespace the child walks the host's tree, so the launcher adds
what the kernel offers: Landlock (the workspace read-write, system folders and the interpreter
read-only, nothing else; no TCP; abstract unix sockets and signals scoped to the run) and a
seccomp filter refusing every socket(). A detached daemon can still outlive its call at the
"rlimits" level. `isolation` on the workspace says which level is in force, `refused` why code
does not run, and `isolation_notice()` is the start-up line for the operator.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

Isolation = Literal["namespaces", "uid", "rlimits"]
ISOLATION_LEVELS: tuple[str, ...] = ("namespaces", "uid", "rlimits")
ISOLATION_CHOICES: tuple[str, ...] = ("auto", *ISOLATION_LEVELS)
SANDBOX_ENV = "MEMENTO_SANDBOX"
"""Names the isolation level; the weaker ones run only when named here (or in sandbox_level)."""

# One uid per workspace, far from real users and from the usual subuid ranges of rootless
# containers, so concurrent runs neither share an RLIMIT_NPROC count nor read each other's files.
SANDBOX_UID_BASE = 400_000_000
SANDBOX_UID_SPAN = 1_000_000

# Environment variables passed through from the host when set; everything else is dropped.
ENV_PASSTHROUGH = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Host folders mounted read-only into the sandbox's root (when they exist). Symlinks such as
# Debian's merged-/usr `/bin -> usr/bin` are recreated as symlinks.
SYSTEM_RO = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# Past this many bytes of output the run is killed: the tail can no longer be worth the wait.
HARD_OUTPUT_FACTOR = 16
# How often a running call's workspace is measured against its disk cap.
DISK_CHECK_S = 0.1


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as asked (bad workspace, unknown isolation level)."""


class PathEscapeError(ValueError):
    """A path given by the model would reach outside the folder it is confined to."""


@dataclass(frozen=True)
class SandboxLimits:
    """Hard limits for one run; every run of the agent's code gets all of them."""

    wall_s: float = 30
    cpu_s: int = 30
    memory_mb: int = 1024
    output_bytes: int = 64_000
    file_mb: int = 64
    max_processes: int = 64
    disk_mb: int = 128
    """The most the whole workspace may hold on disk (files the run grew past it are deleted)."""
    network: bool = False

    def __post_init__(self) -> None:
        names = ("wall_s", "cpu_s", "memory_mb", "output_bytes", "file_mb", "max_processes")
        for name in (*names, "disk_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(
                    f"SandboxLimits.{name} must be a positive number, got {value!r}; "
                    f"pass e.g. SandboxLimits({name}={getattr(SandboxLimits, name)})"
                )


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


class _Capture:
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


def scrubbed_env(home: Path, tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's whole environment: an allow-list, never the host's secrets."""
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    for name in ENV_PASSTHROUGH:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        USER="sandbox",
        LOGNAME="sandbox",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    for name, value in (extra or {}).items():
        if any(marker in name.upper() for marker in SECRET_MARKERS):
            raise SandboxError(
                f"refusing to pass {name!r} into the sandbox: it looks like a secret"
            )
        env[name] = value
    return env


def _unshare_argv(network: bool) -> list[str]:
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--ipc", "--uts", "--cgroup"]
    if not network:
        argv.append("--net")
    return [*argv, "--"]


LANDLOCK_NET_ABI = 4  # TCP bind/connect rules
LANDLOCK_SCOPE_ABI = 6  # abstract unix sockets and signals scoped to the sandbox


@dataclass(frozen=True)
class IsolationProbe:
    """What this machine can confine, probed once: the strongest level and why not better."""

    strongest: Isolation
    missing: str
    """Why the namespaces level is unavailable ("" when it is available)."""
    landlock_abi: int
    """The kernel's Landlock ABI version (0: none); used by the levels without namespaces."""
    seccomp: bool
    """Whether seccomp filters work (they refuse every socket() without namespaces)."""


def _landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI version
    abi = libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)


def _seccomp_works() -> bool:
    try:
        return "errno" in Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
    except OSError:
        return False


@lru_cache(maxsize=1)
def probe_isolation() -> IsolationProbe:
    """The strongest level that works on this machine and what is missing, probed once."""
    landlock = _landlock_abi() if sys.platform == "linux" else 0
    seccomp = _seccomp_works()
    if os.geteuid() != 0:
        missing = f"namespaces need root, and this process runs as uid {os.geteuid()}"
        return IsolationProbe("rlimits", missing, landlock, seccomp)
    if not shutil.which("unshare"):
        missing = "util-linux `unshare` is not installed"
        return IsolationProbe("uid", missing, landlock, seccomp)
    try:
        probe = subprocess.run(
            [*_unshare_argv(network=False), "true"],
            capture_output=True,
            timeout=10,
            env={"PATH": DEFAULT_PATH},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return IsolationProbe("uid", f"`unshare` cannot run: {exc}", landlock, seccomp)
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip().splitlines()
        detail = why[-1] if why else f"exit code {probe.returncode}"
        missing = f"the kernel refused new namespaces ({detail})"
        return IsolationProbe("uid", missing, landlock, seccomp)
    return IsolationProbe("namespaces", "", landlock, seccomp)


def detect_isolation() -> Isolation:
    """The strongest level that works on this machine, probed once per process."""
    return probe_isolation().strongest


def requested_isolation(value: str | None = None) -> str:
    """The level asked for: `value`, else $MEMENTO_SANDBOX, else "auto"; checked by name."""
    level = (value if value is not None else os.environ.get(SANDBOX_ENV, "")).strip() or "auto"
    if level not in ISOLATION_CHOICES:
        source = "isolation" if value is not None else SANDBOX_ENV
        raise SandboxError(
            f"unknown {source} {level!r}; use 'auto' or one of {', '.join(ISOLATION_LEVELS)}"
        )
    return level


def _check_level(level: str, probe: IsolationProbe) -> None:
    """Refuse a named level this machine cannot give, saying which one it can."""
    if level == "namespaces" and probe.strongest != "namespaces":
        raise SandboxError(
            f"isolation 'namespaces' is unavailable here: {probe.missing}; name the weaker "
            f"level with {SANDBOX_ENV}={probe.strongest} to run code without them"
        )
    if level == "uid" and os.geteuid() != 0:
        raise SandboxError(
            f"isolation 'uid' needs root; use {SANDBOX_ENV}=rlimits (or auto) as a normal user"
        )
    if level == "rlimits" and os.geteuid() == 0:
        # As root, rlimits alone would run the agent's code as root: one `kill -9 -1`
        # ends every process on the machine. Never offer that.
        raise SandboxError(
            "isolation 'rlimits' would run the agent's code as root; use 'auto', "
            "'namespaces' or 'uid' (or run as an unprivileged user)"
        )


def weak_confinement(probe: IsolationProbe | None = None) -> str:
    """What the levels without namespaces still confine on this machine, in words."""
    probe = probe or probe_isolation()
    parts = ["a uid of its own" if os.geteuid() == 0 else "the same uid as this process"]
    if probe.landlock_abi:
        parts.append("Landlock file access (workspace, system folders read-only)")
    if probe.landlock_abi >= LANDLOCK_NET_ABI:
        parts.append("no TCP")
    if probe.landlock_abi >= LANDLOCK_SCOPE_ABI:
        parts.append("no abstract unix sockets or signals outside the run")
    if probe.seccomp:
        parts.append("no sockets at all (seccomp)")
    parts.append("rlimits")
    return ", ".join(parts)


def isolation_notice(requested: str | None = None) -> str | None:
    """The start-up line for the operator when the strong sandbox is not in force, else None."""
    level = requested_isolation(requested)
    probe = probe_isolation()
    if level != "auto":
        _check_level(level, probe)
    if level == "namespaces" or (level == "auto" and probe.strongest == "namespaces"):
        return None
    if level == "auto":
        return (
            f"sandbox: the strong isolation (namespaces) is unavailable: {probe.missing}; "
            f"model-written code will be refused. To run it at the weaker level "
            f"{probe.strongest!r} ({weak_confinement(probe)}), opt in with "
            f"{SANDBOX_ENV}={probe.strongest} (or the context field sandbox_level)"
        )
    return (
        f"sandbox: running model-written code at the weaker level {level!r} as opted in "
        f"({weak_confinement(probe)}); no mount, PID or network namespaces"
    )


def _own_cgroup(controller: str) -> Path | None:
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


class _Cgroups:
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
            parent = _own_cgroup(controller)
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


# The launcher runs as the first process of every run (as root until the last moment when we
# are root). It is a Python script passed with -c so it needs nothing installed; it reports how
# the child ended on a private pipe because `unshare` cannot relay death by signal.
_LAUNCHER = r"""
import ctypes, json, os, platform, resource, signal, socket, stat, struct, sys
cfg = json.loads(sys.argv[1])
status_fd = cfg["status_fd"]  # None: a long-lived child whose caller owns its stdio
if status_fd is not None:
    os.set_inheritable(status_fd, False)
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18

def report(**kw):
    if status_fd is None:
        if "error" in kw:
            os.write(2, (f"sandbox: {kw['error']}\n").encode())
        return
    os.write(status_fd, (json.dumps(kw) + "\n").encode())

def mount(src, tgt, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(src), enc(tgt), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src or fstype} on {tgt}: {os.strerror(err)}")

def bind(root, src, writable):
    tgt = root + src
    if os.path.isdir(src):
        os.makedirs(tgt, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(tgt), exist_ok=True)
        if not os.path.exists(tgt):
            open(tgt, "a").close()
    mount(src, tgt, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
    mount(None, tgt, None, flags)

def build_root(cfg):
    root = cfg["newroot"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("sandbox", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    for name in cfg["system_ro"]:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), root + host)
        elif os.path.isdir(host):
            bind(root, host, False)
    os.makedirs(root + "/tmp", exist_ok=True)
    mount("sandbox-tmp", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['tmp_mb']}m,mode=1777")
    for path in cfg["ro"]:
        bind(root, path, False)
    bind(root, cfg["workspace"], True)
    dev = root + "/dev"
    os.makedirs(dev)
    mount("sandbox-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in cfg["devices"]:
        if os.path.exists("/dev/" + name):
            open(dev + "/" + name, "a").close()
            mount("/dev/" + name, dev + "/" + name, None, MS_BIND)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", dev + "/fd")
    os.makedirs(dev + "/shm")
    mount("sandbox-shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          "size=64m,mode=1777")
    os.makedirs(root + "/proc")
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    nr = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
    if nr is not None and libc.syscall(nr, b".", b".") == 0:
        libc.umount2(b".", 2)  # MNT_DETACH: the host's tree is gone from this namespace
    else:
        os.chroot(".")
    os.chdir("/")
    socket.sethostname("sandbox")

def landlock_ruleset(ll):
    # The workspace read-write, the allow-listed folders read-only, no TCP, abstract unix
    # sockets and signals scoped to this run: each as far as the kernel's Landlock ABI goes.
    abi = ll["abi"]
    fs = (1 << 13) - 1
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net = 3 if abi >= 4 and not ll["network"] else 0
    scoped = 3 if abi >= 6 else 0
    attr, size = struct.pack("QQQ", fs, net, scoped), 8 if abi < 4 else 16 if abi < 6 else 24
    fd = libc.syscall(ctypes.c_long(444), attr, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    read = 1 | 4 | 8  # EXECUTE, READ_FILE, READ_DIR
    file_rights = 1 | 2 | 4 | (1 << 14) | (1 << 15)  # the rights a rule on a file may hold
    rules = [(p, read) for p in ll["read"]] + [(p, fs) for p in ll["write"]]
    rules += [(p, 2 | 4) for p in ll["devices"]]
    for path, access in rules:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(os.fstat(pfd).st_mode):
            access &= file_rights
        rule = struct.pack("=Qi", access & fs, pfd)
        ok = libc.syscall(ctypes.c_long(445), fd, ctypes.c_int(1), rule, ctypes.c_uint32(0)) == 0
        err = ctypes.get_errno()
        os.close(pfd)
        if not ok:
            raise OSError(err, f"landlock_add_rule {path}: {os.strerror(err)}")
    return fd

def landlock_enforce(fd):
    if libc.syscall(ctypes.c_long(446), fd, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(fd)

def seccomp_no_sockets():
    # No socket() of any family (EACCES: the host's unix sockets, by path or abstract, are as
    # out of reach as the network; socketpair still works), no io_uring, no foreign syscall ABI.
    native = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}.get(platform.machine())
    if native is None:
        raise OSError(0, f"no seccomp filter for {platform.machine()}")
    audit_arch, nr_socket = native
    LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
    ALLOW, DENY = 0x7FFF0000, 0x00050000 | 13
    prog = [
        (LD, 0, 0, 4), (JEQ, 1, 0, audit_arch), (RET, 0, 0, DENY),
        (LD, 0, 0, 0), (JGE, 3, 0, 0x40000000), (JEQ, 2, 0, nr_socket), (JEQ, 1, 0, 425),
        (RET, 0, 0, ALLOW),
        (RET, 0, 0, DENY),
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = Prog(len(prog), ctypes.addressof(code))
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter refused")

try:
    for procs in cfg["cgroups"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if cfg["mode"] == "namespaces":
        build_root(cfg)
except Exception as exc:
    report(error=f"sandbox setup failed: {exc}")
    os._exit(125)

libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us to be reaped
pid = os.fork()
if pid == 0:
    try:
        ruleset = landlock_ruleset(cfg["landlock"]) if cfg["landlock"] else None
        for name, soft, hard in cfg["rlimits"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        if cfg["uid"] is not None:
            for cap in range(64):  # empty the bounding set: no way back to any capability
                libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: setuid binaries cannot elevate
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if ruleset is not None:
            landlock_enforce(ruleset)
        if cfg["seccomp"]:
            seccomp_no_sockets()
    except OSError as exc:  # fail closed: a confinement this level promises could not be set up
        report(error=f"sandbox setup failed: {exc}")
        os._exit(125)
    try:
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; exec would inherit
            signal.signal(sig, signal.SIG_DFL)
        os.umask(0o022)
        os.chdir(cfg["cwd"])
        os.execvp(cfg["argv"][0], cfg["argv"])
    except OSError as exc:
        os.write(2, f"sandbox: cannot run {cfg['argv'][0]!r}: {exc.strerror}\n".encode())
        os._exit(127)
    os._exit(127)

status = 0
while True:
    try:
        done, status = os.wait()
    except ChildProcessError:
        break
    if done == pid:
        break
if cfg["mode"] == "uid":
    # No PID namespace ends the leftovers for us: kill(-1) as the run's own uid reaches exactly
    # them, then reap them all so no zombie keeps counting against RLIMIT_NPROC.
    if os.fork() == 0:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        for _ in range(100):
            try:
                os.kill(-1, 9)
            except ProcessLookupError:
                break
        os._exit(0)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
else:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
info = dict(cpu_s=usage.ru_utime + usage.ru_stime, max_rss_kb=usage.ru_maxrss)
if os.WIFSIGNALED(status):
    report(signal=os.WTERMSIG(status), **info)
    os._exit(128 + os.WTERMSIG(status))
code = os.WEXITSTATUS(status)
report(exit=code, **info)
os._exit(code)
"""


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _workspace_uid(root: Path) -> int:
    uid = SANDBOX_UID_BASE + zlib.crc32(str(root).encode()) % SANDBOX_UID_SPAN
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def _check_sandbox_uid(uid: int) -> None:
    """The sandbox's uid must belong to nobody else: leftovers are swept with kill(-1) as it."""
    if isinstance(uid, bool) or not isinstance(uid, int) or uid <= 0:
        raise SandboxError(f"sandbox uid must be a positive int, got {uid!r}")
    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        return
    raise SandboxError(
        f"uid {uid} belongs to the user {owner!r}; the sandbox needs a uid no account uses "
        f"(leave uid unset to get one from {SANDBOX_UID_BASE} up)"
    )


def _others_can_run(program: str) -> bool:
    """Whether a uid of no group could execute `program` (every folder on its way included)."""
    path = Path(program).resolve()
    try:
        folders_ok = all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
        return folders_ok and bool(path.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


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
        _check_level(level, probe)
        if uid is not None:
            _check_sandbox_uid(uid)
        self.root = Path(root).expanduser().resolve()
        if self.root == Path("/") or self.root == Path.home().resolve():
            raise SandboxError(f"refusing to use {self.root} as a workspace: give a fresh folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(exist_ok=True)
        self.isolation: Isolation = level  # type: ignore[assignment]
        self.uid: int | None = None
        if self.isolation != "rlimits":
            self.uid = uid if uid is not None else _workspace_uid(self.root)
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
        if self.uid is None or self.isolation == "namespaces" or _others_can_run(sys.executable):
            return sys.executable
        system = shutil.which("python3", path=DEFAULT_PATH)
        return system if system and _others_can_run(system) else sys.executable

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
        cgroups = _Cgroups(limits) if os.geteuid() == 0 else None
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
        status = self._read_status(read_fd)
        oom = cgroups.oom_kills() if cgroups else 0
        peak = cgroups.peak_mb() if cgroups else None
        if cgroups:
            cgroups.remove()
        trimmed = _trim_to(self.root, ceiling, since)
        result = self._result(
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
        prefix = _unshare_argv(limits.network) if self.isolation == "namespaces" else []
        return [*prefix, sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config)]

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
        cgroups: _Cgroups | None,
        disk_ceiling: int,
    ) -> tuple[_Capture, _Capture, bool, bool, bool]:
        """Read both streams with caps until they close or a limit is hit."""
        assert proc.stdout is not None and proc.stderr is not None
        captures = {
            proc.stdout.fileno(): _Capture(limits.output_bytes),
            proc.stderr.fileno(): _Capture(limits.output_bytes),
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

    def _sweep(self, cgroups: _Cgroups | None, spare: int | None = None) -> None:
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

    def _kill(self, proc: subprocess.Popen[bytes], cgroups: _Cgroups | None) -> None:
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

    @staticmethod
    def _read_status(read_fd: int) -> dict[str, object]:
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

    @staticmethod
    def _result(
        proc: subprocess.Popen[bytes],
        limits: SandboxLimits,
        out: _Capture,
        err: _Capture,
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
                reason = f"memory limit of {limits.memory_mb} MB exceeded ({_signal_name(sig)})"
            elif sig == signal.SIGXCPU or (
                sig == signal.SIGKILL and cpu_s is not None and cpu_s >= limits.cpu_s
            ):
                reason = f"cpu time limit of {limits.cpu_s} s exceeded ({_signal_name(sig)})"
            elif sig == signal.SIGXFSZ:
                reason = f"file size limit of {limits.file_mb} MB exceeded (SIGXFSZ)"
            else:
                reason = f"killed by {_signal_name(sig)}"
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


def reachable_dir(path: Path | str) -> Path:
    """`path` created as a folder others may traverse but not list (0711), missing parents too.

    The levels without a mount namespace reach a workspace through the host's tree, so every
    folder above one must be traversable by the sandbox's uid; folders the sandbox must never
    enter (a run dir, the regression cases) are 0700 instead.
    """
    folder = Path(path)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        with contextlib.suppress(OSError):
            created.chmod(0o711)
    return folder


def disk_usage(root: Path) -> int:
    """Bytes the folder's files take on disk (blocks, each inode once), links not followed."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _trim_to(root: Path, ceiling: int, since: float) -> list[tuple[str, int]]:
    """Delete the files changed since `since`, largest first, until the folder fits `ceiling`.

    Only files the run wrote are candidates (their ctime, which a child cannot set back), so
    what the host put there (attachments) stays. Runs after every process of the run is gone.
    """
    used = disk_usage(root)
    if used <= ceiling:
        return []
    recent: list[tuple[int, Path]] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_ctime >= since:
                    recent.append((st.st_blocks * 512, path))
    removed = []
    for size, path in sorted(recent, key=lambda item: -item[0]):
        if used <= ceiling:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            used -= size
            removed.append((str(path.relative_to(root)), size))
    return removed


def confine(base: Path, relative: str, *, what: str) -> Path:
    """`relative` resolved inside `base` (symlinks followed), or PathEscapeError saying why not."""
    if not isinstance(relative, str) or not relative.strip():
        raise PathEscapeError(f"empty path: give a path relative to {what}, e.g. 'notes.txt'")
    if "\x00" in relative:
        raise PathEscapeError("the path contains a NUL byte")
    candidate = Path(relative)
    if candidate.is_absolute() or relative.startswith("~"):
        raise PathEscapeError(
            f"{relative!r} is absolute: give a path relative to {what}, e.g. 'data/out.txt'"
        )
    root = base.resolve()
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        why = "a symlink that points" if ".." not in candidate.parts else "'..' that leads"
        raise PathEscapeError(f"{relative!r} goes outside {what} (through {why} outside)")
    return resolved
