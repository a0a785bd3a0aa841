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

The package is stdlib only and imports its modules relatively (no memento_skills import), so it
also runs loaded by path under a bare interpreter; `launcher.py` is the program each run starts
with, run by path.
"""

from .environment import DEFAULT_PATH, ENV_PASSTHROUGH, SECRET_MARKERS, scrubbed_env
from .isolation import (
    ISOLATION_CHOICES,
    ISOLATION_LEVELS,
    LANDLOCK_NET_ABI,
    LANDLOCK_SCOPE_ABI,
    SANDBOX_ENV,
    SANDBOX_UID_BASE,
    SANDBOX_UID_SPAN,
    Isolation,
    IsolationProbe,
    detect_isolation,
    isolation_notice,
    probe_isolation,
    requested_isolation,
    weak_confinement,
)
from .limits import PathEscapeError, SandboxError, SandboxLimits
from .paths import confine, disk_usage, reachable_dir
from .results import HARD_OUTPUT_FACTOR, RunResult
from .workspace import DEVICES, DISK_CHECK_S, SYSTEM_RO, Workspace

__all__ = [
    "DEFAULT_PATH",
    "DEVICES",
    "DISK_CHECK_S",
    "ENV_PASSTHROUGH",
    "HARD_OUTPUT_FACTOR",
    "ISOLATION_CHOICES",
    "ISOLATION_LEVELS",
    "LANDLOCK_NET_ABI",
    "LANDLOCK_SCOPE_ABI",
    "SANDBOX_ENV",
    "SANDBOX_UID_BASE",
    "SANDBOX_UID_SPAN",
    "SECRET_MARKERS",
    "SYSTEM_RO",
    "Isolation",
    "IsolationProbe",
    "PathEscapeError",
    "RunResult",
    "SandboxError",
    "SandboxLimits",
    "Workspace",
    "confine",
    "detect_isolation",
    "disk_usage",
    "isolation_notice",
    "probe_isolation",
    "reachable_dir",
    "requested_isolation",
    "scrubbed_env",
    "weak_confinement",
]
