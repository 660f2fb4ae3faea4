"""dl-grader: grade deep-learning exercises against PyTorch references, student code sandboxed.

The library API is `grader.runner.grade` (one submission -> `Grade`); the `grade` command in
`grader.cli` is a thin layer over it.
"""

__version__ = "0.1.0"
