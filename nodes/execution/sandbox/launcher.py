"""The first process of every sandboxed run: it confines itself, forks the agent's code, reports.

Run by path (`python -I -S launcher.py CONFIG`, CONFIG the JSON that Workspace builds), as root
until the last moment when we are root. Self-contained on purpose: stdlib only and no
memento_skills import, since it starts inside the new namespaces and needs nothing installed. It
reports how the child ended on a private pipe because `unshare` cannot relay death by signal.
"""

import ctypes
import json
import os
import platform
import resource
import signal
import socket
import stat
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18

libc = ctypes.CDLL(None, use_errno=True)


def report(status_fd: int | None, **kw: object) -> None:
    if status_fd is None:
        if "error" in kw:
            os.write(2, (f"sandbox: {kw['error']}\n").encode())
        return
    os.write(status_fd, (json.dumps(kw) + "\n").encode())


def _enc(s: str | None) -> bytes | None:
    return s.encode() if s is not None else None


def mount(
    src: str | None, tgt: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    if libc.mount(_enc(src), _enc(tgt), _enc(fstype), flags, _enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src or fstype} on {tgt}: {os.strerror(err)}")


def bind(root: str, src: str, writable: bool) -> None:
    tgt = root + src
    if os.path.isdir(src):
        os.makedirs(tgt, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(tgt), exist_ok=True)
        if not os.path.exists(tgt):
            open(tgt, "a").close()  # an empty file to bind onto
    mount(src, tgt, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
    mount(None, tgt, None, flags)


def build_root(cfg: dict) -> None:
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
    mount(
        "sandbox-tmp",
        root + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={cfg['tmp_mb']}m,mode=1777",
    )
    for path in cfg["ro"]:
        bind(root, path, False)
    bind(root, cfg["workspace"], True)
    dev = root + "/dev"
    os.makedirs(dev)
    mount("sandbox-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in cfg["devices"]:
        if os.path.exists("/dev/" + name):
            open(dev + "/" + name, "a").close()  # an empty file to bind onto
            mount("/dev/" + name, dev + "/" + name, None, MS_BIND)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", dev + "/fd")
    os.makedirs(dev + "/shm")
    mount(
        "sandbox-shm",
        dev + "/shm",
        "tmpfs",
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        "size=64m,mode=1777",
    )
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


def landlock_ruleset(ll: dict) -> int:
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


def landlock_enforce(fd: int) -> None:
    if libc.syscall(ctypes.c_long(446), fd, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(fd)


class SockFprog(ctypes.Structure):
    """struct sock_fprog: a classic BPF program for PR_SET_SECCOMP."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_no_sockets() -> None:
    # No socket() of any family (EACCES: the host's unix sockets, by path or abstract, are as
    # out of reach as the network; socketpair still works), no io_uring, no foreign syscall ABI.
    native = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}.get(platform.machine())
    if native is None:
        raise OSError(0, f"no seccomp filter for {platform.machine()}")
    audit_arch, nr_socket = native
    LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
    ALLOW, DENY = 0x7FFF0000, 0x00050000 | 13
    # fmt: off
    prog = [
        (LD, 0, 0, 4), (JEQ, 1, 0, audit_arch), (RET, 0, 0, DENY),
        (LD, 0, 0, 0), (JGE, 3, 0, 0x40000000), (JEQ, 2, 0, nr_socket), (JEQ, 1, 0, 425),
        (RET, 0, 0, ALLOW),
        (RET, 0, 0, DENY),
    ]
    # fmt: on
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = SockFprog(len(prog), ctypes.addressof(code))
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


def run_child(cfg: dict, status_fd: int | None) -> None:
    """In the forked child: drop to the run's confinement, then exec the agent's argv."""
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
        report(status_fd, error=f"sandbox setup failed: {exc}")
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


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]  # None: a long-lived child whose caller owns its stdio
    if status_fd is not None:
        os.set_inheritable(status_fd, False)
    try:
        for procs in cfg["cgroups"]:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        if cfg["mode"] == "namespaces":
            build_root(cfg)
    except Exception as exc:
        report(status_fd, error=f"sandbox setup failed: {exc}")
        os._exit(125)

    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us to be reaped
    pid = os.fork()
    if pid == 0:
        run_child(cfg, status_fd)

    status = 0
    while True:
        try:
            done, status = os.wait()
        except ChildProcessError:
            break
        if done == pid:
            break
    if cfg["mode"] == "uid":
        # No PID namespace ends the leftovers for us: kill(-1) as the run's own uid reaches
        # exactly them, then reap them all so no zombie keeps counting against RLIMIT_NPROC.
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
        report(status_fd, signal=os.WTERMSIG(status), **info)
        os._exit(128 + os.WTERMSIG(status))
    code = os.WEXITSTATUS(status)
    report(status_fd, exit=code, **info)
    os._exit(code)


if __name__ == "__main__":
    main()
