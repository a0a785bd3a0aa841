"""What a sandboxed run may use (SandboxLimits) and the errors the sandbox raises."""

from __future__ import annotations

from dataclasses import dataclass


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as asked (bad workspace, unknown isolation level)."""


class PathEscapeError(ValueError):
    """A path given by the model would reach outside the folder it is confined to."""


@dataclass(frozen=True)
class SandboxLimits:
    """Hard limits for one run; every run of the agent's code gets all of them."""

    wall_s: float = 30
    cpu_s: int = 30
    memory_mb: int = 1024
    output_bytes: int = 64_000
    file_mb: int = 64
    max_processes: int = 64
    disk_mb: int = 128
    """The most the whole workspace may hold on disk (files the run grew past it are deleted)."""
    network: bool = False

    def __post_init__(self) -> None:
        names = ("wall_s", "cpu_s", "memory_mb", "output_bytes", "file_mb", "max_processes")
        for name in (*names, "disk_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(
                    f"SandboxLimits.{name} must be a positive number, got {value!r}; "
                    f"pass e.g. SandboxLimits({name}={getattr(SandboxLimits, name)})"
                )
