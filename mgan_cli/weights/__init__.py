"""Where weights come from: the store (fetching, converting, verifying), safe readers and formats, loading,
importing.

Importing any module of this package registers the generator structure check with the store (loading.py), so
that verifying a generator file never depends on which module happened to be imported first.
"""

from mgan_cli.weights import loading as _loading  # noqa: F401  (registers STRUCTURE_CHECKS["generator"])
