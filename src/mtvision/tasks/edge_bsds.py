"""Edge detection F-measure at the optimal dataset scale (ODS) and image scale (OIS), as the
BSDS500 benchmark computes it (Arbeláez et al. 2011, TPAMI; ``correspondPixels``,
``evaluation_bdry_image``, ``collect_eval_bdry``) and as multi-task papers report it on
NYUD-v2 (``max_dist`` 0.011) and PASCAL-Context (0.0075).

Per image and threshold ``t``: the prediction ``p >= t`` is thinned to 1-pixel width
(``thin_edges``: the Guo-Hall algorithm of MATLAB's ``bwmorph(b, 'thin', inf)``, pixel for
pixel ``skimage.morphology.thin``; the ground truth is used as given), then predicted and
ground-truth edge pixels are matched one-to-one within ``max_dist × image diagonal``. The
per-threshold counts are BSDS's: ``cntR`` (matched GT pixels), ``sumR`` (GT pixels),
``cntP`` (matched predicted pixels), ``sumP`` (predicted pixels). ODS: the best F over
thresholds of the dataset-summed counts, with BSDS's ``maxF`` linear interpolation (100
steps) between neighbouring thresholds. OIS: each image's counts at its own best grid
threshold (the first maximum), summed, then one F.

Matching. BSDS minimises Σ distance + 100 × radius per unmatched pixel over the pairs within
the radius, i.e. a maximum matching with the least total distance (one more match is worth
more than any path of under 100 reassignments). ``match_edges`` solves that exactly
(``scipy.sparse.csgraph.min_weight_full_bipartite_matching``, distances × 100 rounded as in
BSDS); the counts need only its size, which every maximum matching shares, so the metric
takes it from a maximum flow (``matched_count``), 6-20× faster at NYUD size.

Why written here: BSDS's matcher is MATLAB-MEX C++; the one maintained Python package,
pyEdgeEval (a Cython port of it, the oracle of ``tests/analysis/test_edge_ods.py``), builds
C++ at install, imports OpenCV in its evaluation modules without declaring it, stops
thinning when the first sub-iteration deletes nothing (not ``bwmorph``'s rule: 24 of 300
random masks thin differently), and builds its assignment graph with random outlier edges
seeded from the clock, so that it sometimes falls a few matches short of the maximum and
repeated runs on one input differ (103, 102 or 100 of 103 exact hits). On the same thinned
maps its counts equal these whenever it reaches the maximum: in 93 % of random blob pairs
and 65-73 % of the test's per-threshold boundary maps, never more than 1 % short.

Thresholds: BSDS uses 99 (``linspace(1/(n+1), 1-1/(n+1), n)``, ``p >= t``); the default
here is 33, as several edge toolkits use, because each threshold costs a thinning and a
matching. A binary map unchanged from the previous threshold is not re-evaluated. Measured
on the project's 2-core machine while shared (load ≈ 4, so alone about half): 300 images of
64 × 64 take 4.9 s at 33 thresholds, 13.5 s at 99; one 425 × 560 image (NYUD-v2 size,
radius 7.7 px, 9 k GT pixels) 5.6 s at 33. At 64 × 64 the radius is under a pixel
(0.011 × 90.5 = 0.996), so only exact hits match, as BSDS's rule gives.

Example:
    >>> import numpy as np
    >>> truth = np.zeros((32, 32), bool); truth[16, 4:28] = True
    >>> probabilities = np.zeros((32, 32)); probabilities[16, 4:16] = 0.9; probabilities[17, 4:28] = 0.4
    >>> metric = EdgeODS(thresholds=[0.3, 0.5], max_dist=0.011)  # radius 0.011 × 45.25 = 0.5 px
    >>> metric.update(probabilities, truth)
    >>> {k: round(v, 4) for k, v in metric.compute().items()}
    {'ods_f': 0.6667, 'ods_precision': 1.0, 'ods_recall': 0.5, 'ods_threshold': 0.5, 'ois_f': 0.6667}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_flow, min_weight_full_bipartite_matching

DEFAULT_THRESHOLDS = 33  # BSDS: 99; see the module docstring for the cost
SCALE = 100  # BSDS's assignment solver needs integers: distances × 100, rounded
MATLAB_LINSPACE = 100  # points per interval in BSDS's maxF interpolation


def threshold_grid(count: int) -> np.ndarray:
    """BSDS's ``count`` thresholds: ``linspace(1/(count+1), 1 − 1/(count+1), count)``."""
    return np.linspace(1.0 / (count + 1), 1.0 - 1.0 / (count + 1), count)


