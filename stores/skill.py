"""One skill: the Agent Skills `SKILL.md` format, its validation, and Memento's bookkeeping.

The file on disk is the source of truth and must stay readable by any Agent Skills tool, so
Memento's own bookkeeping (version, utility, provenance, times) lives under `metadata` as
string values with a `memento-` prefix, exactly as the format allows for client extensions.
Parsing is strict and every problem names the file, the field, what is wrong and how to fix it:
a skill that cannot be trusted to mean what it says is reported and skipped, never half-loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import regex
import yaml

from memento_skills.stores.frontmatter_yaml import load_yaml, render_frontmatter, split_document
from memento_skills.stores.mcp_config import (
    McpConfigError,
    McpServer,
    is_mcp_tool_name,
    parse_json,
    to_json_text,
)

SKILL_FILE = "SKILL.md"
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
MAX_SKILL_FILE_BYTES = 256 * 1024
SPEC_FIELDS = ("name", "description", "license", "compatibility", "allowed-tools", "metadata")
MEMENTO_PREFIX = "memento-"

AGENT_TOOLS: tuple[str, ...] = (
    "shell",
    "python",
    "read_file",
    "write_file",
    "list_dir",
    "web_search",
    "fetch_url",
    "read_skill_file",
    "run_skill_script",
    "submit_answer",
)
"""The tools the execute node offers: a skill's tool policy may name only these."""
MAX_ANSWER_PATTERN = 200

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Characters a SKILL.md may not hold: C0/C1 controls and DEL (tab, newline and CR are text)."""

Provenance = Literal["seed", "learned", "imported", "api"]
PROVENANCES: tuple[str, ...] = ("seed", "learned", "imported", "api")
"""Who made a skill: shipped seed, the agent's write phase, an imported pack, or a program
through the Python API (the default for a `Skill` built in code)."""


Lifecycle = Literal["draft", "candidate", "active", "deprecated"]
LIFECYCLES: tuple[str, ...] = ("draft", "candidate", "active", "deprecated")
"""Where a skill stands on evidence (docs/decisions.md#lifecycle-and-lift): `draft` — learned, live
on probation (its gate replay did not pass its task); `candidate` — learned, passed its gate, lift
not yet shown; `active` — lift shown positive, or made by a person (seed, import, API);
`deprecated` — retired, kept as a version, never routed."""

_LIFT_TEXT = re.compile(r"with (\d+)/(\d+) without (\d+)/(\d+) v(\d+)")


@dataclass(frozen=True)
class Lift:
    """Success with the skill against success without it on its own cases (SkillsBench)."""

    with_passed: int
    with_total: int
    without_passed: int
    without_total: int
    version: int
    """The skill version that was measured."""

    def __post_init__(self) -> None:
        counts = (self.with_passed, self.with_total, self.without_passed, self.without_total)
        if min(counts) < 0 or self.with_passed > self.with_total:
            raise ValueError(f"bad lift counts {counts}: passes must be within 0..cases")
        if self.without_passed > self.without_total or self.version < 1:
            raise ValueError(f"bad lift {counts} v{self.version}: passes within cases, v >= 1")

    @property
    def value(self) -> float | None:
        """The with rate minus the without rate; None when either side has no case."""
        if self.with_total <= 0 or self.without_total <= 0:
            return None
        return self.with_passed / self.with_total - self.without_passed / self.without_total

    @property
    def cases(self) -> int:
        """How many cases the smaller side rests on: the evidence behind `value`."""
        return min(self.with_total, self.without_total)

    def to_text(self) -> str:
        """The form kept in `metadata.memento-lift`, e.g. `with 3/4 without 1/4 v3`."""
        return (
            f"with {self.with_passed}/{self.with_total} "
            f"without {self.without_passed}/{self.without_total} v{self.version}"
        )

    @classmethod
    def from_text(cls, text: str) -> Lift:
        """Parse `to_text`'s form; ValueError says what is wrong."""
        m = _LIFT_TEXT.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"{text!r} is not `with P/N without P/N vV`")
        wp, wt, op, ot, v = (int(g) for g in m.groups())
        if wp > wt or op > ot:
            raise ValueError(f"{text!r} counts more passes than cases")
        if v < 1:
            raise ValueError(f"{text!r} names version 0; versions start at 1")
        return cls(wp, wt, op, ot, v)


