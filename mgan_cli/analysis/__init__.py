"""The paper's layer analysis: one run per (layer, codes) pair, its plots, page and contributions."""