def _deletion_tables() -> tuple[np.ndarray, np.ndarray]:
    """Guo & Hall (1989) A1, as ``bwmorph('thin')``: which 8-neighbourhoods delete the centre
    in the first and second sub-iteration. Bit ``i`` of the index is neighbour ``x_{i+1}``,
    counter-clockwise from east (E, NE, N, NW, W, SW, S, SE; north is the row above)."""
    x = (np.arange(256)[:, None] >> np.arange(8)) & 1 == 1
    odd, even, after = x[:, 0::2], x[:, 1::2], np.roll(x, -2, axis=1)[:, 0::2]
    g1 = (~odd & (even | after)).sum(1) == 1  # one 8-connected run of neighbours
    fewest = np.minimum((odd | even).sum(1), (even | after).sum(1))
    g2 = (fewest >= 2) & (fewest <= 3)  # not an end point, not interior
    g3 = ~((x[:, 1] | x[:, 2] | ~x[:, 7]) & x[:, 0])
    g3_prime = ~((x[:, 5] | x[:, 6] | ~x[:, 3]) & x[:, 4])
    return g1 & g2 & g3, g1 & g2 & g3_prime


_THIN_TABLES = _deletion_tables()


def thin_edges(binary: np.ndarray) -> np.ndarray:
    """Thin boolean maps ``[H, W]`` or ``[K, H, W]`` to 1-pixel width, as ``bwmorph(b, 'thin', inf)``.

    The same pixels as ``skimage.morphology.thin`` (checked in the tests), but a stack of
    maps, here one per threshold, is thinned at once and each map leaves the loop when an
    iteration changes nothing: 2-3× faster than one ``thin`` call per threshold at 64 × 64.
    """
    stack = np.pad(binary.reshape(-1, *binary.shape[-2:]), [(0, 0), (1, 1), (1, 1)]).astype(np.uint8)
    sizes = stack.sum((1, 2))
    active = np.arange(len(stack))
    while len(active):
        maps = stack[active]
        centre = maps[:, 1:-1, 1:-1]
        neighbours = [maps[:, 1:-1, 2:], maps[:, :-2, 2:], maps[:, :-2, 1:-1], maps[:, :-2, :-2]]
        neighbours += [maps[:, 1:-1, :-2], maps[:, 2:, :-2], maps[:, 2:, 1:-1], maps[:, 2:, 2:]]
        for table in _THIN_TABLES:
            code = np.zeros(centre.shape, np.uint8)
            for bit, neighbour in enumerate(neighbours):
                code |= neighbour << bit
            centre[table[code] & centre.view(bool)] = 0
        stack[active] = maps
        now = maps.sum((1, 2))
        changed = now != sizes[active]
        sizes[active] = now
        active = active[changed]
    return stack[:, 1:-1, 1:-1].astype(bool).reshape(binary.shape)


def match_edges(predicted: np.ndarray, truth: np.ndarray, max_dist: float = 0.0075) -> tuple[np.ndarray, np.ndarray]:
    """Boolean maps of the predicted and ground-truth edge pixels matched one-to-one within
    ``max_dist × diagonal``: a maximum matching of least total distance (BSDS ``correspondPixels``).

    For drawing hits and misses; the metric needs only the matching's size (``matched_count``).
    """
    radius = max_dist * math.hypot(*predicted.shape)
    pred_idx, truth_idx, cost = _candidate_pairs(predicted, truth, radius)
    pred_nodes, pred_inv = np.unique(pred_idx, return_inverse=True)
    truth_nodes, truth_inv = np.unique(truth_idx, return_inverse=True)
    left, right = _assignment(pred_inv, truth_inv, cost, len(pred_nodes), len(truth_nodes))
    matched_pred = np.zeros(predicted.shape, bool)
    matched_truth = np.zeros(truth.shape, bool)
    matched_pred.flat[pred_nodes[left]] = True
    matched_truth.flat[truth_nodes[right]] = True
    return matched_pred, matched_truth


