"""Chunked, multi-threaded kernels behind training, assignment, QE and TE.

Every function here walks the rows in chunks small enough that the chunk's
rows x neurons cross-term matrix stays in the CPU's L2 cache, and spreads
the chunks over threads (the compiled kernels release the GIL). Memory is
therefore bounded by ``chunk_rows`` x neurons per thread, never by the
whole table x neurons.

Distances are ranked exactly as MiniSom 2.3.6 ranks them in
``_distance_from_weights``: the cross term comes from the same BLAS ``dot``,
then ``sqrt(max(0, (-2 x.w + |x|^2) + |w|^2))`` is evaluated operation for
operation, and ties go to the lowest neuron index, as ``argmin`` does. So
best and second-best units agree with MiniSom's to the last bit wherever
BLAS's dot products do not depend on the chunk's shape (so it is with the
OpenBLAS that numpy ships, for up to seven features: the reference has three).

Many tables repeat rows (integer demographics do); :func:`distinct_rows`
finds the distinct ones in one hashed pass, so work can be done once per
distinct row and gathered back.

numba (if installed) compiles the per-row loops; without it, equivalent numpy
code runs, slower, with the same assignments and metrics (training's fast
ranking may then break near-ties differently).
"""

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypeVar

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None

T = TypeVar("T")

DedupMode = Literal["auto", "always", "never"]
Precision = Literal["float64", "float32"]

# Cross-term cells per chunk, sized to stay in one core's L2 cache.
_CELL_BUDGET = 262_144
_MIN_CHUNK_ROWS = 256
# Deduplicate only when at most this share of the rows is distinct, and decide
# on a strided sample first so a table of unique rows costs one cheap probe.
_DEDUP_MAX_RATIO = 0.5
_DEDUP_SAMPLE_ROWS = 65_536
# Up to this many bin edges, a value's bin is found by counting the edges below it rather than bisecting.
_LINEAR_BIN_EDGES = 16
# Row-pair distances per chunk in cluster_distance_sums: bounds the numpy fallback's block, and leaves
# enough chunks to keep every thread busy.
_DISTANCE_CHUNK_CELLS = 1 << 20
# Rows hashed per block when finding distinct rows; blocks run on threads.
_DISTINCT_BLOCK_ROWS = 1 << 20
# Strings hashed per block by text_hashes; blocks run on threads.
_TEXT_BLOCK_ROWS = 1 << 18


@dataclass(frozen=True)
class DistinctRows:
    """The distinct rows of a table and how to map back to the table.

    Attributes
    ----------
    rows : ndarray of shape (n_distinct, n_features)
        Distinct rows, in order of first occurrence.
    inverse : ndarray of int64, shape (n_rows,)
        Index into ``rows`` of every original row: ``rows[inverse]`` is the
        table.
    counts : ndarray of int64, shape (n_distinct,)
        How many original rows each distinct row stands for.
    """

    rows: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray


