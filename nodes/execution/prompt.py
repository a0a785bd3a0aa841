"""The executor's system prompt: the selected skill's SKILL.md, its files, the tools, the tips.

Only the selected skill goes into the prompt; its references and scripts are reached through
tools (progressive disclosure).
"""

from __future__ import annotations

from collections.abc import Sequence

from memento_skills.nodes.placeholders import instantiate
from memento_skills.stores.skill import Skill

SYSTEM_PROMPT = """You are a careful agent that solves one task with tools.

{skill_section}
Tools: {tool_names}. Every tool runs inside your private workspace folder.
When you know the answer, call submit_answer with the answer only, formatted as the task asks
(a bare number without units unless asked; lists comma-separated; no explanation).
If you cannot use tools, reply with the final answer only.{tips_section}"""

SKILL_SECTION = """Use this skill ({name}, version {version}):
<skill>
{body}
</skill>
{files_line}"""

FILLED_LINE = (
    "The skill's placeholders N1, N2, ... are filled in with this task's numbers in the order "
    "they first appear in it; check that each value is in the right place.\n"
)

UNTRUSTED_SCRIPTS_LINE = (
    "This skill is untrusted: its scripts ({scripts}) run only if the operator approves "
    "each one, and their source is not shown.\n"
)

NO_SKILL_SECTION = "No skill in your library fits this task; solve it from first principles.\n"


def system_prompt(
    skill: Skill | None,
    *,
    files: Sequence[str],
    untrusted_scripts: Sequence[str],
    tips: Sequence[str],
    tool_names: Sequence[str],
    task: str = "",
) -> str:
    """The prompt for one attempt: `files` are the skill's (listed for read_skill_file), the
    `untrusted_scripts` those that run only if the operator approves each one; the body's
    placeholders N1, N2, ... show `task`'s numbers."""
    if skill is not None:
        files_line = (
            f"Files of this skill (read with read_skill_file, run scripts with run_skill_script): "
            f"{', '.join(files)}\n"
            if files
            else ""
        )
        if untrusted_scripts:
            files_line += UNTRUSTED_SCRIPTS_LINE.format(scripts=", ".join(untrusted_scripts))
        body, filled = instantiate(skill.body, task)
        if filled:
            files_line = FILLED_LINE + files_line
        section = SKILL_SECTION.format(
            name=skill.name, version=skill.version, body=body, files_line=files_line
        )
    else:
        section = NO_SKILL_SECTION
    tips_section = (
        "\n\nLessons from earlier attempts at this task:\n" + "\n".join(f"- {t}" for t in tips)
        if tips
        else ""
    )
    return SYSTEM_PROMPT.format(
        skill_section=section, tool_names=", ".join(tool_names), tips_section=tips_section
    )