def matched_count(predicted: np.ndarray, truth: np.ndarray, max_dist: float = 0.0075) -> int:
    """Size of a maximum one-to-one matching within ``max_dist × diagonal``: ``match_edges``'s
    count, as a unit-capacity maximum flow (Dinic), at a fraction of the cost.

    Not ``maximum_bipartite_matching``: its Hopcroft-Karp search takes exponential time on
    layered graphs (scipy issue 26147), which parallel edge lines are: no result in 60 s on
    a 425 × 560 map with 9 k edge pixels, against 25 ms here.
    """
    radius = max_dist * math.hypot(*predicted.shape)
    if radius < 1:  # only exact hits are candidates, each pixel has at most one
        return int(np.count_nonzero(predicted & truth))
    pred_idx, truth_idx, _ = _candidate_pairs(predicted, truth, radius)
    if len(pred_idx) == 0:
        return 0
    _, pred = np.unique(pred_idx, return_inverse=True)
    _, truth_node = np.unique(truth_idx, return_inverse=True)
    n_pred, n_truth = pred.max() + 1, truth_node.max() + 1
    source, sink = n_pred + n_truth, n_pred + n_truth + 1
    rows = np.concatenate([np.full(n_pred, source), pred, n_pred + np.arange(n_truth)])
    cols = np.concatenate([np.arange(n_pred), n_pred + truth_node, np.full(n_truth, sink)])
    network = csr_array((np.ones(len(rows), np.int32), (rows, cols)), shape=(sink + 1, sink + 1))
    return int(maximum_flow(network, source, sink, method="dinic").flow_value)


def _candidate_pairs(predicted: np.ndarray, truth: np.ndarray, radius: float) -> tuple[np.ndarray, ...]:
    """Flat indices of every (predicted, truth) pixel pair within ``radius`` and their integer costs."""
    reach = math.ceil(radius)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1].reshape(2, -1)
    keep = dy * dy + dx * dx <= radius * radius
    dy, dx = dy[keep], dx[keep]
    ys, xs = np.nonzero(predicted)
    y2, x2 = ys[:, None] + dy, xs[:, None] + dx
    height, width = truth.shape
    inside = (y2 >= 0) & (y2 < height) & (x2 >= 0) & (x2 < width)
    hit = inside & truth[np.clip(y2, 0, height - 1), np.clip(x2, 0, width - 1)]
    pred_row, offset = np.nonzero(hit)
    pred_idx = ys[pred_row] * width + xs[pred_row]
    truth_idx = y2[pred_row, offset] * width + x2[pred_row, offset]
    cost = np.rint(np.hypot(dy[offset], dx[offset]) * SCALE)
    return pred_idx, truth_idx, cost