CONTENT_FIELDS = (
    "description",
    "body",
    "allowed_tools",
    "first_tools",
    "answer_pattern",
    "mcp_servers",
)
"""What a skill does when routed: a write that changes one of these (or its files) makes a
measured lift describe another skill, so the library drops it."""


class SkillError(Exception):
    """Base class for every error the skill library raises on purpose."""


class SkillNotFoundError(SkillError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "skill not found"


class SkillExistsError(SkillError):
    pass


class UnsafePathError(SkillError, ValueError):
    """A name or path from outside would reach outside the library (or its skill folder)."""


@dataclass(frozen=True)
class Problem:
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem} — fix: {self.fix}"


class SkillValidationError(SkillError, ValueError):
    """All that is wrong with one SKILL.md, each problem with its field and its fix."""

    def __init__(self, file: Path | str, problems: list[Problem]):
        self.file = str(file)
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.file}: invalid skill ({len(self.problems)} problem(s))"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def one_line(self) -> str:
        """The file and every problem on one line, for command output that lists many skills."""
        return f"{self.file}: " + "; ".join(str(p) for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "problems": [
                {"field": p.field, "problem": p.problem, "fix": p.fix} for p in self.problems
            ],
        }


def check_name(name: object) -> list[Problem]:
    """Problems with a skill name, empty when it is valid (also the path-safety rule)."""
    if not isinstance(name, str) or not name:
        return [
            Problem("name", "missing or not a string", "add `name: my-skill` to the frontmatter")
        ]
    out = []
    if len(name) > MAX_NAME:
        out.append(
            Problem("name", f"{len(name)} characters, the limit is {MAX_NAME}", "shorten the name")
        )
    if not NAME_PATTERN.match(name):
        out.append(
            Problem(
                "name",
                f"{name!r} is not lowercase letters, digits and single inner hyphens",
                "use a name like `pdf-tables` ([a-z0-9] words joined by single hyphens)",
            )
        )
    return out


_TOOL_TOKEN = re.compile(r"[^\s,()]+(?:\([^)]*\))?")


