"""Adapting third-party skills at import, so a skill written for another agent is not refused.

Always: Claude Code tool names in `allowed-tools` (`Bash(git diff:*)`, `Read`, `Grep`, ...) become
this agent's tools; the author's value is kept as `metadata.memento-original-allowed-tools` and
names with no equivalent are reported. With `lenient`: fields that break the Agent Skills spec are
brought within it (a too-long description is cut at a sentence end, unknown top-level fields move
under `metadata`, ...), each change said in words. Nothing is changed silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento_skills.stores.skill import (
    AGENT_TOOLS,
    MAX_COMPATIBILITY,
    MAX_DESCRIPTION,
    SPEC_FIELDS,
    Problem,
    Skill,
    SkillDocument,
    SkillValidationError,
    build_skill,
    check_name,
    read_document,
    split_tool_names,
)

CLAUDE_CODE_TOOLS: dict[str, tuple[str, ...]] = {
    "Bash": ("shell",),
    "Read": ("read_file",),
    "Write": ("write_file",),
    "Edit": ("write_file",),
    "MultiEdit": ("write_file",),
    "NotebookEdit": ("write_file",),
    "Glob": ("list_dir",),
    "LS": ("list_dir",),
    "Grep": ("list_dir", "read_file"),
    "WebFetch": ("fetch_url",),
    "WebSearch": ("web_search",),
}
"""Claude Code's tool names and the tools of this agent that do the same work."""


@dataclass
class Adapted:
    """One imported skill and what was changed to import it."""

    skill: Skill
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def adapt_skill(
    text: bytes, file: Path | str, *, folder_name: str, lenient: bool = False
) -> Adapted:
    """Parse a third-party SKILL.md, map its tool names and (lenient) fix spec breaks, validate."""
    doc = read_document(text, file)
    fields = dict(doc.fields)
    changes: list[str] = []
    warnings: list[str] = []
    _map_tools(fields, changes, warnings)
    strict = SkillDocument(doc.yaml_text, fields, doc.body)
    try:
        skill = build_skill(strict, file, folder_name=folder_name)
    except SkillValidationError as refused:
        fixable: list[str] = []
        lenient_fields = _lenient_fixes(dict(fields), folder_name, fixable)
        if not lenient or not fixable:
            if fixable:
                raise _with_lenient_hint(refused, fixable) from None
            raise
        skill = build_skill(
            SkillDocument(doc.yaml_text, lenient_fields, doc.body),
            file,
            folder_name=_lenient_folder(lenient_fields, folder_name),
        )
        changes += fixable
    return Adapted(skill, changes, warnings)


def _map_tools(fields: dict[str, Any], changes: list[str], warnings: list[str]) -> None:
    raw = fields.get("allowed-tools")
    if raw is None or not isinstance(raw, str | list) or not _metadata_ok(fields):
        return  # nothing to map, or nowhere to keep the original: validation says what is wrong
    names = split_tool_names(raw)
    if isinstance(raw, str) and raw.split() == names and all(n in AGENT_TOOLS for n in names):
        return  # already this agent's names, written as the spec says
    mapped: list[str] = []
    restricted: list[str] = []
    unmapped: list[str] = []
    for name in names:
        base, _, args = name.partition("(")
        ours = (name,) if name in AGENT_TOOLS else CLAUDE_CODE_TOOLS.get(base, ())
        if not ours:
            unmapped.append(name)
            continue
        if args:
            restricted.append(name)
        mapped += [t for t in ours if t not in mapped]
    original = raw if isinstance(raw, str) else ", ".join(str(t) for t in raw)
    meta = fields.get("metadata")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["memento-original-allowed-tools"] = original
    fields["metadata"] = meta
    if mapped:
        fields["allowed-tools"] = " ".join(mapped)
        changes.append(f"allowed-tools: {original!r} mapped to {' '.join(mapped)!r}")
    else:
        del fields["allowed-tools"]
        changes.append(f"allowed-tools: {original!r} removed (no name could be mapped)")
    if restricted:
        warnings.append(
            f"allowed-tools: {', '.join(restricted)} became a tool without its argument "
            "restriction (this agent does not restrict commands)"
        )
    if unmapped:
        warnings.append(
            f"allowed-tools: {', '.join(unmapped)} not mapped: this agent has no such tool "
            f"(it has {', '.join(AGENT_TOOLS)})"
        )


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, cut at the last sentence end, else the last word."""
    text = text.strip()
    head = text[:limit]
    ends = [head.rfind(mark) for mark in (". ", "! ", "? ", ".\n", "\n")]
    end = max(ends)
    if end >= limit // 2:
        return head[: end + 1].strip()
    space = head[: limit - 1].rfind(" ")
    return (head[:space] if space > 0 else head[: limit - 1]).rstrip() + "…"


def _lenient_fixes(fields: dict[str, Any], folder_name: str, changes: list[str]) -> dict[str, Any]:
    if not _metadata_ok(fields):
        return fields
    meta_raw = fields.get("metadata")
    meta: dict[str, Any] = dict(meta_raw) if isinstance(meta_raw, dict) else {}
    for key in [k for k in fields if k not in SPEC_FIELDS]:
        value = fields.pop(key)
        if str(key) in meta:
            changes.append(f"{key}: not a spec field, dropped (metadata already has {key!r})")
            continue
        meta[str(key)] = _as_string(value)
        changes.append(f"{key}: not a spec field, moved under metadata")
    for key, value in list(meta.items()):
        if isinstance(value, dict | list):
            meta[key] = _as_string(value)
            changes.append(f"metadata.{key}: nested value written as JSON text")
    for key, limit, where in (
        ("description", MAX_DESCRIPTION, "memento-original-description"),
        ("compatibility", MAX_COMPATIBILITY, "memento-original-compatibility"),
    ):
        value = fields.get(key)
        if isinstance(value, str) and len(value.strip()) > limit:
            cut = _cut(value, limit)
            meta[where] = value.strip()
            fields[key] = cut
            changes.append(
                f"{key}: {len(value.strip()):,} characters cut to {len(cut):,} (the limit is "
                f"{limit:,}); it now ends {cut[-40:]!r}; the full text is kept as metadata.{where}"
            )
    name = fields.get("name")
    if isinstance(name, str) and name != folder_name and not check_name(name):
        changes.append(
            f"name: {name!r} differs from its folder {folder_name!r}; imported as {name}"
        )
    if meta or meta_raw is not None:
        fields["metadata"] = meta
    return fields


def _metadata_ok(fields: dict[str, Any]) -> bool:
    """Adaptations record what they change under `metadata`: it must be absent or a mapping."""
    return fields.get("metadata") is None or isinstance(fields.get("metadata"), dict)


def _lenient_folder(fields: dict[str, Any], folder_name: str) -> str:
    name = fields.get("name")
    return name if isinstance(name, str) and not check_name(name) else folder_name


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _with_lenient_hint(error: SkillValidationError, fixable: list[str]) -> SkillValidationError:
    hint = Problem(
        "import", "refused as written", "--lenient would adapt it: " + "; ".join(fixable)
    )
    return SkillValidationError(error.file, [*error.problems, hint])
