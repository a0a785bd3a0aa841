"""The sandbox against real subprocesses: every limit and every escape route, checked by effect."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from memento_skills.nodes.execution.sandbox import (
    PathEscapeError,
    SandboxError,
    SandboxLimits,
    Workspace,
    confine,
    detect_isolation,
    disk_usage,
    probe_isolation,
    scrubbed_env,
)
from memento_skills.nodes.execution.tools import make_tools
from memento_skills.stores.cases import Case, CaseStore

FAST = SandboxLimits(
    wall_s=3, cpu_s=2, memory_mb=256, output_bytes=4000, file_mb=8, max_processes=16
)
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the uid and namespace levels need root")
needs_ns = pytest.mark.skipif(
    detect_isolation() != "namespaces", reason="mount/PID/net namespaces are not available here"
)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir(mode=0o700)
    secret = folder / "secret.txt"
    secret.write_text("top-secret-value-123\n")
    secret.chmod(0o600)
    return folder


def alive(uid: int | None) -> list[int]:
    """Host processes (zombies included) that still belong to the sandbox's uid."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


# ------------------------------------------------------------------ configuration and errors


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="wall_s must be a positive number"):
        SandboxLimits(wall_s=0)
    with pytest.raises(ValueError, match="max_processes"):
        SandboxLimits(max_processes=-1)


def test_unknown_isolation_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="unknown isolation 'docker'"):
        Workspace(tmp_path / "w", isolation="docker")


@needs_root
def test_rlimits_only_is_refused_as_root(tmp_path: Path) -> None:
    # It would run the agent's code as root, where one `kill -9 -1` ends every process.
    with pytest.raises(SandboxError, match="as root"):
        Workspace(tmp_path / "w", isolation="rlimits")


@needs_root
@pytest.mark.parametrize("uid", [0, 65534])
def test_a_uid_someone_uses_is_refused(tmp_path: Path, uid: int) -> None:
    with pytest.raises(SandboxError, match="uid"):
        Workspace(tmp_path / "w", uid=uid)


def test_secret_looking_extra_env_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="looks like a secret"):
        scrubbed_env(tmp_path, tmp_path, {"GITHUB_TOKEN": "x"})


