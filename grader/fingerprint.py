"""Fingerprints of what decides a grade besides the submission, to tell when a saved result
(a batch's per-student file, an interrupted grade's journal) still holds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from grader import __version__
from grader.course import Assignment
from grader.sandbox.limits import Limits


def checks_hash(assignment: Assignment) -> str:
    """SHA-256 of what decides a grade besides the submission: assignment.toml, every check,
    the reference solution (or a bundle's recorded answers)."""
    digest = hashlib.sha256()
    paths = [assignment.folder / "assignment.toml", assignment.reference_path]
    if assignment.checks_dir.is_dir():
        paths += sorted(
            p
            for p in assignment.checks_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def options_hash(seed: int, device: str, public_only: bool, limits: Limits) -> str:
    """SHA-256 of the options that change a grade."""
    options = {"seed": seed, "device": device, "public_only": public_only, **asdict(limits)}
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def grade_fingerprint(
    assignment: Assignment, seed: int, device: str, public_only: bool, limits: Limits
) -> dict[str, str]:
    """Everything but the submission that a saved result must match to still hold."""
    return {
        "checks_sha256": checks_hash(assignment),
        "grader_version": __version__,
        "options_sha256": options_hash(seed, device, public_only, limits),
    }
