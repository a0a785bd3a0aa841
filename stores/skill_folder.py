"""What one skill folder holds besides its SKILL.md: its files, and the MCP servers of its mcp.json."""

from __future__ import annotations

import os
from pathlib import Path

from memento_skills.stores.mcp_config import MCP_FILE, McpConfigError, McpServer, parse_json
from memento_skills.stores.skill import SKILL_FILE, Problem, Skill, SkillValidationError


def folder_files(folder: Path) -> list[str]:
    """The files of a skill folder besides its SKILL.md, as sorted relative paths: no hidden
    files or folders, no symlinks."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith(".") or (dirpath == str(folder) and fn == SKILL_FILE):
                continue
            full = Path(dirpath) / fn
            if full.is_symlink():
                continue
            out.append(full.relative_to(folder).as_posix())
    return out


def folder_mcp_servers(folder: Path, skill: Skill) -> list[McpServer]:
    """`skill`'s MCP servers with its folder's mcp.json; SkillValidationError if that is bad."""
    path = folder / MCP_FILE
    if not path.is_file() or path.is_symlink():
        return list(skill.mcp_servers)
    try:
        extra = parse_json(path.read_bytes(), where="", owner="skill")
    except McpConfigError as e:
        where = f"{e.where}: " if e.where else ""
        raise SkillValidationError(path, [Problem(MCP_FILE, where + e.problem, e.fix)]) from None
    except OSError as e:
        raise SkillValidationError(
            path, [Problem(MCP_FILE, f"unreadable: {e}", "check it")]
        ) from None
    declared = {s.name for s in skill.mcp_servers}
    twice = sorted(declared & {s.name for s in extra})
    if twice:
        raise SkillValidationError(
            path,
            [
                Problem(
                    MCP_FILE,
                    f"server(s) {', '.join(twice)} also declared in the frontmatter",
                    "declare each server in one place",
                )
            ],
        )
    return [*skill.mcp_servers, *extra]
