"""`memento report RUN_DIR`: the run's figures as markdown and PNG plots.

Reads only the run dir (results.jsonl, rounds.jsonl, config.json, leaks.json and the library's
utility counts), so a report can be rebuilt at any time, also while a run is still going.
Accuracies carry a 95% Wilson interval: small test sets are the norm here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memento_skills.evals.run_records import duplicate_keys, load_results, load_rounds
from memento_skills.evals.stats import wilson

PLOTS = {
    "learning_curve": "learning_curve.png",
    "library_size": "library_size.png",
    "tokens_per_task": "tokens_per_task.png",
}


class ReportError(ValueError):
    """The run dir has nothing to report on."""


def _acc(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(records)
    k = sum(1 for r in records if r["correct"])
    low, high = wilson(k, n)
    return {"n": n, "correct": k, "accuracy": k / n if n else 0.0, "ci95": [low, high]}


def _by(records: Iterable[Mapping[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[Any]]:
    out: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in records:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(sorted(out.items(), key=lambda kv: tuple(str(x) for x in kv[0])))


def _sum_cost(records: Sequence[Mapping[str, Any]], key: str = "cost_usd") -> float | None:
    """The total cost, or None (unknown) if any record's cost is unknown."""
    values = [r.get(key) for r in records]
    if not values or any(v is None for v in values):
        return None
    return float(sum(values))  # type: ignore[arg-type]


def summarise(run_dir: Path | str) -> dict[str, Any]:
    """Every figure the report shows, as one JSON-able dict."""
    root = Path(run_dir)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ReportError(f"run dir {root} {what}: pass a folder made by `memento learn` or `eval`")
    records = load_results(root)
    if not records:
        raise ReportError(f"{root} has no results.jsonl records: run `memento learn` first")
    config_file = root / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    rounds = load_rounds(root)

    curve = [
        {"phase": p, "split": s, "round": r, **_acc(rs)}
        for (p, s, r), rs in _by(records, "phase", "split", "round").items()
    ]
    group_curve = [
        {"phase": p, "split": s, "round": r, "group": str(g), **_acc(rs)}
        for (p, s, r, g), rs in _by(records, "phase", "split", "round", "group").items()
        if g is not None
    ]
    final: list[dict[str, Any]] = []
    for (p, s), rs in _by(records, "phase", "split").items():
        last = max(r["round"] for r in rs)
        latest = [r for r in rs if r["round"] == last]
        groups = {
            str(g[0]): _acc(grs) for g, grs in _by(latest, "group").items() if g[0] is not None
        }
        final.append({"phase": p, "split": s, "round": last, **_acc(latest), "groups": groups})

    skills: dict[str, dict[str, Any]] = {}
    for (skill, phase), rs in _by(
        [{**r, "skill": r.get("skill") or "(none)"} for r in records], "skill", "phase"
    ).items():
        entry = skills.setdefault(skill, {"skill": skill})
        entry[phase] = _acc(rs)
    utility = _library_utility(root / "skills")
    for name, counts in utility.items():
        skills.setdefault(name, {"skill": name})["library"] = counts

    growth = []
    changes = _by([r for r in records if r["phase"] == "train"], "round")
    for snap in sorted(rounds, key=lambda s: s["round"]):
        accepted = sum(r.get("accepted_changes", 0) for r in changes.get((snap["round"],), []))
        growth.append({k: snap[k] for k in ("round", "skills", "learned", "versions")})
        growth[-1]["accepted_changes"] = accepted

    library_rounds = [
        {
            "round": snap["round"],
            "skills": snap["skills"],
            "lifecycle": snap["lifecycle"],
            "retired": snap.get("retired", 0),
            "curation_seconds": snap.get("curation_seconds"),
            "curation_tokens": snap.get("curation_tokens"),
            "lifts": snap.get("lifts") or {},
        }
        for snap in sorted(rounds, key=lambda s: s["round"])
        if "lifecycle" in snap  # rounds recorded before lifecycles existed have none
    ]

    tokens = []
    for (p, r), rs in _by(records, "phase", "round").items():
        tokens.append(
            {
                "phase": p,
                "round": r,
                "tasks": len(rs),
                "tokens": sum(x["tokens"] for x in rs),
                "tokens_per_task": sum(x["tokens"] for x in rs) / len(rs),
                "seconds_per_task": sum(x["seconds"] for x in rs) / len(rs),
                "scorer_tokens": sum(x.get("scorer_tokens", 0) for x in rs),
                "cost_usd": _sum_cost(rs),
            }
        )
    search = []
    for (p, r), rs in _by(records, "phase", "round").items():
        searched = [x for x in rs if x.get("search_tries")]
        if searched:
            search.append(
                {
                    "phase": p,
                    "round": r,
                    "tasks": len(rs),
                    "searched": len(searched),
                    "found": sum(1 for x in searched if x.get("search_found_by")),
                    "tries_per_searched": sum(x["search_tries"] for x in searched) / len(searched),
                    "tokens_per_searched": sum(x.get("search_tokens", 0) for x in searched)
                    / len(searched),
                    "seconds_per_searched": sum(x.get("search_seconds", 0.0) for x in searched)
                    / len(searched),
                }
            )
    leaks_file = root / "leaks.json"
    leaks = json.loads(leaks_file.read_text(encoding="utf-8")) if leaks_file.exists() else None
    return {
        "run_dir": str(root),
        "config": config,
        "records": len(records),
        "duplicates": [list(k) for k in duplicate_keys(records)],
        "curve": curve,
        "group_curve": group_curve,
        "final": final,
        "skills": sorted(skills.values(), key=lambda e: e["skill"]),
        "growth": growth,
        "library_rounds": library_rounds,
        "tokens": tokens,
        "search": search,
        "total_tokens": sum(r["tokens"] for r in records),
        "total_cost_usd": _sum_cost(records),
        "leaks": leaks,
    }