def split_tool_names(raw: object) -> list[str]:
    """The tool names of an `allowed-tools` value: the spec's space-separated list, a YAML list, or
    Claude Code's comma-separated names with arguments (`Bash(git diff:*), Read`)."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    return [tok for item in items for tok in _TOOL_TOKEN.findall(str(item))]


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Utility:
    successes: int = 0
    failures: int = 0

    @property
    def runs(self) -> int:
        return self.successes + self.failures


@dataclass(frozen=True)
class Skill:
    """A parsed skill. `body` is the markdown after the frontmatter."""

    name: str
    description: str
    body: str
    license: str | None = None
    compatibility: str | None = None
    allowed_tools: tuple[str, ...] = ()
    first_tools: tuple[str, ...] = ()
    """Policy: the tools the first steps must call, in order (e.g. python, then submit_answer)."""
    answer_pattern: str | None = None
    """Policy: the answer contract — a regex; its last match in the answer is the answer."""
    mcp_servers: tuple[McpServer, ...] = ()
    """The MCP servers its frontmatter declares (`metadata.memento-mcp-servers`); an `mcp.json`
    in its folder may declare more (see stores/mcp_config.py)."""
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata, not memento-*
    version: int = 1
    parent_version: int | None = None
    utility: Utility = Utility()
    provenance: Provenance = "api"
    lifecycle: Lifecycle = "active"
    """Where the skill stands on evidence (LIFECYCLES); the write phase sets it for what it
    learns, a file without the key reads as `candidate` when learned, else `active`."""
    lift: Lift | None = None
    """The last with/without measurement on its own cases (None: never measured, or the
    content changed since: the library drops a lift when a write changes what it measured)."""
    lifecycle_reason: str = ""
    """Why the lifecycle was last set (`library.set_lifecycle`), for `show` and `history`."""
    source: str = ""
    trusted: bool = True
    trust_by: str = ""
    """Who last trusted or untrusted the skill by hand (`memento skills trust/untrust`)."""
    trust_at: str = ""
    """When they did (UTC), so `history` and `show` say who vouched for the scripts and when."""
    trust_digest: str = ""
    """The scripts' digest when trusted: trust covers those bytes only (see stores/trust.py)."""
    change: str = ""
    """The key of the write-phase change that made this version ("" when none did): a resumed
    task finds its change already written by it, so a crash never writes it twice."""
    outcomes: tuple[str, ...] = ()
    """Keys of the last judged runs counted in `utility`, so a replayed count is skipped."""
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    path: Path | None = field(default=None, compare=False)
    authored_yaml: str | None = field(default=None, compare=False, repr=False)
    """The frontmatter text as read: entries whose value is unchanged are written back verbatim."""

    @property
    def document(self) -> str:
        """The text the retrieval indexes see: what the skill does and when to use it."""
        return f"{self.name.replace('-', ' ')}: {self.description}"

    @cached_property
    def content_hash(self) -> str:
        """Hash of what retrieval depends on; bookkeeping (utility, times) never changes it."""
        return hashlib.sha256(self.document.encode("utf-8")).hexdigest()[:32]

    def with_changes(self, **changes: Any) -> Skill:
        return replace(self, **changes)

    def frontmatter(self) -> dict[str, Any]:
        fm: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.license:
            fm["license"] = self.license
        if self.compatibility:
            fm["compatibility"] = self.compatibility
        if self.allowed_tools:
            fm["allowed-tools"] = " ".join(self.allowed_tools)
        meta = dict(self.metadata)
        meta.update(
            {
                "memento-version": str(self.version),
                "memento-successes": str(self.utility.successes),
                "memento-failures": str(self.utility.failures),
                "memento-provenance": self.provenance,
                "memento-lifecycle": self.lifecycle,
                "memento-trusted": "true" if self.trusted else "false",
                "memento-created": self.created,
                "memento-updated": self.updated,
            }
        )
        if self.first_tools:
            meta["memento-first-tool"] = " ".join(self.first_tools)
        if self.answer_pattern:
            meta["memento-answer-pattern"] = self.answer_pattern
        if self.mcp_servers:
            meta["memento-mcp-servers"] = to_json_text(list(self.mcp_servers))
        if self.lift is not None:
            meta["memento-lift"] = self.lift.to_text()
        if self.lifecycle_reason:
            meta["memento-lifecycle-reason"] = self.lifecycle_reason
        if self.source:
            meta["memento-source"] = self.source
        if self.trust_by:
            meta["memento-trust-by"] = self.trust_by
        if self.trust_at:
            meta["memento-trust-at"] = self.trust_at
        if self.trust_digest:
            meta["memento-trust-digest"] = self.trust_digest
        if self.change:
            meta["memento-change"] = self.change
        if self.outcomes:
            meta["memento-outcomes"] = " ".join(self.outcomes)
        if self.parent_version is not None:
            meta["memento-parent-version"] = str(self.parent_version)
        fm["metadata"] = meta
        return fm

    def to_markdown(self) -> str:
        return self._markdown(self.frontmatter())

    def authored_text(self) -> str:
        """SKILL.md without the library's bookkeeping (version, counts, times, source): what a
        writer wrote, where a gold could be (a timestamp's "12" is not the gold "12"), and what
        a writer is shown of a skill."""
        fm = self.frontmatter()
        kept = {k: v for k, v in fm["metadata"].items() if k not in BOOKKEEPING_KEYS}
        if kept:
            fm["metadata"] = kept
        else:
            del fm["metadata"]
        return self._markdown(fm)

    def _markdown(self, fm: dict[str, Any]) -> str:
        head = render_frontmatter(self.authored_yaml, fm)
        body = self.body.replace("\r\n", "\n").strip()  # one line ending on disk
        return f"---\n{head}\n---\n\n{body}\n"


