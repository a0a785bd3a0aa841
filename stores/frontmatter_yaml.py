"""SKILL.md frontmatter YAML: the one loader (bounded alias expansion) and the text-keeping writer.

Frontmatter comes from untrusted packs, so loading refuses YAML whose aliases would expand past a
small bound ("billion laughs"), recursive aliases and nesting too deep for the parser. Writing
keeps the author's text for every entry whose value does not change and re-dumps only the entries
that do (Memento's bookkeeping under `metadata`, an adapted field); the result is parsed back and
compared, and a full dump is written instead whenever the splice would not mean the same.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_EXPANDED_NODES = 10_000
"""YAML nodes a frontmatter may expand to once aliases are followed (a real one has < 200)."""

_OPEN = re.compile(r"\A-{3,}[ \t]*\r?\n")
_CLOSE = re.compile(r"^-{3,}[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


class FrontmatterYAMLError(yaml.YAMLError):
    """The frontmatter is YAML we refuse to expand (aliases beyond the bound, recursion, depth)."""


class BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a document whose aliases expand past the bound."""

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: Node) -> None:
    """Count the nodes `root` expands to, following aliases (shared nodes) every time they occur."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            active.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            sizes[key] = min(total, MAX_EXPANDED_NODES + 1)
            if total > MAX_EXPANDED_NODES:
                raise FrontmatterYAMLError(
                    f"its aliases expand to more than {MAX_EXPANDED_NODES} YAML nodes"
                )
            continue
        if key in sizes:
            continue
        if key in active:
            raise FrontmatterYAMLError("it contains a recursive alias (a value that holds itself)")
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def load_yaml(text: str) -> Any:
    """Load frontmatter YAML with the bounded safe loader. Raises yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)
    except RecursionError:
        raise FrontmatterYAMLError("it is nested too deeply") from None


def split_document(text: str) -> tuple[str, str] | None:
    """(frontmatter YAML, body) of a SKILL.md text starting with `---`; None if never closed."""
    opening = _OPEN.match(text)
    if opening is None:
        return None
    closing = _CLOSE.search(text, opening.end())
    if closing is None:
        return None
    return text[opening.end() : closing.start()], text[closing.end() :]


class _Dumper(yaml.SafeDumper):
    """Safe dumping, with text of several lines written as a literal block (`|`) people can read."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def dump_yaml(data: dict[str, Any]) -> str:
    """The plain dump Memento writes when there is no author's text to keep."""
    return _dump(data).strip()


def render_frontmatter(authored: str | None, desired: dict[str, Any]) -> str:
    """YAML text for `desired`, keeping `authored`'s text for every entry whose value is unchanged."""
    if authored is None:
        return dump_yaml(desired)
    try:
        spliced = _splice(authored, desired)
    except (yaml.YAMLError, _NotSpliceable):
        return dump_yaml(desired)
    try:
        back = load_yaml(spliced)
    except yaml.YAMLError:
        return dump_yaml(desired)
    if not isinstance(back, dict) or _norm_mapping(back) != _norm_mapping(desired):
        return dump_yaml(desired)
    return spliced.rstrip("\n")


class _NotSpliceable(Exception):
    pass


def _norm(key: str, value: Any) -> Any:
    if key == "allowed-tools":
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list):
            return tuple(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    return value


def _norm_mapping(data: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k == "metadata" and isinstance(v, dict):
            out[k] = {str(mk): _norm(str(mk), mv) for mk, mv in v.items()}
        else:
            out[str(k)] = _norm(str(k), v)
    return out


def _entries(node: MappingNode, lines: list[str]) -> list[tuple[str, Node, int, int]]:
    """(key, value node, first line, end line) of each entry of a block mapping."""
    out = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or node.flow_style:
            raise _NotSpliceable
        first = key_node.start_mark.line
        end = value_node.end_mark.line + (1 if value_node.end_mark.column > 0 else 0)
        if value_node.end_mark.line >= len(lines):
            end = len(lines)
        out.append((str(key_node.value), value_node, first, max(end, first + 1)))
    return out


def _indented(data: dict[str, Any], indent: int) -> list[str]:
    text = _dump(data)
    return [" " * indent + line + "\n" for line in text.splitlines()]


def _splice(authored: str, desired: dict[str, Any]) -> str:
    lines = authored.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    text = "".join(lines)
    root = yaml.compose(text, Loader=BoundedSafeLoader)
    parsed = load_yaml(text)
    if not isinstance(root, MappingNode) or not isinstance(parsed, dict):
        raise _NotSpliceable
    entries = _entries(root, lines)
    if any(k.start_mark.column != 0 for k, _ in root.value):
        raise _NotSpliceable
    out: list[str] = lines[: entries[0][2]] if entries else list(lines)
    written: set[str] = set()
    for i, (key, value_node, first, end) in enumerate(entries):
        gap_end = entries[i + 1][2] if i + 1 < len(entries) else len(lines)
        if key in written:
            raise _NotSpliceable
        written.add(key)
        if key not in desired:
            pass
        elif key == "metadata" and isinstance(desired[key], dict):
            out += _splice_metadata(lines, first, end, value_node, parsed.get(key), desired[key])
        elif _norm(key, parsed.get(key)) == _norm(key, desired[key]):
            out += lines[first:end]
        else:
            out += _indented({key: desired[key]}, 0)
        out += lines[end:gap_end]
    for key, value in desired.items():
        if key not in written:
            out += _indented({key: value}, 0)
    return "".join(out)


def _splice_metadata(
    lines: list[str], first: int, end: int, node: Node, parsed: Any, desired: dict[str, Any]
) -> list[str]:
    if not isinstance(node, MappingNode) or node.flow_style or not isinstance(parsed, dict):
        return _indented({"metadata": desired}, 0)
    entries = _entries(node, lines)
    if not entries or entries[0][2] <= first:
        return _indented({"metadata": desired}, 0)
    indent = next(iter(node.value))[0].start_mark.column
    out = lines[first : entries[0][2]]
    written: set[str] = set()
    for i, (key, _value, k_first, k_end) in enumerate(entries):
        gap_end = entries[i + 1][2] if i + 1 < len(entries) else k_end
        written.add(key)
        if key in desired:
            if _norm(key, parsed.get(key)) == _norm(key, desired[key]):
                out += lines[k_first:k_end]
            else:
                out += _indented({key: desired[key]}, indent)
        out += lines[k_end:gap_end]
    missing = {k: v for k, v in desired.items() if k not in written}
    if missing:
        out += _indented(missing, indent)
    out += lines[entries[-1][3] : end]
    return out
