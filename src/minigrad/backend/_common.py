"""What both backends share: the shape rule of binary ops, with the error users see."""

from __future__ import annotations


def broadcast_shape(op: str, sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcast of two shapes, or a ValueError naming the op and both shapes."""
    if sa == sb:
        return sa
    n = max(len(sa), len(sb))
    pa, pb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    out = []
    for x, y in zip(pa, pb):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{op}: shapes {sa} and {sb} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)
