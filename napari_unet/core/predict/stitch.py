"""Objects across blocks: the pairs of ids that touch across a block face (in any number
of dimensions), the union-find that joins the pieces of one object across block faces,
and the renumbering that keeps objects of at least ``min_size`` pixels. The 2D blocks
(:mod:`.block_tasks`) and the volume blocks (:mod:`.volume_block_tasks`) both join
their objects with these."""

from __future__ import annotations

import itertools

import numpy as np

from napari_unet.core.errors import InputError


def face_pairs(before: np.ndarray, after: np.ndarray,
               classes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Pairs (N, 2) of ids > 0 that touch across a face: ``before`` and ``after`` are the
    two layers of pixels (or voxels) on either side of it, of the same shape (a row in
    2D, a plane in 3D), each pixel touching those at most one step away along the face
    (diagonals included: 8-connectivity in 2D, 26 in 3D). With ``classes`` (the classes
    of both layers) only pixels of one class touch. Unique pairs, (id after, id before)."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"the layers of a face differ in shape: {before.shape}, {after.shape}")
    pairs = []
    for shift in itertools.product((-1, 0, 1), repeat=before.ndim):
        a = tuple(slice(max(0, s), n + min(0, s)) for s, n in zip(shift, before.shape))
        b = tuple(slice(max(0, -s), n + min(0, -s)) for s, n in zip(shift, before.shape))
        one, two = before[a], after[b]
        keep = (one > 0) & (two > 0)
        if classes is not None:
            keep &= classes[0][a] == classes[1][b]
        if keep.any():
            pairs.append(np.stack([two[keep], one[keep]], 1).astype(np.int64))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def join(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over ids 1..n: the component (0..) of each id 0..n, numbered in the
    order of each component's smallest id (id 0 alone first)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs):
        graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                           shape=(n + 1, n + 1))
    else:
        graph = coo_matrix((n + 1, n + 1), dtype=np.int8)
    return connected_components(graph, directed=False)[1].astype(np.int64)


def keep_numbered(component: np.ndarray, sizes: np.ndarray, min_size: int) -> np.ndarray:
    """For each id: 0 when its component is background (that of id 0) or smaller than
    ``min_size`` pixels in all, else the component's number among those kept (1..)."""
    total = np.bincount(component, weights=sizes, minlength=int(component.max()) + 1)
    keep = total >= max(1, min_size) if min_size > 1 else total > 0
    keep[component[0]] = False
    number = np.cumsum(keep) * keep
    if number.max(initial=0) >= 2**32:
        raise InputError("more than 4 billion objects: too many for 32-bit labels")
    return number[component].astype(np.uint32)