def default_chunk_rows(n_neurons: int) -> int:
    """Rows per chunk that keep one chunk's cross terms near 2 MB (in L2 cache)."""
    return max(_MIN_CHUNK_ROWS, _CELL_BUDGET // max(n_neurons, 1))


def default_threads() -> int:
    """Threads to use: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` row ranges of at most ``chunk_rows`` rows.

    A one-row tail is merged into the previous chunk: numpy multiplies a
    one-row matrix with a different BLAS routine, whose rounding differs.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    starts = list(range(0, n_rows, chunk_rows))
    if len(starts) > 1 and n_rows - starts[-1] == 1:
        starts.pop()
    return [(start, stop) for start, stop in zip(starts, starts[1:] + [n_rows])]


def map_chunks(
    func: Callable[[int, int], T],
    n_rows: int,
    chunk_rows: int,
    n_threads: int | None = None,
) -> list[T]:
    """Apply ``func(start, stop)`` to every chunk, on threads, results in chunk order.

    BLAS is held to one thread meanwhile: the chunks' products are far too
    small to gain from BLAS threads, whose spinning would only take cores
    from the chunks' own threads.
    """
    bounds = chunk_bounds(n_rows, chunk_rows)
    threads = min(n_threads or default_threads(), len(bounds))
    with _one_blas_thread():
        if threads <= 1:
            return [func(start, stop) for start, stop in bounds]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda bound: func(*bound), bounds))


def best_units(
    X: np.ndarray,
    codebook: np.ndarray,
    *,
    chunk_rows: int | None = None,
    n_threads: int | None = None,
    precision: Precision = "float64",
) -> np.ndarray:
    """Index of each row's best-matching unit, ranked for speed (training).

    Units are ranked by ``|w|^2 - 2 x.w`` (the squared distance less the
    row's constant ``|x|^2``) in one fused pass, without BLAS. At near-ties
    the winner may differ from MiniSom's in the last bit, which does not
    matter for training; reported assignments use :func:`best_two_units`.
    In ``float32`` the scores carry about 7 digits, so rows whose two best
    units are closer than that (relative to the scores) may change unit;
    the others do not.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    codebook : ndarray of shape (n_neurons, n_features)
        Neuron weights, flattened row-major from the grid.
    chunk_rows : int, optional
        Rows per chunk; by default :func:`default_chunk_rows`.
    n_threads : int, optional
        Threads; by default every available CPU.
    precision : {'float64', 'float32'}
        Arithmetic of the scores; float32 does twice the work per
        instruction and reads half the bytes.

    Returns
    -------
    ndarray of int64, shape (n_rows,)
        Lowest index among exact ties.
    """
    X, codebook, w_sq = _prepare(X, codebook)
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    dtype = np.dtype(precision)
    # -2 w rather than -2 x: scaling by 2 is exact, so the float64 scores are unchanged.
    codebook_t = np.ascontiguousarray(-2.0 * codebook.T, dtype=dtype)
    w_sq = w_sq.astype(dtype)
    bmu = np.empty(len(X), dtype=np.int64)

    def work(start: int, stop: int) -> None:
        _nearest(np.ascontiguousarray(X[start:stop], dtype=dtype), codebook_t, w_sq, bmu[start:stop])

    map_chunks(work, len(X), chunk_rows or default_chunk_rows(len(codebook)), n_threads)
    return bmu


def best_two_units(
    X: np.ndarray,
    codebook: np.ndarray,
    *,
    chunk_rows: int | None = None,
    n_threads: int | None = None,
    dedup: DedupMode = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best and second-best unit of each row, and the distance to the best.

    The distance is computed directly, as ``norm(x - w_bmu)`` in MiniSom's
    ``quantization_error``, in the same pass while the chunk is in cache.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    codebook : ndarray of shape (n_neurons, n_features)
    chunk_rows : int, optional
        Rows per chunk; by default :func:`default_chunk_rows`.
    n_threads : int, optional
        Threads; by default every available CPU.
    dedup : {'auto', 'always', 'never'}
        Compute once per distinct row and gather back: 'auto' does so when
        at most half the rows are distinct. The results are the same.

    Returns
    -------
    bmu, second : ndarray of int64, shape (n_rows,)
        Best and second-best unit; ``second == bmu`` on a one-neuron map.
    distance : ndarray of float64, shape (n_rows,)
    """
    X, codebook, w_sq = _prepare(X, codebook)
    distinct = _distinct_for(X, dedup)
    if distinct is not None:
        bmu, second, distance = best_two_units(
            distinct.rows, codebook, chunk_rows=chunk_rows, n_threads=n_threads, dedup="never"
        )
        return bmu[distinct.inverse], second[distinct.inverse], distance[distinct.inverse]
    bmu = np.empty(len(X), dtype=np.int64)
    second = np.empty(len(X), dtype=np.int64)
    distance = np.empty(len(X), dtype=np.float64)

    def work(start: int, stop: int) -> None:
        block = X[start:stop]
        _rank_two(_cross(block, codebook), _squared_norms(block), w_sq, bmu[start:stop], second[start:stop])
        # np.linalg.norm as MiniSom calls it, so QE matches to the last bit.
        distance[start:stop] = np.linalg.norm(block - codebook[bmu[start:stop]], axis=1)

    map_chunks(work, len(X), chunk_rows or default_chunk_rows(len(codebook)), n_threads)
    return bmu, second, distance


def sample_key(seed: int, draw: int) -> int:
    """A 64-bit key for draw ``draw`` (an epoch, say) of seed ``seed``: the input of :func:`keep_by_position`."""
    return _mix_int(_mix_int(seed % 2**64) ^ (draw % 2**64))


def keep_by_position(first_row: int, n_rows: int, key: int, fraction: float) -> np.ndarray:
    """Which of rows ``first_row ... first_row + n_rows - 1`` of a table a ``fraction`` sample keeps.

    Row ``r`` is kept when the ``r``-th output of splitmix64 seeded with
    ``key`` (a counter-based hash of ``key`` and ``r``), read as a number in
    [0, 1), is below ``fraction``. It depends on nothing but the key and the
    row's global position, so any split of the table into blocks, computed
    anywhere, keeps the same rows.

    Returns
    -------
    ndarray of bool, shape (n_rows,)
    """
    keep = np.empty(n_rows, dtype=np.bool_)
    _keep_by_position(np.uint64(first_row), np.uint64(key), float(fraction), keep)
    return keep


def thin_weights(
    X: np.ndarray, weight: np.ndarray, key: int, fraction: float, rows_per_weight: float = 1.0
) -> np.ndarray:
    """The weights of a ``fraction`` sample of rows that each stand for several rows, by thinning.

    A row of weight ``w`` stands for ``c = w * rows_per_weight`` rows. A
    sample keeping each of those rows with probability ``fraction`` keeps at
    least one of them with probability ``p = 1 - (1 - fraction)**c``; the
    row is kept with that probability, decided by a hash of ``key`` and the
    row's values (so the same distinct row is kept or dropped wherever it
    is), with weight ``w * fraction / p``: its expected weight is
    ``fraction * w``, as for rows of weight 1, and a row that stands for
    many is nearly always kept, with nearly its share.

    Returns
    -------
    ndarray of float64, shape (n_rows,)
        0 for the rows dropped.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty(len(X))
    _thin_weights(X.view(np.uint64), np.asarray(weight, dtype=np.float64), np.uint64(key), float(fraction),
                  float(rows_per_weight), out)
    return out


def distinct_rows(X: np.ndarray, max_ratio: float = 1.0, n_threads: int | None = None) -> DistinctRows | None:
    """The distinct rows of ``X``, found by hashing their bit patterns.

    Blocks of rows are hashed on threads, then their distinct rows are
    merged in block order; the blocks are fixed, so the result does not
    depend on the number of threads.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    max_ratio : float
        Give up (return None) when more than ``max_ratio * n_rows`` rows
        are distinct.
    n_threads : int, optional
        Threads; by default every available CPU.

    Returns
    -------
    DistinctRows or None
        None when the rows are too diverse for ``max_ratio``.

    Notes
    -----
    Rows are equal when their float64 bit patterns are, so ``0.0`` and
    ``-0.0`` count as different rows; that only costs a little sharing.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    bits = X.view(np.uint64)
    limit = int(max_ratio * len(X))
    blocks = map_chunks(lambda start, stop: (start, *_distinct_codes(bits[start:stop], limit)),
                        len(X), _DISTINCT_BLOCK_ROWS, n_threads)
    if any(n_distinct < 0 for _, _, _, n_distinct in blocks):
        return None
    if len(blocks) == 1:
        _, codes, firsts, n_distinct = blocks[0]
        firsts = firsts[:n_distinct]
    else:
        codes, firsts, n_distinct = _merge_blocks(bits, blocks, limit)
        if n_distinct < 0:
            return None
    counts = np.bincount(codes, minlength=n_distinct).astype(np.int64)
    return DistinctRows(rows=X[firsts], inverse=codes, counts=counts)


def dedup_if_worthwhile(X: np.ndarray, max_ratio: float = _DEDUP_MAX_RATIO) -> DistinctRows | None:
    """:func:`distinct_rows` when at most ``max_ratio`` of the rows are distinct, else None.

    A strided sample is probed first: for rows drawn from one distribution
    the distinct share falls as rows are added, so a sample that is too
    diverse rules the table out cheaply.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        return None
    if len(X) > 2 * _DEDUP_SAMPLE_ROWS:
        sample = X[:: len(X) // _DEDUP_SAMPLE_ROWS]
        if distinct_rows(sample, max_ratio) is None:
            return None
    distinct = distinct_rows(X, max_ratio)
    # Fewer than two distinct rows would be multiplied by a different BLAS routine.
    return distinct if distinct is not None and len(distinct.rows) >= 2 else None


# --- helpers -----------------------------------------------------------------


def _prepare(X: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    codebook = np.ascontiguousarray(codebook, dtype=np.float64)
    if X.ndim != 2 or codebook.ndim != 2 or X.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"X (n_rows, n_features) and codebook (n_neurons, n_features) disagree: {X.shape}, {codebook.shape}"
        )
    if len(codebook) == 0:
        raise ValueError("the codebook has no neurons")
    return X, codebook, _squared_norms(codebook)


def _distinct_for(X: np.ndarray, dedup: DedupMode) -> DistinctRows | None:
    if dedup == "never":
        return None
    if dedup == "auto":
        return dedup_if_worthwhile(X)
    if dedup == "always":
        distinct = distinct_rows(X)
        return distinct if distinct is not None and len(distinct.rows) >= 2 else None
    raise ValueError(f"dedup must be 'auto', 'always' or 'never', got {dedup!r}")


def _merge_blocks(
    bits: np.ndarray, blocks: list[tuple[int, np.ndarray, np.ndarray, int]], limit: int
) -> tuple[np.ndarray, np.ndarray, int]:
    # The blocks' distinct rows, in block order, deduplicated once more: their
    # first occurrences are then the table's, in the table's order.
    representatives = np.concatenate([start + firsts[:n] for start, _, firsts, n in blocks])
    rep_codes, rep_firsts, n_distinct = _distinct_codes(np.ascontiguousarray(bits[representatives]), limit)
    if n_distinct < 0:
        return rep_codes, rep_firsts, -1
    offsets = np.cumsum([0] + [n for _, _, _, n in blocks[:-1]])
    codes = np.concatenate([rep_codes[offset + block_codes] for offset, (_, block_codes, _, _) in zip(offsets, blocks)])
    return codes, representatives[rep_firsts[:n_distinct]], n_distinct


_MASK64 = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix_int(h: int) -> int:
    # _mix on a Python int, for keys computed once per draw.
    h &= _MASK64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
    return h ^ (h >> 31)


def _squared_norms(A: np.ndarray) -> np.ndarray:
    # power().sum() as MiniSom writes it: einsum sums in another order.
    return np.power(A, 2).sum(axis=1)


def _cross(block: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    # The very product MiniSom takes (dot(data, weights_flat.T)), so the
    # same BLAS kernel rounds it the same way.
    return np.ascontiguousarray(np.dot(block, codebook.T))


@cache
def _blas_controller() -> object | None:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return None
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """A context in which BLAS runs on one thread.

    OpenBLAS's threads split a tall, thin product (rows x features by
    features) for little gain, and spin while they wait: on a machine whose
    cores are busy (other jobs, the kernels' own threads) that product then
    takes orders of magnitude longer than on one thread.
    """
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller is not None else nullcontext()


_one_blas_thread = one_blas_thread


# --- per-row loops (compiled by numba when available) --------------------------


def _min_value(values: np.ndarray) -> float:
    # Compiled with no-NaN fast-math, so LLVM vectorises the reduction; a
    # plain minimum changes no value, and NaN rows fall back to unit 0.
    smallest = np.inf
    for j in range(values.shape[0]):
        v = values[j]
        smallest = v if v < smallest else smallest
    return smallest


def _first_at(squares: np.ndarray, square: float, skip: int) -> int:
    # First index whose distance sqrt(squares[j]) equals sqrt(square): the
    # winner under argmin's lowest-index rule. Squares that round to the same
    # distance lie within 7e-16 (relative) of each other, so the cheap bound
    # test spares nearly every sqrt.
    distance = np.sqrt(square)
    bound = square * (1.0 + 1e-15) + 1e-300
    for j in range(squares.shape[0]):
        if squares[j] <= bound and j != skip and np.sqrt(squares[j]) == distance:
            return j
    return 0


def _squared_distances(cross: np.ndarray, x_sq: np.ndarray, w_sq: np.ndarray, i: int, out: np.ndarray) -> None:
    # MiniSom's max(0, -2 x.w + |x|^2 + |w|^2), operation for operation.
    for j in range(out.shape[0]):
        out[j] = max(0.0, (-2.0 * cross[i, j] + x_sq[i]) + w_sq[j])


def _nearest_loop(X: np.ndarray, codebook_t: np.ndarray, w_sq: np.ndarray, bmu: np.ndarray) -> None:
    # codebook_t is -2 w, transposed, in the precision of X: no constant
    # below widens a float32 score to float64.
    n_features, n_units = codebook_t.shape
    scores = np.empty(n_units, dtype=w_sq.dtype)
    for i in range(X.shape[0]):
        # Loops over units innermost, on the transposed codebook, so LLVM
        # vectorises them; |x|^2 is the same for every unit and is left out.
        scores[:] = w_sq
        for f in range(n_features):
            x_f = X[i, f]
            for j in range(n_units):
                scores[j] += x_f * codebook_t[f, j]
        smallest = _min_value(scores)
        best = 0
        while best < n_units - 1 and scores[best] != smallest:
            best += 1
        bmu[i] = best


def _rank_two_loop(
    cross: np.ndarray, x_sq: np.ndarray, w_sq: np.ndarray, bmu: np.ndarray, second: np.ndarray
) -> None:
    # MiniSom ranks sqrt(squares); sqrt is monotone, so the smallest square
    # gives the smallest distance, and _first_at settles ties in distance.
    squares = np.empty(cross.shape[1])
    for i in range(cross.shape[0]):
        _squared_distances(cross, x_sq, w_sq, i, squares)
        best = _first_at(squares, _min_value(squares), -1)
        squares[best] = np.inf
        bmu[i] = best
        # On a one-neuron map nothing is left: _first_at's fallback 0 == best.
        second[i] = _first_at(squares, _min_value(squares), best)


def _mix(h: np.uint64) -> np.uint64:
    # splitmix64's finaliser: every input bit reaches the low bits used as slot.
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _hash_row(bits: np.ndarray, i: int) -> np.uint64:
    h = np.uint64(0x9E3779B97F4A7C15)
    for c in range(bits.shape[1]):
        h = _mix(h ^ bits[i, c])
    return h


def _unit_interval(h: np.uint64) -> float:
    # The top 53 bits as a float in [0, 1).
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def _keep_by_position_loop(first_row: np.uint64, key: np.uint64, fraction: float, keep: np.ndarray) -> None:
    # splitmix64: output r is _mix(key + (r + 1) * golden ratio).
    golden = np.uint64(0x9E3779B97F4A7C15)
    for i in range(keep.shape[0]):
        keep[i] = _unit_interval(_mix(key + (first_row + np.uint64(i) + np.uint64(1)) * golden)) < fraction


def _thin_weights_loop(
    bits: np.ndarray, weight: np.ndarray, key: np.uint64, fraction: float, rows_per_weight: float, out: np.ndarray
) -> None:
    log_drop = np.log1p(-fraction)
    for i in range(bits.shape[0]):
        p = -np.expm1(weight[i] * rows_per_weight * log_drop)
        if p > 0.0 and _unit_interval(_mix(_hash_row(bits, i) ^ key)) < p:
            out[i] = weight[i] * fraction / p
        else:
            out[i] = 0.0


def _empty_table(hashes: np.ndarray, n_codes: int, size: int) -> np.ndarray:
    # A table of ``size`` slots holding codes 0..n_codes-1 (used to grow).
    table = np.full(size, -1, dtype=np.int64)
    mask = np.uint64(size - 1)
    for code in range(n_codes):
        slot = hashes[code] & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = code
    return table


def _same_row(bits: np.ndarray, a: int, b: int) -> bool:
    for c in range(bits.shape[1]):
        if bits[a, c] != bits[b, c]:
            return False
    return True


def _distinct_loop(bits: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    # Open addressing keyed on each row's bit pattern. Slots hold distinct-row
    # codes; the table doubles at half load, so it stays as small (and as
    # cache-resident) as the number of distinct rows allows.
    n_rows = bits.shape[0]
    capacity = min(limit, n_rows) + 1
    hashes = np.empty(capacity, dtype=np.uint64)
    firsts = np.empty(capacity, dtype=np.int64)
    codes = np.empty(n_rows, dtype=np.int64)
    size = 1024
    table = _empty_table(hashes, 0, size)
    n_distinct = 0
    for i in range(n_rows):
        h = _hash_row(bits, i)
        mask = np.uint64(size - 1)
        slot = h & mask
        while table[slot] >= 0 and not (
            hashes[table[slot]] == h and _same_row(bits, firsts[table[slot]], i)
        ):
            slot = (slot + np.uint64(1)) & mask
        if table[slot] >= 0:
            codes[i] = table[slot]
            continue
        if n_distinct >= limit:
            return codes, firsts, -1
        table[slot] = n_distinct
        hashes[n_distinct] = h
        firsts[n_distinct] = i
        codes[i] = n_distinct
        n_distinct += 1
        if 2 * n_distinct > size:
            size *= 2
            table = _empty_table(hashes, n_distinct, size)
    return codes, firsts, n_distinct


# --- numpy equivalents, used where numba is not installed ----------------------


def _nearest_numpy(X: np.ndarray, codebook_t: np.ndarray, w_sq: np.ndarray, bmu: np.ndarray) -> None:
    bmu[:] = (w_sq + X @ codebook_t).argmin(axis=1)


def _rank_two_numpy(
    cross: np.ndarray, x_sq: np.ndarray, w_sq: np.ndarray, bmu: np.ndarray, second: np.ndarray
) -> None:
    distances = _expanded_distances(cross, x_sq, w_sq)
    bmu[:] = distances.argmin(axis=1)
    if distances.shape[1] == 1:
        second[:] = bmu
        return
    distances[np.arange(len(distances)), bmu] = np.inf
    second[:] = distances.argmin(axis=1)


def _expanded_distances(cross: np.ndarray, x_sq: np.ndarray, w_sq: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(0, -2 * cross + x_sq[:, None] + w_sq))


def _text_hashes_loop(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
    for i in range(out.shape[0]):
        start, stop = offsets[i], offsets[i + 1]
        h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(stop - start)
        for word_start in range(start, stop, 8):
            word = np.uint64(0)
            for b in range(min(8, stop - word_start)):
                word |= np.uint64(data[word_start + b]) << np.uint64(8 * b)
            h = _mix(h ^ word)
        out[i] = h


def _text_hashes_numpy(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
    starts = offsets[:-1].astype(np.int64)
    lengths = offsets[1:].astype(np.int64) - starts
    h = np.uint64(_GOLDEN) ^ lengths.astype(np.uint64)
    padded = np.append(data, np.uint8(0))
    for first in range(0, int(lengths.max(initial=0)), 8):  # the words of the longest string, not rows
        word = np.zeros(len(starts), dtype=np.uint64)
        for b in range(8):
            inside = first + b < lengths
            byte = padded[np.where(inside, starts + first + b, len(data))].astype(np.uint64)
            word |= byte << np.uint64(8 * b)
        h = np.where(first < lengths, _splitmix_numpy(h ^ word), h)
    out[:] = h


def _splitmix_numpy(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _unit_interval_numpy(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _keep_by_position_numpy(first_row: np.uint64, key: np.uint64, fraction: float, keep: np.ndarray) -> None:
    rows = np.arange(1, len(keep) + 1, dtype=np.uint64) + first_row
    with np.errstate(over="ignore"):
        keep[:] = _unit_interval_numpy(_splitmix_numpy(key + rows * np.uint64(_GOLDEN))) < fraction


def _thin_weights_numpy(
    bits: np.ndarray, weight: np.ndarray, key: np.uint64, fraction: float, rows_per_weight: float, out: np.ndarray
) -> None:
    h = np.full(len(bits), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for c in range(bits.shape[1]):  # a few features, not rows
        h = _splitmix_numpy(h ^ bits[:, c])
    p = -np.expm1(weight * rows_per_weight * np.log1p(-fraction))
    kept = (p > 0) & (_unit_interval_numpy(_splitmix_numpy(h ^ key)) < p)
    out[:] = np.where(kept, weight * fraction / np.where(kept, p, 1.0), 0.0)


def _distinct_numpy(bits: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    _, first, inverse, _ = np.unique(
        bits, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    if len(first) > limit:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), -1
    # Renumber in order of first occurrence, as the hashed version does.
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)].astype(np.int64), first[order].astype(np.int64), len(first)


def group_moments(values: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations of the observed (non-NaN) values of each column, per group.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_columns)
    group : ndarray of int64, shape (n_rows,)
        Each row's group, in ``[0, n_groups)``.
    n_groups : int

    Returns
    -------
    n, mean, m2 : ndarray of shape (n_groups, n_columns)
        ``mean`` is 0 for an empty group. Each sum adds the rows in their
        order, as ``np.bincount`` does, so the figures are those of one
        ``bincount`` per column and moment, to the last bit.
    """
    values = np.asarray(values, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    return _group_moments(values, group, n_groups)


def _group_moments_loop(values: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_columns = values.shape
    n = np.zeros((n_groups, n_columns))
    total = np.zeros((n_groups, n_columns))
    for i in range(n_rows):
        g = group[i]
        for c in range(n_columns):
            v = values[i, c]
            if v == v:  # observed: NaN is the only value unequal to itself
                n[g, c] += 1.0
                total[g, c] += v
    mean = np.zeros((n_groups, n_columns))
    for g in range(n_groups):
        for c in range(n_columns):
            if n[g, c] > 0:
                mean[g, c] = total[g, c] / n[g, c]
    m2 = np.zeros((n_groups, n_columns))
    for i in range(n_rows):
        g = group[i]
        for c in range(n_columns):
            v = values[i, c]
            if v == v:
                d = v - mean[g, c]
                m2[g, c] += d * d
    return n, mean, m2


def _group_moments_numpy(values: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def group_sum(columns: np.ndarray) -> np.ndarray:
        sums = [np.bincount(group, columns[:, c], n_groups) for c in range(columns.shape[1])]
        return np.stack(sums, axis=1).astype(np.float64, copy=False).reshape(n_groups, columns.shape[1])

    observed = ~np.isnan(values)
    n = group_sum(observed.astype(np.float64))
    total = group_sum(np.where(observed, values, 0.0))
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    m2 = group_sum(np.where(observed, values - mean[group], 0.0) ** 2)
    return n, mean, m2


def bin_counts(values: np.ndarray, edges: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Rows of each column of ``values`` per bin of that column's edges, and the missing ones, in one pass.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_columns)
    edges : sequence of ndarray
        One ascending array per column (repeated edges are allowed).

    Returns
    -------
    list of ndarray of int64
        Per column, shape ``(len(edges[c]) + 2,)``: bin ``i`` counts the
        values with exactly ``i`` edges below them
        (``np.searchsorted(edges[c], value, side="left")``); the last entry
        counts the NaNs.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(edges):
        raise ValueError(f"bin_counts needs one edge array per column, got {len(edges)} for shape {values.shape}")
    sizes = np.array([len(e) for e in edges], dtype=np.int64)
    # One row of edges per column, padded to the longest: only a column's own sizes[c] edges are read.
    padded = np.full((len(edges), int(sizes.max(initial=0))), np.inf)
    for c, column_edges in enumerate(edges):
        padded[c, : sizes[c]] = column_edges
    counts = np.zeros((len(edges), padded.shape[1] + 2), dtype=np.int64)
    # Row by row, so a row-major table is read once rather than once per column.
    _bin_counts(values, padded, sizes, counts)
    return [np.append(counts[c, : sizes[c] + 1], counts[c, -1]) for c in range(len(edges))]


def text_hashes(offsets: np.ndarray, data: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """64-bit hashes of strings given as Arrow lays them out: string ``i`` is ``data[offsets[i]:offsets[i + 1]]``.

    Equal strings (the same bytes) get equal hashes wherever they lie, so the
    hashes of several arrays can be compared with each other; different
    strings collide only by the chance of a 64-bit hash. The bytes are read
    8 at a time, each word mixed in with splitmix64's finaliser, after the
    string's length.

    Parameters
    ----------
    offsets : ndarray of int32 or int64, shape (n_strings + 1,)
        Start of every string in ``data``, and the end of the last.
    data : ndarray of uint8
        The strings' bytes.
    n_threads : int, optional
        Threads; by default every available CPU.

    Returns
    -------
    ndarray of uint64, shape (n_strings,)
    """
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype not in (np.int32, np.int64):
        raise ValueError(f"offsets must be a non-empty 1-D int32 or int64 array, got {offsets.dtype} {offsets.shape}")
    data = np.asarray(data, dtype=np.uint8)
    if len(offsets) > 1 and (offsets[0] < 0 or offsets[-1] > len(data)):
        raise ValueError(f"offsets run from {offsets[0]} to {offsets[-1]}, outside the {len(data)} bytes of data")
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    map_chunks(lambda start, stop: _text_hashes(offsets[start : stop + 1], data, out[start:stop]), len(out),
               _TEXT_BLOCK_ROWS, n_threads)
    return out


def cluster_distance_sums(
    A: np.ndarray,
    B: np.ndarray,
    codes: np.ndarray,
    weight: np.ndarray,
    n_clusters: int,
    n_threads: int | None = None,
) -> np.ndarray:
    """Weighted sums of the Euclidean distances from each row of ``A`` to the rows of ``B`` of each cluster.

    Each distance is summed feature by feature from the rows' differences
    (not expanded as ``|a|^2 - 2ab + |b|^2``), so identical rows are exactly
    0 apart; no ``len(A) x len(B)`` matrix is held.

    Parameters
    ----------
    A : ndarray of shape (n_a, n_features)
    B : ndarray of shape (n_b, n_features)
    codes : ndarray of int64, shape (n_b,)
        Each row of ``B``'s cluster, in ``[0, n_clusters)``.
    weight : ndarray of shape (n_b,)
        Each row of ``B``'s weight.
    n_clusters : int
    n_threads : int, optional
        Threads over the rows of ``A``; default: the CPUs available.

    Returns
    -------
    ndarray of shape (n_a, n_clusters)
        Entry ``(i, k)``: the sum over rows ``j`` of cluster ``k`` of
        ``weight[j] * ||A[i] - B[j]||``.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1] or codes.shape != (len(B),) or weight.shape != (len(B),):
        raise ValueError(f"cluster_distance_sums needs A, B of one width and a code and weight per row of B; got {A.shape}, {B.shape}, {codes.shape}, {weight.shape}")
    # Features by rows, so the innermost loop runs along contiguous rows of B and vectorises.
    B_t = np.ascontiguousarray(B.T)
    sums = np.zeros((len(A), n_clusters))

    def chunk(start: int, stop: int) -> None:
        _cluster_distance_sums(A[start:stop], B_t, codes, weight, sums[start:stop])

    map_chunks(chunk, len(A), max(1, _DISTANCE_CHUNK_CELLS // max(len(B), 1)), n_threads)
    return sums


def _bin_counts_loop(values: np.ndarray, edges: np.ndarray, sizes: np.ndarray, counts: np.ndarray) -> None:
    n_rows, n_columns = values.shape
    width = edges.shape[1]
    for i in range(n_rows):
        for c in range(n_columns):
            v = values[i, c]
            if v != v:
                counts[c, width + 1] += 1
                continue
            below = 0
            if sizes[c] <= _LINEAR_BIN_EDGES:
                # Counting every edge below the value has no branch to mispredict.
                for j in range(sizes[c]):
                    below += edges[c, j] < v
            else:
                hi = sizes[c]
                while below < hi:
                    mid = (below + hi) // 2
                    if edges[c, mid] < v:
                        below = mid + 1
                    else:
                        hi = mid
            counts[c, below] += 1


def _bin_counts_numpy(values: np.ndarray, edges: np.ndarray, sizes: np.ndarray, counts: np.ndarray) -> None:
    width = edges.shape[1]
    for c in range(values.shape[1]):
        column = values[:, c]
        missing = np.isnan(column)
        below = np.searchsorted(edges[c, : sizes[c]], column[~missing], side="left")
        counts[c, : width + 1] += np.bincount(below, minlength=width + 1)
        counts[c, width + 1] += int(missing.sum())

def _cluster_distance_sums_loop(
    A: np.ndarray, B_t: np.ndarray, codes: np.ndarray, weight: np.ndarray, sums: np.ndarray
) -> None:
    n_features, n_b = B_t.shape
    squared = np.empty(n_b)
    for i in range(A.shape[0]):
        squared[:] = 0.0
        # Feature by feature, in order: the same sums as subtracting whole rows.
        for f in range(n_features):
            a = A[i, f]
            for j in range(n_b):
                d = a - B_t[f, j]
                squared[j] += d * d
        for j in range(n_b):
            sums[i, codes[j]] += weight[j] * np.sqrt(squared[j])


def _cluster_distance_sums_numpy(
    A: np.ndarray, B_t: np.ndarray, codes: np.ndarray, weight: np.ndarray, sums: np.ndarray
) -> None:
    squared = np.zeros((A.shape[0], B_t.shape[1]))
    for f in range(B_t.shape[0]):
        squared += (A[:, f, None] - B_t[f][None, :]) ** 2
    members = np.zeros((B_t.shape[1], sums.shape[1]))
    members[np.arange(B_t.shape[1]), codes] = weight
    sums += np.sqrt(squared) @ members


if numba is not None:
    _compile = numba.njit(nogil=True, cache=True)
    _min_value = numba.njit(nogil=True, cache=True, fastmath={"nnan", "nsz"})(_min_value)
    _first_at = _compile(_first_at)
    _squared_distances = _compile(_squared_distances)
    _nearest = _compile(_nearest_loop)
    _rank_two = _compile(_rank_two_loop)
    # Helpers first: the loop binds the module's (compiled) helpers when compiled.
    _mix = _compile(_mix)
    _hash_row = _compile(_hash_row)
    _empty_table = _compile(_empty_table)
    _same_row = _compile(_same_row)
    _distinct_codes = _compile(_distinct_loop)
    _unit_interval = _compile(_unit_interval)
    _keep_by_position = _compile(_keep_by_position_loop)
    _thin_weights = _compile(_thin_weights_loop)
    _group_moments = _compile(_group_moments_loop)
    _bin_counts = _compile(_bin_counts_loop)
    _cluster_distance_sums = _compile(_cluster_distance_sums_loop)
    _text_hashes = _compile(_text_hashes_loop)
else:  # pragma: no cover - exercised only where numba is absent
    _nearest = _nearest_numpy
    _rank_two = _rank_two_numpy
    _distinct_codes = _distinct_numpy
    _keep_by_position = _keep_by_position_numpy
    _thin_weights = _thin_weights_numpy
    _group_moments = _group_moments_numpy
    _bin_counts = _bin_counts_numpy
    _cluster_distance_sums = _cluster_distance_sums_numpy
    _text_hashes = _text_hashes_numpy
