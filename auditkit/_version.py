"""The version of auditkit: its one source (pyproject.toml reads it through ``[tool.setuptools.dynamic]``)."""

__version__ = "0.1.0"
