"""The README's "Embedding in your own LangGraph app" snippet runs as written, on its endpoint only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.scripted_endpoint import forced_tool, scripted_endpoint

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Embedding in your own LangGraph app", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no python block in the README's embedding section"
    return found.group(1)


def reply(request: dict[str, Any]) -> str | dict[str, Any]:
    tool = forced_tool(request)
    if tool == "python":
        return {"tool": "python", "arguments": {"code": "print(6 * 7)"}}
    if tool == "submit_answer":
        return {"tool": "submit_answer", "arguments": {"answer": "42"}}
    return "42"


def test_the_embedding_snippet_runs_against_its_endpoint(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MEMENTO_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "MEMENTO_MODEL")
    }
    with scripted_endpoint(reply) as (url, seen):
        proc = subprocess.run(
            [sys.executable, "-c", snippet()],
            env={
                **env,
                "ENDPOINT": url,
                "MEMENTO_HOME": str(tmp_path / "home"),
                # any role falling back to the offline SmolLM2 server would fail on this
                "MEMENTO_GGUF": str(tmp_path / "no-such-model.gguf"),
                "ORT_DISABLE_TELEMETRY": "1",
                "ANONYMIZED_TELEMETRY": "False",
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == "42 True"
    assert seen and all(r.get("model") == "scripted" for r in seen)
    assert "llama" not in proc.stderr.lower()
