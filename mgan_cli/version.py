"""The version of mgan (one place; the package and the report headers read it)."""

__version__ = "0.1.0"