def _library_utility(root: Path) -> dict[str, dict[str, Any]]:
    if not root.is_dir():
        return {}
    from memento_skills.stores.library import SkillLibrary

    return {
        s.name: {
            "version": s.version,
            "provenance": s.provenance,
            "successes": s.utility.successes,
            "failures": s.utility.failures,
        }
        for s in SkillLibrary(root).skills()
    }


# --- plots -----------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportError(
            'plots need matplotlib: pip install -e ".[evals]" (or pip install matplotlib)'
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(phase: str, split: str) -> str:
    return {"train": "train (within attempts)", "eval": f"{split} (1 attempt)"}.get(
        phase, f"{split} online"
    )


def library_size_figure(plt: Any, growth: Sequence[Mapping[str, Any]]) -> Any:
    """Skills on one panel, versions on another: the counts are often equal (every skill at
    version 1), and lines drawn on one axis would then hide each other."""
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    xs = [g["round"] for g in growth]
    top.plot(xs, [g["skills"] for g in growth], marker="o", linestyle="-", label="skills")
    top.plot(
        xs,
        [g["learned"] for g in growth],
        marker="s",
        linestyle="--",
        fillstyle="none",
        label="learned skills",
    )
    top.set(ylabel="skills", title="Library size per round")
    top.legend()
    bottom.plot(
        xs,
        [g["versions"] for g in growth],
        marker="^",
        linestyle=":",
        color="tab:green",
        label="versions (all skills)",
    )
    bottom.set(xlabel="round", ylabel="versions")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    bottom.legend()
    fig.tight_layout()
    return fig


