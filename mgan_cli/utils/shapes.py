"""One shape check for the tensor boundaries: ``check_shape(x, "B N C H W")``.

A spec names each dimension: a name binds it (the same name twice must be the same size), a number fixes
it. Sizes already known are passed by name, so several tensors can be checked against each other::

    dims = check_shape(features, "B N C H W", "features")
    check_shape(alphas, "B N C", "alphas", B=dims["B"], N=dims["N"], C=dims["C"])

A mismatch raises ``ValueError`` naming the tensor, the expected shape (with the sizes known) and the
actual one: a wrong shape reaching these boundaries is a programming error, so it is not an mgan error.
"""

from __future__ import annotations

import torch


def check_shape(tensor: torch.Tensor, spec: str, name: str = "tensor", **known: int) -> dict[str, int]:
    """Check ``tensor.shape`` against ``spec`` (e.g. ``"B 3 H W"``); return the size of every named dimension.

    >>> check_shape(torch.zeros(2, 3, 8, 8), "B 3 R R")
    {'B': 2, 'R': 8}
    >>> check_shape(torch.zeros(2, 1, 8, 8), "B 3 H W", "images")
    Traceback (most recent call last):
    ...
    ValueError: images must be [B, 3, H, W], got [2, 1, 8, 8]
    """
    tokens = spec.split()
    shape = tuple(tensor.shape)
    sizes = dict(known)
    fits = len(shape) == len(tokens)
    if fits:
        for token, size in zip(tokens, shape, strict=True):
            expected = int(token) if token.isdigit() else sizes.setdefault(token, size)
            if size != expected:
                fits = False
                break
    if not fits:
        wanted = ", ".join(token if token.isdigit() or token not in known else f"{token}={known[token]}"
                           for token in tokens)
        raise ValueError(f"{name} must be [{wanted}], got {list(shape)}")
    return {token: size for token, size in sizes.items() if not token.isdigit()}