BOOKKEEPING_KEYS = frozenset(
    {
        "memento-version",
        "memento-successes",
        "memento-failures",
        "memento-provenance",
        "memento-lifecycle",
        "memento-lift",
        "memento-lifecycle-reason",
        "memento-trusted",
        "memento-created",
        "memento-updated",
        "memento-source",
        "memento-trust-by",
        "memento-trust-at",
        "memento-trust-digest",
        "memento-change",
        "memento-outcomes",
        "memento-parent-version",
    }
)
"""Metadata the library writes itself: never authored text, so never scanned for golds."""
PROPOSED_KEYS = frozenset({"memento-first-tool", "memento-answer-pattern", "memento-mcp-servers"})
"""Memento's metadata that carries what a writer (or a skill's author) proposed."""
ORIGINAL_KEYS = (
    "memento-original-allowed-tools",
    "memento-original-description",
    "memento-original-compatibility",
)
"""What an import adapted, as the author wrote it: kept with the user's metadata, never reset."""
_MEMENTO_KEYS = BOOKKEEPING_KEYS | PROPOSED_KEYS | set(ORIGINAL_KEYS)
"""Every `memento-` key the library knows: one list per kind, so a new key is written once."""


def _as_int(meta: dict[str, str], key: str, default: int | None, problems: list[Problem]) -> Any:
    if key not in meta:
        return default
    try:
        value = int(meta[key])
    except ValueError:
        problems.append(
            Problem(f"metadata.{key}", f"{meta[key]!r} is not an integer", "write a whole number")
        )
        return default
    if value < 0:
        problems.append(Problem(f"metadata.{key}", "is negative", "write a number >= 0"))
        return default
    return value


@dataclass(frozen=True)
class SkillDocument:
    """A SKILL.md split into its frontmatter (as text and as loaded) and its body."""

    yaml_text: str
    fields: dict[str, Any]
    body: str