def write_plots(data: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    plt = _pyplot()
    paths = {k: out_dir / v for k, v in PLOTS.items()}

    fig, ax = plt.subplots(figsize=(6, 4))
    for (phase, split), points in _by(data["curve"], "phase", "split").items():
        xs = [p["round"] for p in points]
        ys = [p["accuracy"] for p in points]
        ax.plot(xs, ys, marker="o", label=_label(phase, split))
        ax.fill_between(
            xs, [p["ci95"][0] for p in points], [p["ci95"][1] for p in points], alpha=0.15
        )
    ax.set(xlabel="round", ylabel="accuracy", ylim=(0, 1.02), title="Learning curve (95% CI)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["learning_curve"], dpi=110)
    plt.close(fig)

    fig = library_size_figure(plt, data["growth"])
    fig.savefig(paths["library_size"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for (phase,), points in _by(data["tokens"], "phase").items():
        ax.plot(
            [p["round"] for p in points],
            [p["tokens_per_task"] for p in points],
            marker="o",
            label=phase,
        )
    ax.set(xlabel="round", ylabel="tokens per task (mean)", title="Tokens per task")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["tokens_per_task"], dpi=110)
    plt.close(fig)
    return paths


# --- markdown --------------------------------------------------------------------------------


def _pct(a: Mapping[str, Any]) -> str:
    low, high = a["ci95"]
    return f"{a['accuracy']:.3f} | {low:.3f}–{high:.3f}"


def _cost(value: float | None) -> str:
    return "unknown (set MEMENTO_PRICES)" if value is None else f"${value:.4f}"


def _group_rounds(group_curve: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each group's correct/tasks per round: where learning helped, and where it did not."""
    lines: list[str] = []
    for (phase, split), entries in _by(group_curve, "phase", "split").items():
        rounds = sorted({e["round"] for e in entries})
        if len(rounds) < 2:
            continue
        cells = {(e["group"], e["round"]): e for e in entries}
        lines += [
            f"### {phase} / {split}, per group and round",
            "",
            "| group | " + " | ".join(f"round {r}" for r in rounds) + " |",
            "|---|" + "---:|" * len(rounds),
        ]
        for group in sorted({e["group"] for e in entries}):
            row = [
                f"{c['correct']}/{c['n']}" if (c := cells.get((group, r))) else "–" for r in rounds
            ]
            lines.append(f"| {group} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def _lift_cell(entry: Mapping[str, Any]) -> str:
    """`name lifecycle +0.50 (3/4 vs 1/4)` for one learned skill of a round snapshot."""
    value = entry.get("lift")
    if value is None:
        return f"{entry['lifecycle']} (lift not measured)"
    (wp, wt), (op, ot) = entry["with"], entry["without"]
    return f"{entry['lifecycle']} {value:+.2f} ({wp}/{wt} vs {op}/{ot})"


def _library_rounds(rounds: Sequence[Mapping[str, Any]]) -> list[str]:
    """The library after each round: skills per lifecycle state, retired, each learned lift."""
    if not rounds:
        return []
    states = list(rounds[0]["lifecycle"])
    lines = [
        "",
        "### Library after each round",
        "",
        "Lift: success with the skill minus success without it on its cases (with vs without); "
        "curation (read-write-optimize) retires what the evidence does not support.",
        "",
        "| round | skills | "
        + " | ".join(states)
        + " | retired in the round | curation seconds | curation tokens | learned skills |",
        "|---:|---:|" + "---:|" * len(states) + "---:|---:|---:|---|",
    ]
    for r in rounds:
        lifts = "; ".join(f"{n} {_lift_cell(e)}" for n, e in r["lifts"].items()) or "–"
        counts = " | ".join(str(r["lifecycle"].get(s, 0)) for s in states)
        took = "–" if r.get("curation_seconds") is None else f"{r['curation_seconds']:.1f}"
        spent = "–" if r.get("curation_tokens") is None else f"{r['curation_tokens']:,}"
        lines.append(
            f"| {r['round']} | {r['skills']} | {counts} | {r['retired']} | {took} | {spent} "
            f"| {lifts} |"
        )
    return lines


def render(data: Mapping[str, Any]) -> str:
    cfg = data["config"]
    lines = [
        f"# Run report: {Path(data['run_dir']).name}",
        "",
        f"- suite: `{json.dumps(cfg.get('suite'))}`",
        f"- mode: {cfg.get('mode') or '(evaluation only)'}",
        f"- models: `{json.dumps(cfg.get('models'))}`",
        f"- created: {cfg.get('created')}",
        f"- results: {data['records']} records, {len(data['duplicates'])} duplicated",
        "",
        "Train accuracy counts a task solved within its attempts (the judge's verdict lets a "
        "failed attempt retry); test tasks get one attempt, greedy routing and no writes. "
        "`correct` is the suite's own scorer.",
        "",
        "## Accuracy",
        "",
        "| phase | split | round | tasks | correct | accuracy | 95% CI |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for c in data["curve"]:
        lines.append(
            f"| {c['phase']} | {c['split']} | {c['round']} | {c['n']} | {c['correct']} | {_pct(c)} |"
        )
    lines += ["", "### Latest round, per group", ""]
    for f in data["final"]:
        lines.append(
            f"**{f['phase']} / {f['split']}, round {f['round']}**: {f['correct']}/{f['n']} = "
            f"{f['accuracy']:.3f} (95% CI {f['ci95'][0]:.3f}–{f['ci95'][1]:.3f})"
        )
        if f["groups"]:
            lines += [
                "",
                "| group | tasks | correct | accuracy | 95% CI |",
                "|---|---:|---:|---:|---|",
            ]
            for g, a in f["groups"].items():
                lines.append(f"| {g} | {a['n']} | {a['correct']} | {_pct(a)} |")
        lines.append("")
    lines += _group_rounds(data.get("group_curve") or [])
    lines += [
        f"![learning curve]({PLOTS['learning_curve']})",
        "",
        "## Per-skill utility",
        "",
        "Tasks routed to each skill (the skill of the last attempt) and how many were correct; "
        "`library` is the skill's own success/failure record from the write phase.",
        "",
        "| skill | train | test/eval | online | library (ok/fail, version, provenance) |",
        "|---|---|---|---|---|",
    ]

    def cell(entry: Mapping[str, Any], key: str) -> str:
        a = entry.get(key)
        return f"{a['correct']}/{a['n']}" if a else ""

    for s in data["skills"]:
        lib = s.get("library")
        lib_cell = (
            f"{lib['successes']}/{lib['failures']}, v{lib['version']}, {lib['provenance']}"
            if lib
            else "(not in the library)"
        )
        lines.append(
            f"| {s['skill']} | {cell(s, 'train')} | {cell(s, 'eval')} | {cell(s, 'online')} | {lib_cell} |"
        )
    lines += [
        "",
        "## Library growth",
        "",
        "| round | skills | learned | versions | accepted changes in the round |",
        "|---:|---:|---:|---:|---:|",
    ]
    for g in data["growth"]:
        lines.append(
            f"| {g['round']} | {g['skills']} | {g['learned']} | {g['versions']} | {g['accepted_changes']} |"
        )
    lines += _library_rounds(data.get("library_rounds") or [])
    lines += [
        "",
        f"![library size]({PLOTS['library_size']})",
        "",
        "## Tokens and cost",
        "",
        f"Total: {data['total_tokens']:,} tokens, cost {_cost(data['total_cost_usd'])}.",
        "",
        "| phase | round | tasks | tokens | tokens/task | seconds/task | scorer tokens | cost |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in data["tokens"]:
        lines.append(
            f"| {t['phase']} | {t['round']} | {t['tasks']} | {t['tokens']:,} | "
            f"{t['tokens_per_task']:.0f} | {t['seconds_per_task']:.1f} | {t['scorer_tokens']:,} | "
            f"{_cost(t['cost_usd'])} |"
        )
    lines += ["", f"![tokens per task]({PLOTS['tokens_per_task']})", ""]
    lines += _search_lines(data.get("search") or [])
    lines += ["## Leak check", ""]
    leaks = data["leaks"]
    if leaks is None:
        lines.append("Not run yet (`memento leaks RUN_DIR`).")
    elif not leaks["leaks"]:
        lines.append(
            f"No gold answer of the suite found in the library (checked {leaks['checked']})."
        )
    else:
        lines.append(f"**FAILED** ({leaks['checked']}): gold answers found in the library:")
        lines.append("")
        for leak in leaks["leaks"]:
            where = f"{leak['file']}:{leak['line']}" if leak.get("line") else leak["file"]
            how = "" if leak.get("form", "verbatim") == "verbatim" else f" ({leak['form']})"
            lines.append(f"- task {leak['task_id']} in `{where}`{how}")
    return "\n".join(lines) + "\n"


def _search_lines(search: Sequence[Mapping[str, Any]]) -> list[str]:
    """The learning-time search per phase and round: how often it ran, found, and its cost
    (docs/decisions.md#learning-search); nothing when no task was searched."""
    if not search:
        return []
    lines = [
        "## Learning-time search",
        "",
        "| phase | round | tasks | searched | found | tries/searched | tokens/searched | seconds/searched |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in search:
        lines.append(
            f"| {s['phase']} | {s['round']} | {s['tasks']} | {s['searched']} | {s['found']} | "
            f"{s['tries_per_searched']:.1f} | {s['tokens_per_searched']:.0f} | "
            f"{s['seconds_per_searched']:.1f} |"
        )
    return [*lines, ""]


def write_report(run_dir: Path | str) -> tuple[Path, dict[str, Any]]:
    """Write RUN_DIR/report.md and its PNG plots; returns the report path and the figures."""
    root = Path(run_dir)
    data = summarise(root)
    write_plots(data, root)
    path = root / "report.md"
    path.write_text(render(data), encoding="utf-8")
    return path, data


def compare(run_dirs: Sequence[Path | str]) -> str:
    """One markdown table over several runs (the paper's ablation table: one row per mode)."""
    lines = [
        "| run | mode | test accuracy | 95% CI | test per round | train per round | learned skills | tokens/task | cost |",
        "|---|---|---:|---|---|---|---:|---:|---|",
    ]
    for run_dir in run_dirs:
        data = summarise(run_dir)
        test = next(
            (f for f in data["final"] if f["phase"] == "eval" and f["split"] == "test"), None
        )
        per_round = {
            phase: " → ".join(
                f"{c['accuracy']:.2f}"
                for c in data["curve"]
                if c["phase"] == phase and c["split"] == split
            )
            for phase, split in (("eval", "test"), ("train", "train"))
        }
        learned = data["growth"][-1]["learned"] if data["growth"] else 0
        acc, ci = (
            (f"{test['accuracy']:.3f}", f"{test['ci95'][0]:.3f}–{test['ci95'][1]:.3f}")
            if test
            else ("–", "–")
        )
        lines.append(
            f"| {Path(run_dir).name} | {data['config'].get('mode') or 'eval only'} | {acc} | {ci} | "
            f"{per_round['eval'] or '–'} | {per_round['train'] or '–'} | {learned} | "
            f"{data['total_tokens'] / max(data['records'], 1):.0f} | {_cost(data['total_cost_usd'])} |"
        )
    return "\n".join(lines) + "\n"