def test_confine_rules(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to("/etc")
    assert confine(tmp_path, "a/../b.txt", what="x") == tmp_path.resolve() / "b.txt"
    for bad, why in [
        ("/etc/passwd", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("link/passwd", "symlink"),
        ("~/.bashrc", "absolute"),
        ("", "empty"),
    ]:
        with pytest.raises(PathEscapeError, match=why):
            confine(tmp_path, bad, what="x")


# ------------------------------------------------------------------ ordinary runs


def test_shell_runs_in_the_workspace(ws: Workspace) -> None:
    r = ws.run_shell("pwd; echo $HOME $TMPDIR; echo oops >&2; exit 3", FAST)
    lines = r.stdout.splitlines()
    assert lines[0] == str(ws.root)
    assert lines[1] == f"{ws.root} {ws.root / '.tmp'}"
    assert r.stderr == "oops\n"
    assert (r.exit_code, r.timed_out, r.killed_reason) == (3, False, None)
    assert 0 < r.duration_s < FAST.wall_s


def test_python_runs_isolated_with_our_interpreter(ws: Workspace) -> None:
    r = ws.run_python("import sys\nprint(sys.flags.isolated, sys.version_info[:2])", FAST)
    assert r.ok, r.stderr
    assert r.stdout.strip() == f"1 {tuple(sys.version_info[:2])}"
    assert list(ws.tmp.glob("snippet-*.py")), "the code is written to a file in the workspace"


def test_files_persist_between_runs(ws: Workspace) -> None:
    assert ws.run_shell("echo 41 > n.txt", FAST).ok
    r = ws.run_python("print(int(open('n.txt').read()) + 1)", FAST)
    assert r.stdout.strip() == "42"
    assert (ws.root / "n.txt").read_text() == "41\n"


def test_run_with_cwd_inside_and_outside(ws: Workspace) -> None:
    (ws.root / "sub").mkdir()
    assert ws.run(["pwd"], FAST, cwd="sub").stdout.strip() == str(ws.root / "sub")
    with pytest.raises(PathEscapeError):
        ws.run(["pwd"], FAST, cwd="/etc")


def test_missing_program_is_reported(ws: Workspace) -> None:
    r = ws.run(["no-such-program-xyz"], FAST)
    assert r.exit_code == 127
    assert "cannot run 'no-such-program-xyz'" in r.stderr


def test_concurrent_runs_do_not_interfere(tmp_path: Path) -> None:
    results: dict[int, str] = {}

    def go(i: int) -> None:
        w = Workspace(tmp_path / f"ws{i}")
        results[i] = w.run_shell(f"sleep 0.3; echo run{i}", FAST).stdout.strip()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: "run0", 1: "run1", 2: "run2"}


# ------------------------------------------------------------------ secrets and privileges


def test_host_secrets_do_not_reach_the_child(ws: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-should-not-leak")
    monkeypatch.setenv("DB_PASSWORD", "pw-should-not-leak")
    r = ws.run_shell(f"env; cat /proc/{os.getpid()}/environ", FAST)
    assert "should-not-leak" not in r.stdout + r.stderr
    names = {line.split("=", 1)[0] for line in r.stdout.splitlines() if "=" in line}
    assert not {n for n in names if any(m in n for m in ("KEY", "TOKEN", "SECRET", "PASSWORD"))}


@needs_root
def test_child_is_unprivileged(ws: Workspace) -> None:
    r = ws.run_shell("id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status", FAST)
    lines = r.stdout.split()
    assert lines[0] == str(ws.uid) and ws.uid != 0
    assert "0000000000000000" in r.stdout.split("CapEff:")[1].split()[0]
    assert r.stdout.split("NoNewPrivs:")[1].split()[0] == "1"


def test_outside_secret_is_unreadable(ws: Workspace, outside: Path) -> None:
    secret = outside / "secret.txt"
    r = ws.run_shell(f"cat {secret}; cat /root/.bashrc; ls -A /root; cat /etc/shadow", FAST)
    assert "top-secret-value-123" not in r.stdout
    r = ws.run_python(f"print(open({str(secret)!r}).read())", FAST)
    assert "top-secret-value-123" not in r.stdout
    assert r.exit_code != 0


@needs_ns
def test_host_tree_is_not_mounted(ws: Workspace, tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o1777)  # world-writable like /tmp: only the mount namespace protects it
    r = ws.run_shell(f"echo x > {open_dir}/dropped; ls /; ls -A /root; ls {tmp_path}", FAST)
    assert not (open_dir / "dropped").exists()
    top = set(r.stdout.split())
    assert "home" not in top and "srv" not in top
    assert "ws" in top and "outside" not in top  # only the workspace of tmp_path is visible


@needs_ns
def test_symlink_escape_via_shell(ws: Workspace, outside: Path) -> None:
    r = ws.run_shell(f"ln -s {outside}/secret.txt s; ln -s / r; cat s r{outside}/secret.txt", FAST)
    assert "top-secret-value-123" not in r.stdout


@needs_ns
def test_network_is_off_unless_asked(ws: Workspace) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('in')"
    try:
        assert "in" not in ws.run_python(code, FAST).stdout
        online = SandboxLimits(wall_s=5, network=True)
        assert ws.run_python(code, online).stdout.strip() == "in"
    finally:
        server.close()


def test_host_processes_cannot_be_signalled(ws: Workspace) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        ws.run_shell(f"kill -9 {victim.pid}; kill -9 -1", FAST)
        time.sleep(0.1)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


# ------------------------------------------------------------------ limits


def test_long_output_is_truncated_with_a_marker(ws: Workspace) -> None:
    r = ws.run_python("print('a' * 10000 + 'END', end='')", FAST)
    assert r.killed_reason is None
    assert r.stdout.startswith("a" * 2000)
    assert r.stdout.endswith("END")
    assert "[truncated 6003 bytes]" in r.stdout
    assert len(r.stdout) < FAST.output_bytes + 100


def test_endless_output_is_killed(ws: Workspace) -> None:
    start = time.monotonic()
    r = ws.run_shell("yes", FAST)
    assert "output limit" in (r.killed_reason or "")
    assert time.monotonic() - start < FAST.wall_s
    assert len(r.stdout) < FAST.output_bytes + 100


def test_sleep_forever_is_killed_with_its_group(ws: Workspace) -> None:
    start = time.monotonic()
    r = ws.run_shell("sleep 1000 & setsid sleep 1000 & sleep 1000", FAST)
    took = time.monotonic() - start
    assert r.timed_out and "wall time" in (r.killed_reason or "")
    assert FAST.wall_s <= took < FAST.wall_s + 2
    assert not alive(ws.uid)


def test_background_daemon_does_not_outlive_the_call(ws: Workspace) -> None:
    r = ws.run_shell("nohup setsid sleep 1000 >/dev/null 2>&1 & echo started", FAST)
    assert r.stdout.strip() == "started" and not r.timed_out
    time.sleep(0.1)
    assert not alive(ws.uid)


def test_cpu_limit(ws: Workspace) -> None:
    r = ws.run_python("while True:\n    pass\n", SandboxLimits(wall_s=8, cpu_s=1))
    assert "cpu time limit" in (r.killed_reason or ""), r
    assert not r.timed_out


def test_memory_limit_one_process(ws: Workspace) -> None:
    r = ws.run_python("x = []\nwhile True:\n    x.append(bytearray(16 * 2**20))\n", FAST)
    assert r.exit_code != 0
    assert "MemoryError" in r.stderr or "memory limit" in (r.killed_reason or "")
    assert r.max_rss_mb is not None and r.max_rss_mb <= FAST.memory_mb * 1.05


@pytest.mark.skipif(
    not Path("/sys/fs/cgroup/memory").is_dir() or not IS_ROOT, reason="no cgroup v1 memory"
)
def test_memory_limit_whole_process_tree(ws: Workspace) -> None:
    # Per-process RLIMIT_AS would let three 150 MB processes through; the cgroup does not.
    cmd = (
        "for i in 1 2 3; do python3 -c 'import time; b = bytearray(150 * 2**20); "
        "time.sleep(1)' & done; wait"
    )
    r = ws.run_shell(cmd, FAST)
    assert r.max_rss_mb is not None and r.max_rss_mb <= FAST.memory_mb * 1.05
    assert "killed for going over the memory limit" in r.stderr


def test_file_size_limit(ws: Workspace) -> None:
    # Python ignores SIGXFSZ and gets EFBIG; dd and most C tools are killed by the signal.
    r = ws.run_python("f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * 2**20)\n", FAST)
    assert r.exit_code != 0 and "File too large" in r.stderr, r
    r = ws.run_shell("exec head -c 20000000 /dev/zero > big2", FAST)
    assert "file size limit" in (r.killed_reason or ""), r
    for name in ("big", "big2"):
        assert (ws.root / name).stat().st_size <= FAST.file_mb * 2**20


@needs_root
def test_fork_bomb_is_contained_and_leaves_nothing(ws: Workspace) -> None:
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(alive(ws.uid)))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.monotonic()
    try:
        r = ws.run_shell("bomb() { bomb | bomb & }; bomb; sleep 100", FAST)
    finally:
        stop.set()
        sampler.join()
    assert r.timed_out
    assert time.monotonic() - start < FAST.wall_s + 3
    assert 0 < peak[0] <= FAST.max_processes
    assert not alive(ws.uid)
    assert ws.run_shell("echo still fine", FAST).stdout == "still fine\n"


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A base folder others may traverse (pytest's own is 0700), as the uid level needs."""
    base = Path(tempfile.mkdtemp(prefix="memento-uid-test-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_uid_level_without_namespaces(open_base: Path, outside: Path) -> None:
    w = Workspace(open_base / "uidws", isolation="uid")
    r = w.run_shell(f"id -u; cat {outside}/secret.txt; echo x > {outside}/new", FAST)
    assert r.stdout.split()[0] == str(w.uid)
    assert "top-secret-value-123" not in r.stdout
    assert not (outside / "new").exists()
    r = w.run_shell("bomb() { bomb | bomb & }; bomb; sleep 100", FAST)
    assert r.timed_out and not alive(w.uid)
    assert w.run_shell("setsid sleep 1000 & echo ok", FAST).stdout == "ok\n"
    time.sleep(0.1)
    assert not alive(w.uid)


@needs_root
def test_uid_level_needs_a_reachable_workspace(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(SandboxError, match="not traversable"):
        Workspace(closed / "ws", isolation="uid")


@pytest.mark.slow
def test_escape_bench_contains_everything() -> None:
    from memento_skills.evals.bench_sandbox import run_sandbox_bench

    report = run_sandbox_bench()
    escaped = [c for c in report["cases"] if c["outcome"] != "contained"]
    assert report["attempted"] == len(report["cases"]) >= 15
    assert report["contained"] == report["attempted"], escaped
    assert report["duration_s"] < 60


@needs_root
def test_reopening_a_workspace_never_hands_over_linked_host_files(tmp_path: Path) -> None:
    w = Workspace(tmp_path / "ws")
    host_file = tmp_path / "host.txt"
    host_file.write_text("host")
    os.link(host_file, w.root / "linked.txt")  # what a child could do if hard links were open
    (w.root / "link").symlink_to(host_file)
    (w.root / "plain.txt").write_text("p")
    Workspace(tmp_path / "ws")
    assert host_file.stat().st_uid == os.geteuid()
    assert (w.root / "plain.txt").stat().st_uid == w.uid


# ------------------------------------------------------------------ the levels, named


WEAK = "uid" if IS_ROOT else "rlimits"
LEVELS = [
    pytest.param(
        "namespaces",
        marks=pytest.mark.skipif(
            detect_isolation() != "namespaces", reason="namespaces are not available here"
        ),
    ),
    WEAK,
]
NO_UNSHARE_SCRIPT = """
import sys
from pathlib import Path
from memento_skills.nodes.execution.sandbox import Workspace, isolation_notice
from memento_skills.nodes.execution.tools import make_tools

print(isolation_notice())
w = Workspace(Path(sys.argv[1]) / "ws")
shell = next(t for t in make_tools(w) if t.name == "shell")
print(shell.description)
print(shell.invoke({"type": "tool_call", "id": "1", "name": "shell",
                    "args": {"command": "echo ran-the-code"}}).content)
"""


def _without_unshare(open_base: Path, **extra: str) -> dict[str, str]:
    """An environment whose PATH has our interpreter but no `unshare`: namespaces unavailable."""
    bin_dir = open_base / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "memento"):
        source = Path(sys.executable).parent / name
        if source.exists() and not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(source)
    env = {k: v for k, v in os.environ.items() if k != "MEMENTO_SANDBOX"}
    return {**env, "PATH": str(bin_dir), **extra}


def test_auto_refuses_code_without_namespaces_and_says_how_to_opt_in(open_base: Path) -> None:
    script = open_base / "probe.py"
    script.write_text(NO_UNSHARE_SCRIPT)
    run = lambda env: subprocess.run(  # noqa: E731
        [sys.executable, str(script), str(open_base)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    refused = run(_without_unshare(open_base))
    assert refused.returncode == 0, refused.stderr
    notice = refused.stdout.splitlines()[0]
    assert "namespaces" in notice and "unavailable" in notice
    missing = "`unshare` is not installed" if IS_ROOT else "need root"
    assert missing in notice and f"MEMENTO_SANDBOX={WEAK}" in notice
    assert "ran-the-code" not in refused.stdout
    assert "error: running code is refused" in refused.stdout
    assert "Unavailable here" in refused.stdout  # the tool's description says so too

    opted_in = run(_without_unshare(open_base, MEMENTO_SANDBOX=WEAK))
    assert opted_in.returncode == 0, opted_in.stderr
    assert f"weaker level {WEAK!r} as opted in" in opted_in.stdout.splitlines()[0]
    assert "ran-the-code" in opted_in.stdout


def test_the_cli_says_so_at_start_up_and_refuses_an_unknown_or_missing_level(
    open_base: Path,
) -> None:
    memento = str(open_base / "bin" / "memento")
    args = [memento, "learn", "--suite", "reasoning-gym", "--run-dir", str(open_base / "run")]
    env = _without_unshare(open_base)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    text = " ".join(proc.stderr.split())  # rich wraps the line
    assert "strong isolation (namespaces) is unavailable" in text
    assert f"MEMENTO_SANDBOX={WEAK}" in text and "Traceback" not in text
    for level, message in [("docker", "unknown MEMENTO_SANDBOX 'docker'"), ("namespaces", None)]:
        proc = subprocess.run(
            args, env={**env, "MEMENTO_SANDBOX": level}, capture_output=True, text=True, timeout=120
        )
        text = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and "Traceback" not in text  # bad input
        assert (message or "isolation 'namespaces' is unavailable here") in text


def _probe_escapes(tools: dict[str, Any], library: Path, gold: str) -> dict[str, bool]:
    """Try each way out through the real tools; True where the host saw the effect."""
    cases_file = CaseStore(library).root / "skill.jsonl"
    ws_root = Path(tools["workspace"])
    rel = os.path.relpath(cases_file, ws_root)
    call = lambda name, **args: str(  # noqa: E731
        tools[name].invoke({"type": "tool_call", "id": "1", "name": name, "args": args}).content
    )
    gold_outputs = [
        call("shell", command=f"cat {rel}; cat {cases_file}"),
        call("python", code=f"print(open({rel!r}).read())"),
        call("python", code=f"print(open({str(cases_file)!r}).read())"),
    ]
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    tcp.setblocking(False)
    tag = os.urandom(6).hex()
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(f"\0memento-test-{tag}")
    abstract.listen(4)
    abstract.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    path_sock = f"/tmp/memento-test-{tag}.sock"  # world-writable, like /tmp/.X11-unix/X0
    by_path = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    by_path.bind(path_sock)
    os.chmod(path_sock, 0o777)
    by_path.listen(4)
    by_path.setblocking(False)
    host_tmp = Path("/tmp") / f"memento-test-{tag}"
    code = f"""
import socket
for family, kind, address in [
    (socket.AF_INET, socket.SOCK_STREAM, ('127.0.0.1', {tcp.getsockname()[1]})),
    (socket.AF_UNIX, socket.SOCK_STREAM, '\\0memento-test-{tag}'),
    (socket.AF_INET, socket.SOCK_DGRAM, ('127.0.0.1', {udp.getsockname()[1]})),
    (socket.AF_UNIX, socket.SOCK_STREAM, {path_sock!r}),
]:
    try:
        s = socket.socket(family, kind)
        s.settimeout(1)
        s.connect(address)
        s.send(b'x')
    except OSError as e:
        print(e)
try:
    open({str(host_tmp)!r}, 'w').write('x')
except OSError as e:
    print(e)
"""
    try:
        call("python", code=code)
        seen: dict[str, bool] = {}
        for name, sock in (("tcp", tcp), ("abstract", abstract), ("unix_path", by_path)):
            try:
                conn, _ = sock.accept()
                conn.close()
                seen[name] = True
            except BlockingIOError:
                seen[name] = False
        try:
            seen["udp"] = bool(udp.recv(16))
        except BlockingIOError:
            seen["udp"] = False
    finally:
        for sock in (tcp, abstract, udp, by_path):
            sock.close()
        Path(path_sock).unlink(missing_ok=True)
    seen["host_tmp"] = host_tmp.exists()
    host_tmp.unlink(missing_ok=True)
    seen["gold"] = any(gold in o for o in gold_outputs)
    return seen


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_keeps_golds_network_and_host_tmp_out(open_base: Path, level: str) -> None:
    """The old eval layout (a workspace beside the library, both in a traversable run dir):
    the regression cases stay unreadable, and no local socket or host /tmp is reached."""
    if level != "namespaces":
        probe = probe_isolation()
        if probe.landlock_abi < 6 or not probe.seccomp:
            pytest.skip(f"the kernel lacks Landlock ABI 6 or seccomp here ({probe})")
    run_dir = open_base / "run"
    gold = "gold-answer-" + os.urandom(6).hex()
    CaseStore(run_dir / "skills").add("skill", Case(task="q?", ground_truth=gold))
    cases = CaseStore(run_dir / "skills").root
    assert stat.S_IMODE(cases.stat().st_mode) == 0o700
    assert stat.S_IMODE(cases.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((cases / "skill.jsonl").stat().st_mode) == 0o600
    w = Workspace(run_dir / "workspaces" / "t1", isolation=level)
    tools: dict[str, Any] = {t.name: t for t in make_tools(w, limits=FAST)}
    tools["workspace"] = str(w.root)
    seen = _probe_escapes(tools, run_dir / "skills", gold)
    assert seen == dict.fromkeys(seen, False), seen
    assert "no network" in tools["shell"].description  # and the test above shows it holds
    open_net = make_tools(w, limits=replace(FAST, network=True))[0]
    assert "no network" not in open_net.description


@pytest.mark.parametrize("level", LEVELS)
def test_the_workspace_disk_cap_holds_across_files(open_base: Path, level: str) -> None:
    w = Workspace(open_base / "ws", isolation=level)
    attachment = w.root / "given.bin"
    attachment.write_bytes(os.urandom(6 * 2**20))  # what the host put there stays
    limits = replace(FAST, disk_mb=24, wall_s=10)
    r = w.run_shell("for i in $(seq 1 20); do head -c 7M /dev/zero > f$i.bin; done", limits)
    assert disk_usage(w.root) <= 24 * 2**20
    assert r.killed_reason and "disk cap of 24 MB" in r.killed_reason
    assert "deleted what this run wrote past it" in r.stderr
    assert attachment.stat().st_size == 6 * 2**20
    left = 24 * 2**20 - disk_usage(w.root)
    if left > 1_000_000:
        (w.root / "pad.bin").write_bytes(b"p" * (left - 500_000))
    tools = {t.name: t for t in make_tools(w, limits=limits)}
    refused = tools["write_file"].invoke(
        {
            "type": "tool_call",
            "id": "1",
            "name": "write_file",
            "args": {"path": "big.txt", "content": "x" * 1_000_000},
        }
    )
    assert "disk cap" in str(refused.content) and not (w.root / "big.txt").exists()
    (w.root / "pad.bin").unlink(missing_ok=True)
    r = w.run_python("open('one.bin', 'wb').write(b'0' * 30 * 2**20)", limits)
    assert disk_usage(w.root) <= 24 * 2**20 and not r.ok


AS_NOBODY_SCRIPT = r"""
import importlib.util, json, os, signal, socket, subprocess, sys
spec = importlib.util.spec_from_file_location(
    "sandbox", os.path.join(sys.argv[1], "__init__.py"), submodule_search_locations=[sys.argv[1]]
)
sb = importlib.util.module_from_spec(spec)
sys.modules["sandbox"] = sb
spec.loader.exec_module(sb)
base, port = sys.argv[2], int(sys.argv[3])
out = {"auto": sb.Workspace(base + "/auto").refused or ""}
w = sb.Workspace(base + "/ws", isolation="rlimits")
victim = subprocess.Popen(["sleep", "30"])
r = w.run_shell(
    f"cat {base}/gold.txt /proc/{os.getpid()}/environ; kill -9 {victim.pid}; "
    f"echo x > /tmp/memento-nobody-{os.getpid()}; "
    f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo sent >&3"
)
out["run"] = r.stdout + r.stderr
out["victim_alive"] = victim.poll() is None
out["tmp_written"] = os.path.exists(f"/tmp/memento-nobody-{os.getpid()}")
victim.kill()
print(json.dumps(out))
"""


@needs_root
def test_rlimits_level_as_a_normal_user_still_confines_files_network_and_signals(
    open_base: Path,
) -> None:
    """The weakest level, for real: a normal user (nobody) runs the sandbox, so the child has
    the same uid as its host; only Landlock and seccomp keep the user's own files (a gold),
    its processes, the loopback and /tmp out of reach."""
    probe = probe_isolation()
    if probe.landlock_abi < 6 or not probe.seccomp or not shutil.which("setpriv"):
        pytest.skip(f"needs Landlock ABI 6, seccomp and setpriv here ({probe})")
    nobody = 65534
    os.chown(open_base, nobody, nobody)
    gold = open_base / "gold.txt"
    gold.write_text("the-users-own-gold\n")
    gold.chmod(0o600)
    os.chown(gold, nobody, nobody)
    script = open_base / "as_nobody.py"
    script.write_text(AS_NOBODY_SCRIPT)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    sandbox_pkg = Path(__file__).resolve().parents[2] / "nodes" / "execution" / "sandbox"
    try:
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={nobody}",
                f"--regid={nobody}",
                "--clear-groups",
                "/usr/bin/python3",
                "-I",
                str(script),
                str(sandbox_pkg),
                str(open_base),
                str(server.getsockname()[1]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOST_TOKEN": "nobodys-token-123"},
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert "need root" in out["auto"] and "MEMENTO_SANDBOX=rlimits" in out["auto"]
    assert "the-users-own-gold" not in out["run"] and "nobodys-token-123" not in out["run"]
    assert out["victim_alive"] and not out["tmp_written"]


def test_the_sandbox_and_its_launcher_import_nothing_but_the_stdlib() -> None:
    """The launcher runs by path inside the new namespaces, and the package loads by path under a
    bare interpreter (above): neither may import the project or a third-party package, and the
    launcher not even its own package."""
    package = Path(__file__).resolve().parents[2] / "nodes" / "execution" / "sandbox"
    foreign: list[str] = []
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}"]
                if node.level and module.name != "launcher.py":
                    continue
            else:
                continue
            foreign += [
                f"{module.name}: {name}"
                for name in names
                if name.split(".")[0] not in sys.stdlib_module_names
            ]
    assert (package / "launcher.py").is_file() and len(list(package.glob("*.py"))) > 2
    assert foreign == []


def test_the_context_names_the_level_and_refuses_an_unknown_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from memento_skills.graph.context import Context
    from memento_skills.graph.validation import RunRefused, check_context

    monkeypatch.setenv("MEMENTO_SANDBOX", WEAK)
    assert Context().sandbox_level == WEAK
    monkeypatch.delenv("MEMENTO_SANDBOX")
    assert Context().sandbox_level == "auto"
    with pytest.raises(RunRefused, match="'auto', 'namespaces', 'uid' or 'rlimits'"):
        check_context({"sandbox_level": "docker"})
    with pytest.raises(RunRefused, match="sandbox_disk_mb"):
        check_context({"sandbox_disk_mb": 0})
