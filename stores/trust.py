"""Trust in a skill's scripts: which files count as scripts, and who vouched for them and when.

Skills from outside (imported packs) arrive untrusted: their scripts run only once an operator
trusts the skill (`memento skills trust NAME`, a new library version recording who and when,
so `history` shows it and `untrust` or a rollback takes it back) or approves one script at a
time (`memento run --approve-scripts`). Trust covers the scripts as they were when trusted (their
digest is recorded), so a script changed afterwards needs trusting again. Until trusted, the
agent may neither run nor read those scripts: their source is code nobody has reviewed, and a
model that reads it tends to replay it through its own python tool, which would run the
unapproved code under another name.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import stat
from pathlib import Path

from memento_skills.stores.skill import Skill, SkillError, now
from memento_skills.stores.skill_folder import folder_files
from memento_skills.stores.skill_store import SkillStore

SCRIPT_SUFFIXES: tuple[str, ...] = (".py", ".sh", ".bash")
"""What run_skill_script runs with an interpreter; other files run only if executable."""
MAX_OPERATOR_NAME = 100


def is_script(path: Path) -> bool:
    """Whether `path` is a file run_skill_script would run (by suffix or execute bit)."""
    if path.suffix in SCRIPT_SUFFIXES:
        return True
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & 0o111)


def script_files(folder: Path) -> list[str]:
    """The scripts of the skill in `folder`, in any of its sub-folders (not only scripts/)."""
    return [rel for rel in folder_files(folder) if is_script(folder / rel)]


def scripts_digest(folder: Path) -> str:
    """One sha256 over the skill's scripts, their paths and bytes: what a trust decision covers."""
    h = hashlib.sha256()
    for rel in script_files(folder):
        h.update(rel.encode("utf-8") + b"\0")
        h.update(hashlib.sha256((folder / rel).read_bytes()).digest())
    return h.hexdigest()


def scripts_trusted(skill: Skill, folder: Path) -> bool:
    """Whether the skill's scripts may run unasked: trusted, and (when trusted by hand) still the
    very scripts that were trusted — an edit after `trust` needs a new `trust`, as direnv does."""
    if not skill.trusted:
        return False
    return not skill.trust_digest or skill.trust_digest == scripts_digest(folder)


def operator_name(by: str | None = None) -> str:
    """Who is changing trust: `by` when given, else the OS user running the command."""
    if by is None:
        try:
            by = getpass.getuser()
        except (OSError, KeyError):  # no login name, no USER/LOGNAME, no passwd entry
            raise SkillError("cannot tell who you are: pass --by NAME") from None
    name = by.strip()
    if not name or len(name) > MAX_OPERATOR_NAME or not name.isprintable():
        raise SkillError(
            f"--by {by!r} is not a usable name: give 1-{MAX_OPERATOR_NAME} printable "
            "characters on one line"
        )
    return name


def set_trust(library: SkillStore, name: str, trusted: bool, by: str) -> tuple[Skill, bool]:
    """Trust or untrust `name` as a new version recording `by` and the time.

    Returns the live skill and whether anything changed: a skill already in the wanted state
    gets no new version, so repeating the command is harmless.
    """
    with library.lock(name):  # re-entrant: update() takes it again
        current = library.get(name)
        folder = library.skill_dir(name)
        if scripts_trusted(current, folder) == trusted and current.trusted == trusted:
            return current, False
        digest = scripts_digest(folder) if trusted else ""
        live = library.update(
            name, trusted=trusted, trust_by=by, trust_at=now(), trust_digest=digest
        )
        return live, True