def _decode(text: str | bytes, file: Path | str) -> str:
    if isinstance(text, bytes):
        if len(text) > MAX_SKILL_FILE_BYTES:
            raise SkillValidationError(
                file,
                [
                    Problem(
                        "file",
                        f"{len(text)} bytes, the limit is {MAX_SKILL_FILE_BYTES}",
                        "move long material into references/ and link it from SKILL.md",
                    )
                ],
            )
        if b"\x00" in text:
            raise SkillValidationError(
                file,
                [
                    Problem(
                        "file",
                        "is binary (contains NUL bytes, the control character U+0000)",
                        "SKILL.md must be plain text",
                    )
                ],
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SkillValidationError(
                file, [Problem("file", f"is not UTF-8 ({e.reason})", "save the file as UTF-8")]
            ) from None
    elif len(text) > MAX_SKILL_FILE_BYTES:
        raise SkillValidationError(
            file,
            [Problem("file", f"longer than {MAX_SKILL_FILE_BYTES} bytes", "move material out")],
        )
    text = text.lstrip("\ufeff")
    bad = CONTROL_CHARS.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise SkillValidationError(
            file,
            [
                Problem(
                    "file",
                    f"contains the control character U+{ord(bad.group()):04X} at line {line}",
                    "SKILL.md must be plain text: remove control characters (tabs and newlines "
                    "are fine)",
                )
            ],
        )
    return text


def read_document(text: str | bytes, file: Path | str) -> SkillDocument:
    """Split and load a SKILL.md (the one place frontmatter is parsed). Raises SkillValidationError."""
    text = _decode(text, file)
    if not text.strip():
        raise SkillValidationError(
            file,
            [
                Problem(
                    "file", "is empty", "start with a `---` YAML frontmatter block, then the body"
                )
            ],
        )
    if not text.startswith("---"):
        raise SkillValidationError(
            file,
            [
                Problem(
                    "frontmatter",
                    "missing: the file does not start with `---`",
                    "begin with `---`, the YAML fields name and description, then `---`",
                )
            ],
        )
    parts = split_document(text)
    if parts is None:
        raise SkillValidationError(
            file,
            [
                Problem(
                    "frontmatter",
                    "is not closed by a `---` line",
                    "end the YAML fields with a line of `---`, then write the body",
                )
            ],
        )
    yaml_text, body = parts
    try:
        fields = load_yaml(yaml_text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 2}" if where is not None else ""
        raise SkillValidationError(
            file,
            [
                Problem(
                    "frontmatter",
                    f"is not valid YAML{at}: {getattr(e, 'problem', None) or e}",
                    "quote values containing `:` or `#`, and check indentation; no YAML aliases",
                )
            ],
        ) from None
    if not isinstance(fields, dict) or not fields:
        raise SkillValidationError(
            file,
            [Problem("frontmatter", "is empty or not a mapping", "add `name:` and `description:`")],
        )
    return SkillDocument(yaml_text, fields, body)


def parse_skill(text: str | bytes, file: Path | str, *, folder_name: str | None = None) -> Skill:
    """Parse and validate one SKILL.md. Raises SkillValidationError listing every problem."""
    return build_skill(read_document(text, file), file, folder_name=folder_name)


def build_skill(doc: SkillDocument, file: Path | str, *, folder_name: str | None = None) -> Skill:
    """Validate a loaded SKILL.md against the spec and Memento's rules; every problem at once."""
    fm = doc.fields
    problems: list[Problem] = []

    for key in fm:
        if key not in SPEC_FIELDS:
            problems.append(
                Problem(
                    str(key),
                    "is not an Agent Skills frontmatter field",
                    f"remove it or move it under `metadata:` (allowed: {', '.join(SPEC_FIELDS)})",
                )
            )

    name = fm.get("name")
    problems += check_name(name)
    if isinstance(name, str) and folder_name is not None and name != folder_name:
        problems.append(
            Problem(
                "name",
                f"{name!r} differs from its folder {folder_name!r}",
                "rename the folder or the name so both are the same",
            )
        )

    description = fm.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(
            Problem(
                "description",
                "missing or empty",
                "say what the skill does and when to use it, in one or two sentences",
            )
        )
        description = ""
    elif len(description) > MAX_DESCRIPTION:
        problems.append(
            Problem(
                "description",
                f"{len(description)} characters, the limit is {MAX_DESCRIPTION}",
                "keep what it does and when to use it; move details into the body",
            )
        )

    license_ = fm.get("license")
    if license_ is not None and not isinstance(license_, str):
        problems.append(Problem("license", "is not a string", "write e.g. `license: MIT`"))
        license_ = None
    compatibility = fm.get("compatibility")
    if compatibility is not None:
        if not isinstance(compatibility, str):
            problems.append(Problem("compatibility", "is not a string", "write one short sentence"))
            compatibility = None
        elif len(compatibility) > MAX_COMPATIBILITY:
            problems.append(
                Problem(
                    "compatibility",
                    f"{len(compatibility)} characters, the limit is {MAX_COMPATIBILITY}",
                    "shorten it",
                )
            )

    tools_raw = fm.get("allowed-tools")
    tool_fix = (
        f"use the agent's tool names ({', '.join(AGENT_TOOLS)}) or MCP tools as "
        "mcp__<server> or mcp__<server>__<tool>"
    )
    allowed_tools: tuple[str, ...] = ()
    if tools_raw is not None:
        if isinstance(tools_raw, str):
            allowed_tools = tuple(tools_raw.split())
        elif isinstance(tools_raw, list) and all(isinstance(t, str) for t in tools_raw):
            allowed_tools = tuple(tools_raw)
        else:
            problems.append(
                Problem(
                    "allowed-tools",
                    "is not a space-separated string of tool names",
                    "write e.g. `allowed-tools: python read_file`",
                )
            )
    if any(t not in AGENT_TOOLS and not is_mcp_tool_name(t) for t in allowed_tools):
        unknown = [
            t
            for t in split_tool_names(tools_raw)
            if t not in AGENT_TOOLS and not is_mcp_tool_name(t)
        ]
        problems.append(
            Problem(
                "allowed-tools",
                f"unknown tool(s) {', '.join(unknown)}",
                f"{tool_fix} (`memento skills import` maps Claude Code names such as Bash or Read)",
            )
        )

    meta_raw = fm.get("metadata") or {}
    meta: dict[str, str] = {}
    if not isinstance(meta_raw, dict):
        problems.append(
            Problem("metadata", "is not a mapping", "write `metadata:` with `key: value` lines")
        )
    else:
        for key, value in meta_raw.items():
            if isinstance(value, dict | list):
                problems.append(
                    Problem(
                        f"metadata.{key}",
                        "is a nested structure; metadata values are strings",
                        "write a single string value (JSON-encode it if you must)",
                    )
                )
            elif value is None:
                meta[str(key)] = ""
            elif isinstance(value, bool):
                meta[str(key)] = "true" if value else "false"
            else:
                meta[str(key)] = str(value)
        for key in meta:
            if key.startswith(MEMENTO_PREFIX) and key not in _MEMENTO_KEYS:
                problems.append(
                    Problem(
                        f"metadata.{key}",
                        "is not a Memento bookkeeping key (the memento- prefix is reserved)",
                        f"remove it or rename it without the prefix; known: {sorted(_MEMENTO_KEYS)}",
                    )
                )

    version = _as_int(meta, "memento-version", 1, problems)
    if version == 0:
        problems.append(Problem("metadata.memento-version", "is 0", "versions start at 1"))
    successes = _as_int(meta, "memento-successes", 0, problems)
    failures = _as_int(meta, "memento-failures", 0, problems)
    parent = _as_int(meta, "memento-parent-version", None, problems)
    provenance = meta.get("memento-provenance", "learned")
    if provenance not in PROVENANCES:
        problems.append(
            Problem(
                "metadata.memento-provenance",
                f"{provenance!r} is unknown",
                f"use one of {', '.join(PROVENANCES)}",
            )
        )
    lifecycle = meta.get("memento-lifecycle") or (
        "candidate" if provenance == "learned" else "active"
    )
    if lifecycle not in LIFECYCLES:
        problems.append(
            Problem(
                "metadata.memento-lifecycle",
                f"{lifecycle!r} is unknown",
                f"use one of {', '.join(LIFECYCLES)}",
            )
        )
    lift: Lift | None = None
    if meta.get("memento-lift"):
        try:
            lift = Lift.from_text(meta["memento-lift"])
        except ValueError as e:
            problems.append(
                Problem(
                    "metadata.memento-lift",
                    str(e),
                    "write e.g. `with 3/4 without 1/4 v2`, or remove it to measure again",
                )
            )
    trusted_raw = meta.get("memento-trusted", "true")
    if trusted_raw not in ("true", "false"):
        problems.append(
            Problem("metadata.memento-trusted", f"{trusted_raw!r} is not true/false", "use true")
        )

    first_tools = tuple(meta.get("memento-first-tool", "").split())
    bad_first = [t for t in first_tools if t not in AGENT_TOOLS and not is_mcp_tool_name(t)]
    if bad_first:
        problems.append(
            Problem(
                "metadata.memento-first-tool", f"unknown tool(s) {', '.join(bad_first)}", tool_fix
            )
        )
    elif allowed_tools and not set(first_tools) <= set(allowed_tools) | {"submit_answer"}:
        problems.append(
            Problem(
                "metadata.memento-first-tool",
                "names a tool that allowed-tools does not allow",
                "add it to allowed-tools or choose an allowed tool",
            )
        )
    answer_pattern = meta.get("memento-answer-pattern") or None
    if answer_pattern is not None:
        if len(answer_pattern) > MAX_ANSWER_PATTERN:
            problems.append(
                Problem(
                    "metadata.memento-answer-pattern",
                    f"{len(answer_pattern)} characters, the limit is {MAX_ANSWER_PATTERN}",
                    "write a short regex for the answer, e.g. `-?\\d+(?:\\.\\d+)?`",
                )
            )
        else:
            try:
                regex.compile(answer_pattern)
            except (regex.error, ValueError) as e:
                problems.append(
                    Problem(
                        "metadata.memento-answer-pattern",
                        f"is not a valid regular expression ({e})",
                        "fix the regex; its last match in an answer becomes the answer",
                    )
                )

    mcp_servers: tuple[McpServer, ...] = ()
    mcp_raw = meta.get("memento-mcp-servers")
    if mcp_raw:
        try:
            mcp_servers = tuple(parse_json(mcp_raw, where="", owner="skill", bare_ok=True))
        except McpConfigError as e:
            where = f"{e.where}: " if e.where else ""
            problems.append(Problem("metadata.memento-mcp-servers", where + e.problem, e.fix))

    body = doc.body.strip()
    if not body:
        problems.append(
            Problem(
                "body",
                "is empty: the skill has no instructions",
                "write the instructions below the frontmatter",
            )
        )

    fields: list[tuple[str, object]] = [
        ("description", description),
        ("license", license_),
        ("compatibility", compatibility),
        *((f"metadata.{k}", v) for k, v in meta.items()),
    ]
    for label, value in fields:
        if isinstance(value, str) and CONTROL_CHARS.search(value):
            problems.append(
                Problem(
                    label,
                    "contains control characters (written as YAML escapes such as \\x01)",
                    "remove them; tabs and newlines are fine",
                )
            )

    if problems:
        raise SkillValidationError(file, problems)
    assert isinstance(name, str)
    return Skill(
        name=name,
        description=description.strip(),
        body=body,
        license=license_,
        compatibility=compatibility,
        allowed_tools=allowed_tools,
        first_tools=first_tools,
        answer_pattern=answer_pattern,
        mcp_servers=mcp_servers,
        metadata={
            k: v for k, v in meta.items() if not k.startswith(MEMENTO_PREFIX) or k in ORIGINAL_KEYS
        },
        version=version,
        parent_version=parent,
        utility=Utility(successes, failures),
        provenance=provenance,  # type: ignore[arg-type]
        lifecycle=lifecycle,  # type: ignore[arg-type]
        lift=lift,
        lifecycle_reason=meta.get("memento-lifecycle-reason", ""),
        source=meta.get("memento-source", ""),
        change=meta.get("memento-change", ""),
        outcomes=tuple(meta.get("memento-outcomes", "").split()),
        trusted=trusted_raw != "false",
        trust_by=meta.get("memento-trust-by", ""),
        trust_at=meta.get("memento-trust-at", ""),
        trust_digest=meta.get("memento-trust-digest", ""),
        created=meta.get("memento-created", "") or _now(),
        updated=meta.get("memento-updated", "") or _now(),
        path=Path(file) if folder_name is not None else None,
        authored_yaml=doc.yaml_text,
    )


def now() -> str:
    """UTC timestamp as written into skill bookkeeping."""
    return _now()


def serialise(skill: Skill, file: Path | str | None = None) -> bytes:
    """The exact bytes of `skill`'s SKILL.md, already parsed back and validated.

    The one gate for both directions: whatever the library writes is these bytes, and they were
    read back by the same parser that loads the library, so a write can never leave a file
    that the next read refuses (a model's NUL once did exactly that).
    """
    data = skill.to_markdown().encode("utf-8")
    where = file if file is not None else f"<new {skill.name}/SKILL.md>"
    back = parse_skill(data, where, folder_name=skill.name)
    meant = {
        "name": skill.name,
        "description": skill.description.strip(),
        "body": skill.body.replace("\r\n", "\n").strip(),
        "version": skill.version,
        "allowed_tools": skill.allowed_tools,
        "first_tools": skill.first_tools,
    }
    drift = [f for f, value in meant.items() if getattr(back, f) != value]
    if drift:
        raise SkillValidationError(
            where,
            [
                Problem(
                    f,
                    "reads back differently from what was written",
                    "simplify the text (odd line endings or frontmatter-like `---` lines)",
                )
                for f in drift
            ],
        )
    return data


def strip_control(text: str) -> tuple[str, int]:
    """`text` without control characters (CRLF becomes LF; tabs and newlines stay), and how
    many were removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned, removed = CONTROL_CHARS.subn("", text)
    return cleaned, removed


def clean_skill(skill: Skill) -> tuple[Skill, dict[str, int]]:
    """`skill` with control characters removed from every text field, and the count per field.

    Applied where model text becomes a Skill: no reader of a SKILL.md expects the `\\u0000` and
    other controls small models emit there (docs/decisions.md#local-server-quirks).
    """
    changes: dict[str, Any] = {}
    removed: dict[str, int] = {}
    for f in ("description", "body", "license", "compatibility", "answer_pattern", "source"):
        value = getattr(skill, f)
        if isinstance(value, str):
            cleaned, n = strip_control(value)
            if n:
                changes[f], removed[f] = cleaned, n
    metadata = {}
    for key, value in skill.metadata.items():
        metadata[key], n = strip_control(value)
        if n:
            removed[f"metadata.{key}"] = n
    if any(k.startswith("metadata.") for k in removed):
        changes["metadata"] = metadata
    return (skill.with_changes(**changes) if changes else skill), removed
