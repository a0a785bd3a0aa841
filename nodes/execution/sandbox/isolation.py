"""The isolation levels: what this machine can confine, the level asked for, the operator's notice."""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from .environment import DEFAULT_PATH
from .limits import SandboxError

Isolation = Literal["namespaces", "uid", "rlimits"]
ISOLATION_LEVELS: tuple[str, ...] = ("namespaces", "uid", "rlimits")
ISOLATION_CHOICES: tuple[str, ...] = ("auto", *ISOLATION_LEVELS)
SANDBOX_ENV = "MEMENTO_SANDBOX"
"""Names the isolation level; the weaker ones run only when named here (or in sandbox_level)."""

# One uid per workspace, far from real users and from the usual subuid ranges of rootless
# containers, so concurrent runs neither share an RLIMIT_NPROC count nor read each other's files.
SANDBOX_UID_BASE = 400_000_000
SANDBOX_UID_SPAN = 1_000_000


def unshare_argv(network: bool) -> list[str]:
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
            [*unshare_argv(network=False), "true"],
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


def check_level(level: str, probe: IsolationProbe) -> None:
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
        check_level(level, probe)
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


def workspace_uid(root: Path) -> int:
    uid = SANDBOX_UID_BASE + zlib.crc32(str(root).encode()) % SANDBOX_UID_SPAN
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def check_sandbox_uid(uid: int) -> None:
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