def _assignment(
    pred: np.ndarray, truth: np.ndarray, cost: np.ndarray, n_pred: int, n_truth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs of a maximum matching of least total cost over the candidate edges.

    BSDS's graph without its random sparsity: rows are predicted nodes then one outlier per
    truth node, columns truth nodes then one outlier per predicted node. A node left
    unmatched takes its own outlier; when ``i`` and ``j`` match, their two outliers pair up
    along the edge that mirrors ``(i, j)``. The total is ``Σ cost + outlier × (n_pred +
    n_truth − matches)``, as in BSDS, but with an outlier price above any matching's total
    cost, so that one more match always wins (BSDS: 100 × radius, the same unless an
    augmenting path is 100 pixels long). Every perfect matching has ``n_pred + n_truth``
    edges, so adding 1 to every weight (the solver reads stored zeros as absent edges)
    leaves the optimum unchanged.
    """
    if len(cost) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    outlier = (min(n_pred, n_truth) + 1) * (cost.max() + 1)
    p_range, t_range = np.arange(n_pred), np.arange(n_truth)
    rows = np.concatenate([pred, p_range, n_pred + t_range, n_pred + truth])
    cols = np.concatenate([truth, n_truth + p_range, t_range, n_truth + pred])
    weights = np.concatenate([cost, np.full(n_pred + n_truth + len(cost), outlier)]) + 1.0
    size = n_pred + n_truth
    row_of, col_of = min_weight_full_bipartite_matching(csr_array((weights, (rows, cols)), shape=(size, size)))
    real = (row_of < n_pred) & (col_of < n_truth)
    return row_of[real], col_of[real]


def image_counts(
    probabilities: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, max_dist: float = 0.0075
) -> np.ndarray:
    """BSDS counts ``[cntR, sumR, cntP, sumP]`` × threshold (shape ``[4, K]``) of one image.

    ``thresholds`` must increase: the binary maps then shrink, so an unchanged pixel count
    means an unchanged map, thinned and matched once.
    """
    binary = probabilities[None] >= np.asarray(thresholds)[:, None, None]
    sizes = binary.sum((1, 2))
    new = np.concatenate([[True], sizes[1:] != sizes[:-1]])
    thinned = thin_edges(binary[new])
    matches = np.array([matched_count(predicted, truth, max_dist) for predicted in thinned])
    distinct = np.stack([matches, np.full(len(thinned), truth.sum()), matches, thinned.sum((1, 2))])
    return distinct[:, np.cumsum(new) - 1].astype(float)  # one-to-one matches: cntR = cntP


def f_measure(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, precision and F of ``[cntR, sumR, cntP, sumP, ...]`` counts (0 where undefined, as BSDS)."""
    recall = counts[0] / (counts[1] + (counts[1] == 0))
    precision = counts[2] / (counts[3] + (counts[3] == 0))
    return recall, precision, _f(recall, precision)


def _f(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    total = precision + recall
    return 2.0 * precision * recall / (total + (total == 0))


def _best_interpolated(thresholds: np.ndarray, recall: np.ndarray, precision: np.ndarray) -> tuple[float, ...]:
    """BSDS ``maxF``: the first maximum of F along straight lines between neighbouring thresholds."""
    step = np.linspace(0.0, 1.0, MATLAB_LINSPACE)[None, :]

    def along(values: np.ndarray) -> np.ndarray:
        between = values[1:, None] * step + values[:-1, None] * (1.0 - step)
        return np.concatenate([values[:1], between.ravel()])

    t, r, p = along(thresholds), along(recall), along(precision)
    best = int(np.argmax(_f(r, p)))
    return float(t[best]), float(r[best]), float(p[best]), float(_f(r[best], p[best]))


class EdgeODS:
    """Accumulates BSDS counts over a dataset; ``compute`` gives ODS and OIS F.

    ``counts`` (``[4, K]``: cntR, sumR, cntP, sumP per threshold), ``ois_counts`` (``[4]``)
    and ``images`` are plain sums: add them across processes (``merge``, or an all-reduce of
    the arrays) before ``compute``.
    """

    def __init__(self, thresholds: int | Sequence[float] = DEFAULT_THRESHOLDS, max_dist: float = 0.0075) -> None:
        grid = threshold_grid(thresholds) if isinstance(thresholds, int) else np.asarray(thresholds, float)
        if grid.ndim != 1 or len(grid) == 0 or np.any(np.diff(grid) <= 0):
            raise ValueError(f"thresholds must be a count or a strictly increasing 1-D sequence, got {thresholds!r}")
        if max_dist <= 0:
            raise ValueError(f"max_dist must be positive (a fraction of the image diagonal), got {max_dist}")
        self.thresholds = grid
        self.max_dist = max_dist
        self.counts = np.zeros((4, len(grid)))
        self.ois_counts = np.zeros(4)
        self.images = 0

    def update(self, probabilities: np.ndarray, ground_truth: np.ndarray) -> None:
        """Add one image: edge probabilities ``[H, W]`` in [0, 1] and its boolean edge map ``[H, W]``."""
        probabilities, truth = np.asarray(probabilities), np.asarray(ground_truth, bool)
        if probabilities.ndim != 2 or probabilities.shape != truth.shape:
            raise ValueError(
                f"EdgeODS.update: probabilities {probabilities.shape} and ground_truth {truth.shape} "
                "must be the same [H, W] shape"
            )
        counts = image_counts(probabilities, truth, self.thresholds, self.max_dist)
        self.counts += counts
        self.ois_counts += counts[:, int(np.argmax(f_measure(counts)[2]))]
        self.images += 1

    def merge(self, other: EdgeODS) -> None:
        """Add another accumulator's sums (same thresholds and ``max_dist``), e.g. from another process."""
        if not np.array_equal(self.thresholds, other.thresholds) or self.max_dist != other.max_dist:
            raise ValueError("EdgeODS.merge: thresholds and max_dist must be equal on both sides")
        self.counts += other.counts
        self.ois_counts += other.ois_counts
        self.images += other.images

    def compute(self) -> dict[str, float]:
        """ODS F (with its precision, recall and interpolated threshold) and OIS F."""
        if self.images == 0:
            raise ValueError("EdgeODS.compute: no image was added (call update first)")
        recall, precision, _ = f_measure(self.counts)
        threshold, ods_recall, ods_precision, ods_f = _best_interpolated(self.thresholds, recall, precision)
        ois_f = float(f_measure(self.ois_counts[:, None])[2][0])
        return {
            "ods_f": ods_f,
            "ods_precision": ods_precision,
            "ods_recall": ods_recall,
            "ods_threshold": threshold,
            "ois_f": ois_f,
        }
