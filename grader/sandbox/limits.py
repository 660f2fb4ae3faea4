"""Resource limits for a submission's worker, as read from `assignment.toml`'s [limits]."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Limits:
    """How much time, memory and other resources student code may use.

    `memory_kind` is "as" (address space: right for NumPy) or "data" (heap only: CUDA maps
    huge address ranges and breaks under RLIMIT_AS). `harden` applies the OS protections of
    `grader.sandbox.hardening` (filesystem, network, signals) where the machine has them;
    `scratch_mb` sizes the worker's private tmpfs (its /tmp, /dev/shm and submission copy).
    `max_message_mb` caps one message from the worker (a reply, with its arrays): set it from
    the assignment's largest legitimate reply, with room to spare; a larger one fails its
    check unread, so a submission cannot make the grader hold gigabytes.
    """

    call_timeout_s: float = 10.0
    import_timeout_s: float = 20.0
    total_timeout_s: float = 300.0
    memory_mb: int = 2048
    memory_kind: str = "as"
    cpu_s: int = 600
    file_size_mb: int = 16
    open_files: int = 256
    processes: int = 512
    output_kb: int = 64
    scratch_mb: int = 256
    max_message_mb: float = 64.0
    harden: bool = True

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Limits:
        """Build from a TOML table; unknown keys are an error, so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(unknown)}")
        if data.get("memory_kind", "as") not in ("as", "data"):
            raise ValueError("memory_kind must be 'as' or 'data'")
        message_mb = data.get("max_message_mb", 1)
        if (
            isinstance(message_mb, bool)
            or not isinstance(message_mb, int | float)
            or message_mb <= 0
        ):
            raise ValueError("max_message_mb must be a positive number")
        return cls(**data)

    def with_overrides(self, **changes: Any) -> Limits:
        """A copy with some limits changed (ignores None)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * (1 << 20))

    def for_worker(self) -> dict[str, Any]:
        """The limits the worker applies to itself."""
        return asdict(self)
