"""Task suites: where eval tasks come from, how they split into train and test, how they are scored.

Every suite yields `Task`s (id, question, attachments, gold answer, metadata with a `level` or
`subject` group) and scores an answer with its own rule:

- `gaia`  — the user's copy of GAIA (`metadata.jsonl` with the attachment files beside it);
  GAIA's normalisation (numbers, comma/semicolon lists, strings) via `scorers.exact_match`.
- `hle`   — the user's copy of Humanity's Last Exam (jsonl or parquet), text-only questions; the
  judge model extracts the final answer and says yes/no (`hle_judge.py`), as HLE's own grader does.
- `reasoning-gym` — tasks generated offline by the `reasoning-gym` package, scored by each
  generator's own `score_answer`; the development suite that needs no download.
- `jsonl` — a user's file of `{"id", "question", "answer"}` lines, scored like GAIA.

Splits never overlap by construction: file suites shuffle their sorted ids with a fixed seed
(stratified by group) and cut; reasoning-gym draws train and test from seed streams a million
items apart and drops any train item whose question also appears in test. With GAIA's 165
validation tasks the default cut is the paper's 100 train / 65 test, the same for everyone
who uses the same seed (the paper's own task ids were not published).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento_skills.nodes.scoring import Score, exact_match

SPLITS = ("train", "test")
SUITE_NAMES = ("gaia", "hle", "reasoning-gym", "jsonl")
PAPER_TRAIN_FRACTION = 100 / 165
"""GAIA validation has 165 tasks; the Memento-Skills paper learns on 100 and tests on 65."""
DEFAULT_SEED = 0
RG_TEST_SEED_OFFSET = 1_000_000
"""reasoning-gym seeds item i with `seed + i`: test items start a million seeds away from train."""
RG_DEFAULT_TRAIN = 20
RG_DEFAULT_TEST = 20


class SuiteError(ValueError):
    """A suite cannot be loaded as asked: the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Task:
    """One eval item. `answer` is the gold: only the judge and the suite's scorer may read it."""

    id: str
    question: str
    answer: str
    attachments: tuple[Path, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str | None:
        """The level (GAIA) or subject (HLE, reasoning-gym generator) the report groups by."""
        value = self.metadata.get("level", self.metadata.get("subject"))
        return None if value is None or value == "" else str(value)

    def prompt(self) -> str:
        """The task as the agent sees it: attachments are named and found in its workspace."""
        if not self.attachments:
            return self.question
        names = ", ".join(p.name for p in self.attachments)
        return (
            f"{self.question}\n\nAttached file(s): {names} — in your workspace folder; "
            "read them with the file tools or from Python by that name."
        )


Judge = Any
"""A chat model the suite may consult (HLE); None where scoring is deterministic."""


class Suite:
    """Base: loads tasks once, splits them, counts them. Subclasses fill `_load` and `score`."""

    name: str = ""
    group_key: str = "subject"
    needs_judge = False
    web_search = False

    def __init__(self) -> None:
        self._splits: dict[str, list[Task]] | None = None
        self.skipped: dict[str, int] = {}

    # subclasses ------------------------------------------------------------------------------
    def _load(self) -> dict[str, list[Task]]:
        raise NotImplementedError

    def score(self, task: Task, answer: str | None, *, judge: Judge = None) -> Score:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """What identifies this suite's tasks and splits; a run dir refuses another spec."""
        raise NotImplementedError

    # shared ----------------------------------------------------------------------------------
    def splits(self) -> dict[str, list[Task]]:
        if self._splits is None:
            self._splits = self._load()
            _check_disjoint(self._splits)
        return self._splits

    def tasks(self, split: str) -> list[Task]:
        splits = self.splits()
        if split not in splits:
            raise SuiteError(
                f"suite {self.name} has no split {split!r}; splits: {', '.join(splits)}"
            )
        return splits[split]

    def all_tasks(self) -> list[Task]:
        return [t for tasks in self.splits().values() for t in tasks]

    def counts(self) -> dict[str, Any]:
        """{"total", "splits": {name: n}, "groups": {group: n}, "skipped": {why: n}}."""
        splits = self.splits()
        groups = Counter(t.group or "(none)" for t in self.all_tasks())
        return {
            "suite": self.name,
            "total": sum(len(v) for v in splits.values()),
            "splits": {k: len(v) for k, v in splits.items()},
            "group_key": self.group_key,
            "groups": dict(sorted(groups.items())),
            "split_groups": {
                k: dict(sorted(Counter(t.group or "(none)" for t in v).items()))
                for k, v in splits.items()
            },
            "skipped": dict(self.skipped),
        }


def _check_disjoint(splits: Mapping[str, Sequence[Task]]) -> None:
    seen: dict[str, str] = {}
    for split, tasks in splits.items():
        for task in tasks:
            if task.id in seen:
                where = "twice in" if seen[task.id] == split else f"in both {seen[task.id]} and"
                raise SuiteError(f"task id {task.id!r} appears {where} {split}; ids must be unique")
            seen[task.id] = split


def stratified_split(
    tasks: Sequence[Task], train_fraction: float, seed: int
) -> dict[str, list[Task]]:
    """Cut tasks into train/test, each group in proportion, reproducibly from `seed`.

    Sorting ids first makes the cut independent of file order; the largest-remainder rule makes
    the train count exactly round(n * fraction) (100 of GAIA's 165 at the paper's fraction).
    """
    if not 0.0 < train_fraction < 1.0:
        raise SuiteError(f"train fraction must be between 0 and 1, not {train_fraction}")
    groups: dict[str, list[Task]] = {}
    for task in sorted(tasks, key=lambda t: t.id):
        groups.setdefault(task.group or "", []).append(task)
    target = round(len(tasks) * train_fraction)
    quotas = {g: len(v) * train_fraction for g, v in groups.items()}
    counts = {g: int(q) for g, q in quotas.items()}
    by_remainder = sorted(groups, key=lambda g: (-(quotas[g] - counts[g]), g))
    for g in by_remainder[: target - sum(counts.values())]:
        counts[g] += 1
    rng = random.Random(seed)
    train: list[Task] = []
    test: list[Task] = []
    for g in sorted(groups):
        members = list(groups[g])
        rng.shuffle(members)
        train += members[: counts[g]]
        test += members[counts[g] :]
    rng.shuffle(train)
    rng.shuffle(test)
    return {"train": train, "test": test}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SuiteError(f"{path}:{number} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise SuiteError(f"{path}:{number} must be a JSON object, not {type(row).__name__}")
            rows.append(row)
    return rows


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SuiteError(
            f"{path} is parquet, which needs pyarrow: pip install pyarrow "
            "(or convert the file to jsonl)"
        ) from None
    return [dict(row) for row in pq.read_table(path).to_pylist()]


def _need_path(name: str, path: Path | str | None, what: str) -> Path:
    if path is None:
        raise SuiteError(f"suite {name} needs --path: {what}")
    p = Path(path).expanduser()
    if not p.exists():
        raise SuiteError(f"{p} does not exist; --path must point at {what}")
    return p


def _gold(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "?") else text


# --- GAIA ------------------------------------------------------------------------------------


class GaiaSuite(Suite):
    """The user's GAIA copy: a folder with metadata.jsonl and the attachments beside it."""

    name = "gaia"
    group_key = "level"
    web_search = True

    def __init__(
        self,
        path: Path | str | None,
        *,
        seed: int = DEFAULT_SEED,
        train_fraction: float = PAPER_TRAIN_FRACTION,
    ):
        super().__init__()
        p = _need_path(self.name, path, "GAIA's metadata.jsonl or the folder holding it")
        self.metadata_file = p / "metadata.jsonl" if p.is_dir() else p
        if not self.metadata_file.is_file():
            raise SuiteError(
                f"{self.metadata_file} not found; point --path at the GAIA split folder "
                "(e.g. 2023/validation) that holds metadata.jsonl and the attachment files"
            )
        self.seed, self.train_fraction = seed, train_fraction

    def spec(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "path": str(self.metadata_file.resolve()),
            "seed": self.seed,
            "train_fraction": self.train_fraction,
        }

    def _load(self) -> dict[str, list[Task]]:
        folder = self.metadata_file.parent
        tasks: list[Task] = []
        hidden = 0
        for number, row in enumerate(_read_jsonl(self.metadata_file), 1):
            task_id = row.get("task_id")
            question = row.get("Question")
            if not task_id or not question:
                raise SuiteError(
                    f"{self.metadata_file}:{number} lacks task_id or Question: is this GAIA's "
                    "metadata.jsonl?"
                )
            gold = _gold(row.get("Final answer"))
            if gold is None:
                hidden += 1
                continue
            attachments: tuple[Path, ...] = ()
            file_name = str(row.get("file_name") or "").strip()
            if file_name:
                attachment = folder / file_name
                if not attachment.is_file():
                    raise SuiteError(
                        f"task {task_id} names the attachment {file_name}, but {attachment} does "
                        "not exist; keep the attachment files beside metadata.jsonl"
                    )
                attachments = (attachment,)
            tasks.append(
                Task(
                    id=str(task_id),
                    question=str(question),
                    answer=gold,
                    attachments=attachments,
                    metadata={"level": str(row.get("Level", "")).strip()},
                )
            )
        if hidden:
            self.skipped["no gold answer"] = hidden
        if not tasks:
            raise SuiteError(
                f"{self.metadata_file} has no task with a gold answer (GAIA's test set hides "
                "them as '?'): use the validation set, whose answers are public"
            )
        return stratified_split(tasks, self.train_fraction, self.seed)

    def score(self, task: Task, answer: str | None, *, judge: Judge = None) -> Score:
        if not answer or not answer.strip():
            return Score(False, 0.0, "no-answer")
        ok = exact_match(answer, task.answer)
        return Score(ok, float(ok), "exact")


# --- Humanity's Last Exam --------------------------------------------------------------------


class HleSuite(Suite):
    """The user's HLE copy (jsonl or parquet, a file or a folder of them), text-only questions."""

    name = "hle"
    group_key = "subject"
    needs_judge = True
    ANSWER_TYPES = ("exactMatch", "multipleChoice")

    def __init__(
        self,
        path: Path | str | None,
        *,
        seed: int = DEFAULT_SEED,
        train_fraction: float = PAPER_TRAIN_FRACTION,
    ):
        super().__init__()
        p = _need_path(self.name, path, "HLE's .jsonl or .parquet file, or a folder of them")
        files = sorted(
            f for f in (p.rglob("*") if p.is_dir() else [p]) if f.suffix in (".jsonl", ".parquet")
        )
        if not files:
            raise SuiteError(f"no .jsonl or .parquet file at {p}; point --path at HLE's data")
        self.files = files
        self.seed, self.train_fraction = seed, train_fraction

    def spec(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "path": [str(f.resolve()) for f in self.files],
            "seed": self.seed,
            "train_fraction": self.train_fraction,
        }

    def _load(self) -> dict[str, list[Task]]:
        rows: list[dict[str, Any]] = []
        for f in self.files:
            rows += _read_parquet(f) if f.suffix == ".parquet" else _read_jsonl(f)
        tasks: list[Task] = []
        skipped: Counter[str] = Counter()
        for row in rows:
            if not row.get("id") or not row.get("question") or "answer" not in row:
                raise SuiteError(
                    f"an HLE row lacks id, question or answer (keys: {sorted(row)[:8]}): is "
                    "--path HLE's data?"
                )
            if row.get("image"):
                skipped["image"] += 1
                continue
            answer_type = str(row.get("answer_type") or "exactMatch")
            if answer_type not in self.ANSWER_TYPES:
                skipped[f"answer type {answer_type}"] += 1
                continue
            gold = _gold(row.get("answer"))
            if gold is None:
                skipped["no gold answer"] += 1
                continue
            tasks.append(
                Task(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    answer=gold,
                    metadata={
                        "subject": str(row.get("category") or row.get("raw_subject") or ""),
                        "answer_type": answer_type,
                    },
                )
            )
        self.skipped = dict(skipped)
        if not tasks:
            raise SuiteError(f"no text-only HLE question in {', '.join(map(str, self.files))}")
        return stratified_split(tasks, self.train_fraction, self.seed)

    def score(self, task: Task, answer: str | None, *, judge: Judge = None) -> Score:
        from memento_skills.evals.hle_judge import judge_answer

        if not answer or not answer.strip():
            return Score(False, 0.0, "no-answer")
        if exact_match(answer, task.answer):  # an identical answer needs no model to accept
            return Score(True, 1.0, "exact", extracted=answer)
        if judge is None:
            raise SuiteError("the hle suite scores with a judge model; none was given")
        return judge_answer(judge, task.question, answer, task.answer)


# --- reasoning-gym ---------------------------------------------------------------------------


def _rg() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise SuiteError(
            "the reasoning-gym suite needs the reasoning-gym package: "
            'pip install -e ".[evals]" (or pip install reasoning-gym)'
        ) from None
    return reasoning_gym


def reasoning_gym_generators() -> list[str]:
    return sorted(_rg().factory.DATASETS)


class ReasoningGymSuite(Suite):
    """Seeded, offline tasks from named reasoning-gym generators, scored by their own scorers.

    `train` and `test` are totals over the generators, dealt round-robin so every prefix of a
    split mixes them; a generator's items are the same whatever the totals.
    """

    name = "reasoning-gym"
    group_key = "subject"

    def __init__(
        self,
        generators: Sequence[str],
        *,
        train: int = RG_DEFAULT_TRAIN,
        test: int = RG_DEFAULT_TEST,
        seed: int = DEFAULT_SEED,
    ):
        super().__init__()
        if not generators:
            raise SuiteError(
                "the reasoning-gym suite needs --generators, e.g. --generators products,chain_sum; "
                "known: " + ", ".join(reasoning_gym_generators())
            )
        known = set(reasoning_gym_generators())
        unknown = [g for g in generators if g not in known]
        if unknown:
            raise SuiteError(
                f"unknown reasoning-gym generator(s) {', '.join(unknown)}; known: "
                + ", ".join(sorted(known))
            )
        if train < 0 or test < 0:
            raise SuiteError("--train and --test must be 0 or more")
        self.generators = list(dict.fromkeys(generators))
        self.train, self.test, self.seed = train, test, seed
        self._entries: dict[str, tuple[Any, dict[str, Any]]] = {}

    def spec(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "generators": self.generators,
            "train": self.train,
            "test": self.test,
            "seed": self.seed,
        }

    @staticmethod
    def _share(total: int, parts: int) -> list[int]:
        return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]

    def _draw(
        self, generator: str, split: str, count: int, seed: int, exclude: set[str]
    ) -> list[Task]:
        rg = _rg()
        tasks: list[Task] = []
        seen = set(exclude)
        size = count
        attempts = 0
        while len(tasks) < count:
            attempts += 1
            if attempts > 4:
                raise SuiteError(
                    f"reasoning-gym generator {generator} gave only {len(tasks)} distinct "
                    f"{split} questions of {count} asked; ask for fewer or add generators"
                )
            size = size * 2 + 8 if attempts > 1 else size
            dataset = rg.create_dataset(generator, size=size, seed=seed)
            tasks, seen = [], set(exclude)
            for index in range(size):
                entry = dataset[index]
                question = str(entry["question"])
                if question in seen:
                    continue
                seen.add(question)
                task_id = f"{generator}-{split}-{index}"
                self._entries[task_id] = (dataset, entry)
                tasks.append(
                    Task(
                        id=task_id,
                        question=question,
                        answer=str(entry["answer"]),
                        metadata={"subject": generator},
                    )
                )
                if len(tasks) == count:
                    break
        return tasks

    def _load(self) -> dict[str, list[Task]]:
        n = len(self.generators)
        train: list[list[Task]] = []
        test: list[list[Task]] = []
        for generator, n_train, n_test in zip(
            self.generators, self._share(self.train, n), self._share(self.test, n), strict=True
        ):
            test_tasks = self._draw(
                generator, "test", n_test, self.seed + RG_TEST_SEED_OFFSET, set()
            )
            test.append(test_tasks)
            train.append(
                self._draw(generator, "train", n_train, self.seed, {t.question for t in test_tasks})
            )
        return {"train": _round_robin(train), "test": _round_robin(test)}

    def score(self, task: Task, answer: str | None, *, judge: Judge = None) -> Score:
        if not answer or not answer.strip():
            return Score(False, 0.0, "no-answer")
        if task.id not in self._entries:
            self.splits()
        dataset, entry = self._entries[task.id]
        try:
            value = float(dataset.score_answer(answer, entry))
        except Exception as e:  # a generator's scorer choking on odd text is a wrong answer
            return Score(False, 0.0, f"reasoning-gym-error: {type(e).__name__}")
        return Score(value >= 1.0, value, "reasoning-gym")


def _round_robin(lists: Sequence[Sequence[Task]]) -> list[Task]:
    out: list[Task] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


# --- a user's jsonl --------------------------------------------------------------------------


class JsonlSuite(Suite):
    """A user's file of {"id", "question", "answer"} lines (optional "level" or "subject")."""

    name = "jsonl"

    def __init__(
        self,
        path: Path | str | None,
        *,
        seed: int = DEFAULT_SEED,
        train_fraction: float = PAPER_TRAIN_FRACTION,
    ):
        super().__init__()
        self.file = _need_path(self.name, path, 'a .jsonl file of {"id","question","answer"}')
        if not self.file.is_file():
            raise SuiteError(f"{self.file} is not a file; --path must name a .jsonl file")
        self.seed, self.train_fraction = seed, train_fraction

    def spec(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "path": str(self.file.resolve()),
            "seed": self.seed,
            "train_fraction": self.train_fraction,
        }

    def _load(self) -> dict[str, list[Task]]:
        tasks: list[Task] = []
        for number, row in enumerate(_read_jsonl(self.file), 1):
            missing = [k for k in ("id", "question", "answer") if row.get(k) in (None, "")]
            if missing:
                raise SuiteError(
                    f"{self.file}:{number} lacks {', '.join(missing)}; every line needs "
                    '{"id", "question", "answer"}'
                )
            meta = {k: row[k] for k in ("level", "subject") if row.get(k) not in (None, "")}
            tasks.append(
                Task(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    answer=str(row["answer"]).strip(),
                    metadata=meta,
                )
            )
        if not tasks:
            raise SuiteError(f"{self.file} holds no tasks")
        if any("level" in t.metadata for t in tasks):
            self.group_key = "level"
        _check_disjoint({"file": tasks})
        return stratified_split(tasks, self.train_fraction, self.seed)

    def score(self, task: Task, answer: str | None, *, judge: Judge = None) -> Score:
        if not answer or not answer.strip():
            return Score(False, 0.0, "no-answer")
        ok = exact_match(answer, task.answer)
        return Score(ok, float(ok), "exact")


# --- by name ---------------------------------------------------------------------------------


def load_suite(
    name: str,
    *,
    path: Path | str | None = None,
    generators: Iterable[str] | str | None = None,
    seed: int = DEFAULT_SEED,
    train: int | None = None,
    test: int | None = None,
    train_fraction: float | None = None,
) -> Suite:
    """A suite by its CLI name; `train`/`test` size reasoning-gym's generated splits."""
    fraction = PAPER_TRAIN_FRACTION if train_fraction is None else train_fraction
    file_suites: dict[str, Callable[..., Suite]] = {
        "gaia": GaiaSuite,
        "hle": HleSuite,
        "jsonl": JsonlSuite,
    }
    if name in file_suites:
        return file_suites[name](path, seed=seed, train_fraction=fraction)
    if name == "reasoning-gym":
        gens = generators.split(",") if isinstance(generators, str) else list(generators or [])
        return ReasoningGymSuite(
            [g.strip() for g in gens if g.strip()],
            train=RG_DEFAULT_TRAIN if train is None else train,
            test=RG_DEFAULT_TEST if test is None else test,
            seed=seed,
        )
    raise SuiteError(f"unknown suite {name!r}; suites: {', '.join(SUITE_NAMES)}")


def suite_from_spec(spec: Mapping[str, Any]) -> Suite:
    """Rebuild the suite a run dir was made with (its config.json), for eval, report and leaks."""
    name = spec["suite"]
    if name == "reasoning-gym":
        return ReasoningGymSuite(
            spec["generators"], train=spec["train"], test=spec["test"], seed=spec["seed"]
        )
    path = spec["path"]
    if name == "hle":
        paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
        suite = HleSuite(paths[0], seed=spec["seed"], train_fraction=spec["train_fraction"])
        suite.files = paths
        return suite
    return load_suite(name, path=path, seed=spec["seed"], train_fraction=spec["train_fraction"])
