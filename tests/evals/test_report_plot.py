"""library_size.png: the skills and versions series stay visible when their counts are equal."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from memento_skills.evals.report import library_size_figure


def test_equal_skills_and_versions_are_drawn_apart() -> None:
    # every skill at version 1: skills == versions each round (the case that hid one line)
    growth = [
        {"round": 0, "skills": 5, "learned": 0, "versions": 5},
        {"round": 1, "skills": 6, "learned": 1, "versions": 6},
        {"round": 2, "skills": 6, "learned": 1, "versions": 6},
    ]
    fig = library_size_figure(plt, growth)
    try:
        lines = {line.get_label(): (ax, line) for ax in fig.axes for line in ax.get_lines()}
        assert set(lines) == {"skills", "learned skills", "versions (all skills)"}
        skills_ax, skills = lines["skills"]
        versions_ax, versions = lines["versions (all skills)"]
        learned_ax, learned = lines["learned skills"]
        assert list(skills.get_ydata()) == [5, 6, 6] and list(versions.get_ydata()) == [5, 6, 6]
        assert skills_ax is not versions_ax  # equal values on one axis would overlap exactly
        assert learned_ax is skills_ax
        # the two series that share a panel differ in line style and marker
        assert skills.get_linestyle() != learned.get_linestyle()
        assert skills.get_marker() != learned.get_marker()
        assert list(versions_ax.get_xticks()) == list(skills_ax.get_xticks())  # shared rounds
    finally:
        plt.close(fig)
