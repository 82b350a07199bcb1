"""Readers for the weight-file formats people hold (each registers itself in ``generators.READERS``)."""
