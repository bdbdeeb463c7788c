"""Segmentation quality: per-class IoU and Dice, instance F1 and average precision at
IoU 0.5 (one-to-one matching), pixel error and Rand error.

numpy and scikit-image only. Label images follow the prediction convention
(0 = background, 1..K-1 = classes) or hold instances (0 = background, 1..N objects).
"""

from __future__ import annotations

import numpy as np

from napari_unet.core.errors import InputError


def _check(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {truth.shape}")
    return pred, truth


def class_scores(pred: np.ndarray, truth: np.ndarray, n_classes: int | None = None) -> dict:
    """IoU and Dice per class (0 = background included), from one confusion matrix."""
    pred, truth = _check(pred, truth)
    k = int(max(pred.max(initial=0), truth.max(initial=0))) + 1
    k = max(k, n_classes or 0)
    cm = np.bincount(truth.ravel().astype(np.int64) * k + pred.ravel().astype(np.int64),
                     minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    return {"iou": [None if np.isnan(v) else float(v) for v in iou],
            "dice": [None if np.isnan(v) else float(v) for v in dice]}


def foreground_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of everything that is not background."""
    pred, truth = _check(pred, truth)
    p, t = pred > 0, truth > 0
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else np.count_nonzero(p & t) / union


def pixel_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pixels whose class differs (ISBI 2012's pixel error on binary maps)."""
    pred, truth = _check(pred, truth)
    return float(np.mean(pred != truth))


def rand_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """1 - adapted Rand F-score (ISBI 2012), on the connected regions of each 2D slice.

    For a membrane map (1 = membrane), the regions are the connected cells (0 pixels);
    for instance labels they are the objects. Averaged over slices.
    """
    from skimage.measure import label
    from skimage.metrics import adapted_rand_error

    pred, truth = _check(pred, truth)
    if pred.ndim == 2:
        pred, truth = pred[None], truth[None]
    errors = []
    for p, t in zip(pred, truth):
        # Membrane maps: score the cells between membranes.
        if p.max() <= 1 and t.max() <= 1:
            p, t = label(p == 0, connectivity=1), label(t == 0, connectivity=1)
        p, t = sequential_ids(p), sequential_ids(t)
        err, _, _ = adapted_rand_error(t.astype(np.int64), p.astype(np.int64))
        errors.append(float(err))
    return float(np.mean(errors))


def match_instances(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5,
                    volume: bool = False) -> dict:
    """True positives, false positives and false negatives at an IoU threshold.

    With a threshold of 0.5 or more, each object can match at most one other, so the
    matching is one-to-one by construction. Stacks are matched slice by slice; with
    ``volume`` a (Z, Y, X) array is one volume of 3D objects (IoU of voxels).
    """
    pred, truth = _check(pred, truth)
    if threshold < 0.5:
        raise ValueError("one-to-one matching needs an IoU threshold of at least 0.5")
    if pred.ndim == 2 or volume:
        pred, truth = pred[None], truth[None]
    tp = fp = fn = 0
    for p, t in zip(pred, truth):
        # ids of any integer type (uint64 ones too, which numpy neither counts nor mixes
        # with int64 as indices) as small int64 ids
        p, t = _as_index(sequential_ids(p)), _as_index(sequential_ids(t))
        n_p = int(np.count_nonzero(np.bincount(p.ravel())[1:]))
        n_t = int(np.count_nonzero(np.bincount(t.ravel())[1:]))
        if n_p == 0 or n_t == 0:
            fp, fn = fp + n_p, fn + n_t
            continue
        # Overlaps of object pairs, from the pixels where both have an object: memory in
        # the number of pixels, never in the number of objects squared.
        area_p = np.bincount(p.ravel())
        area_t = np.bincount(t.ravel())
        both = (p > 0) & (t > 0)
        kt = np.int64(t.max()) + 1
        pairs, inter = np.unique(p[both].astype(np.int64) * kt + t[both], return_counts=True)
        ip, it = pairs // kt, pairs % kt
        iou = inter / (area_p[ip] + area_t[it] - inter)
        m = int(np.count_nonzero(iou > threshold))
        tp, fp, fn = tp + m, fp + n_p - m, fn + n_t - m
    return {"tp": tp, "fp": fp, "fn": fn}


def _as_index(labels: np.ndarray) -> np.ndarray:
    """Small non-negative ids (from :func:`sequential_ids`) as int64."""
    return labels.astype(np.int64, copy=False)


def sequential_ids(labels: np.ndarray) -> np.ndarray:
    """``labels`` with ids 1..N when they are spread wide (ids near 4e9 take no memory
    in proportion to their value); small ids are returned as they are."""
    labels = np.asarray(labels)
    if labels.size == 0 or int(labels.max()) < 2**16:
        return labels
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)[0]


def instance_scores(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5,
                    volume: bool = False) -> dict:
    """F1 and average precision (TP / (TP + FP + FN), as in DSB 2018) at one IoU threshold
    (of 3D objects with ``volume``)."""
    m = match_instances(pred, truth, threshold, volume)
    tp, fp, fn = m["tp"], m["fp"], m["fn"]
    f1 = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    ap = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    return {"f1": f1, "ap": ap, **m}


def evaluate(pred_labels: np.ndarray, truth: np.ndarray, kind: str,
             pred_instances: np.ndarray | None = None, volume: bool = False) -> dict:
    """All metrics that make sense for a ``semantic`` or ``instance`` ground truth; with
    ``volume`` the objects are 3D (F1 and AP of 3D objects; the Rand error stays per
    slice)."""
    pred_labels, truth = _check(pred_labels, truth)
    if kind == "semantic":
        out = class_scores(pred_labels, truth)
        out.update(foreground_iou=foreground_iou(pred_labels, truth),
                   pixel_error=pixel_error(pred_labels, truth),
                   rand_error=rand_error(pred_labels, truth))
        return out
    if kind == "instance":
        fg = (pred_labels > 0).astype(np.uint8)
        out = {"foreground_iou": foreground_iou(fg, truth),
               "foreground_dice": class_scores(fg, (truth > 0).astype(np.uint8))["dice"][1],
               "pixel_error": pixel_error(fg, (truth > 0).astype(np.uint8))}
        if pred_instances is not None:
            scores = instance_scores(pred_instances, truth, 0.5, volume)
            out.update(f1_50=scores["f1"], ap_50=scores["ap"], tp=scores["tp"],
                       fp=scores["fp"], fn=scores["fn"],
                       rand_error=rand_error(pred_instances, truth))
        return out
    raise InputError(f"evaluate needs --labels-kind semantic or instance, not {kind!r}")
