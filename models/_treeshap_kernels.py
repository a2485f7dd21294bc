"""Numba kernels behind :mod:`models.treeshap` (exact path-dependent TreeSHAP).

Notation. For a leaf ``l`` with value ``v`` and unique path features ``U`` (``d = |U|``),
``z_k`` is the product of child/parent data counts over the splits on feature ``k`` along
the path (LightGBM's "zero fraction") and ``o_k`` is 1 when the row satisfies every split
on ``k`` along the path. The leaf adds to feature ``i``

    phi_i = v * (o_i - z_i) * sum_s w(s, d) * [t^s] prod_{k != i} (o_k t + z_k),
    w(s, d) = s! (d - 1 - s)! / d!,

which is the Shapley value of ``f(S) = v prod_{k in S} o_k prod_{k not in S} z_k``,
i.e. exactly what LightGBM's ``pred_contrib`` (Lundberg's TreeSHAP) computes. Since the
``o_k`` are bits, a leaf's contributions are a table over ``2^d`` patterns; tables of
all leaves under a small subtree are summed into one table indexed by the raw decision
bits of the subtree's internal nodes and of the path above it, so a row pays one table
read per (group, feature) instead of one per (leaf, feature).

Decision bits follow LightGBM's ``Tree::NumericalDecision`` / ``CategoricalDecision``
(include/LightGBM/tree.h): bit = 1 means "goes to the left child".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Node decision modes (precomputed in Python from missing_type / default_left / threshold).
MODE_LE = 0  # bit = x <= thr, NaN -> 0 (NaN goes right)
MODE_NOT_GT = 1  # bit = not (x > thr), NaN -> 1 (NaN goes left)
MODE_ZERO_L = 2  # missing_type Zero, default left: NaN or |x| <= kZero -> 1
MODE_ZERO_R = 3  # missing_type Zero, default right: NaN or |x| <= kZero -> 0
MODE_CAT = 4  # categorical: int(x) in bitset -> 1; NaN, negative, out of int32 -> 0

# LightGBM: `const double kZeroThreshold = 1e-35f;` (a float literal widened to double).
K_ZERO = float(np.float32(1e-35))


@njit(cache=True, nogil=True)
def shapley_weights(d: int) -> np.ndarray:
    """w[s] = s! (d-1-s)! / d! for s = 0 .. d-1."""
    w = np.empty(max(d, 1))
    if d == 0:
        return w
    w[0] = 1.0 / d
    for s in range(d - 1):
        w[s + 1] = w[s] * (s + 1) / (d - 1 - s)
    return w


@njit(cache=True, nogil=True)
def leaf_phi(value, z, ones, d, w, q, p, out):
    """Contributions of one leaf for one pattern; ``ones[k]`` in {0, 1}; writes out[:d]."""
    q[0] = 1.0
    for s in range(1, d + 1):
        q[s] = 0.0
    # q(t) = prod_k (o_k t + z_k)
    for k in range(d):
        zk = z[k]
        if ones[k]:
            for s in range(k + 1, 0, -1):
                q[s] = q[s] * zk + q[s - 1]
        else:
            for s in range(k + 1, 0, -1):
                q[s] = q[s] * zk
        q[0] *= zk
    # o_i = 0: (0 - z_i) * (q / z_i) = -q, no division needed.
    neg = 0.0
    for s in range(d):
        neg += w[s] * q[s]
    for i in range(d):
        zi = z[i]
        if ones[i]:
            # p(t) = q(t) / (t + z_i), top-down synthetic division (stable: 0 <= z_i <= 1).
            p[d - 1] = q[d]
            for s in range(d - 1, 0, -1):
                p[s - 1] = q[s] - zi * p[s]
            acc = 0.0
            for s in range(d):
                acc += w[s] * p[s]
            out[i] = value * (1.0 - zi) * acc
        else:
            out[i] = -value * neg


@njit(cache=True, nogil=True)
def leaf_table(value, z, d):
    """(2^d, d) table of one leaf's contributions for every pattern of its path features."""
    n = 1 << d
    out = np.empty((n, d))
    w = shapley_weights(d)
    q = np.empty(d + 1)
    p = np.empty(max(d, 1))
    ones = np.empty(d, np.uint8)
    row = np.empty(max(d, 1))
    for m in range(n):
        for k in range(d):
            ones[k] = (m >> k) & 1
        leaf_phi(value, z, ones, d, w, q, p, row)
        for i in range(d):
            out[m, i] = row[i]
    return out


@njit(parallel=True, cache=True, nogil=True)
def fill_group_tables(
    tables, grp_off, grp_b, grp_ncol, grp_leaf_ptr, leaf_val, leaf_slot_ptr, slot_z,
    slot_col, leaf_path_ptr, path_bit, path_dir, path_slot,
):
    """Sum leaf tables into group tables. Layout of a group: [col][combo] at grp_off."""
    n_groups = grp_off.shape[0]
    for g in prange(n_groups):
        b = grp_b[g]
        nc = 1 << b
        off = grp_off[g]
        for j in range(grp_ncol[g] * nc):
            tables[off + j] = 0.0
        for lf in range(grp_leaf_ptr[g], grp_leaf_ptr[g + 1]):
            s0 = leaf_slot_ptr[lf]
            d = leaf_slot_ptr[lf + 1] - s0
            lt = leaf_table(leaf_val[lf], slot_z[s0 : s0 + d], d)
            full = (1 << d) - 1
            p0 = leaf_path_ptr[lf]
            p1 = leaf_path_ptr[lf + 1]
            for c in range(nc):
                fail = 0
                for j in range(p0, p1):
                    if ((c >> path_bit[j]) & 1) != path_dir[j]:
                        fail |= 1 << path_slot[j]
                m = full & ~fail
                for i in range(d):
                    tables[off + slot_col[s0 + i] * nc + c] += lt[m, i]


@njit(cache=True, nogil=True, inline="always")
def _node_bits(xcol, R, mode, thr, cat_words, c0, c1, out):
    """Decision bit (1 = left) of one node for R rows of one feature column."""
    if mode == MODE_LE:
        for r in range(R):
            out[r] = xcol[r] <= thr
    elif mode == MODE_NOT_GT:
        for r in range(R):
            out[r] = not (xcol[r] > thr)
    elif MODE_ZERO_L <= mode <= MODE_ZERO_R:
        dl = mode == MODE_ZERO_L
        for r in range(R):
            v = xcol[r]
            miss = (v != v) or (v >= -K_ZERO and v <= K_ZERO)
            out[r] = dl if miss else (v <= thr)
    else:
        nw = c1 - c0
        for r in range(R):
            v = xcol[r]
            bit = False
            # C++ static_cast<int>: truncation; NaN / out of int32 range -> INT_MIN (< 0).
            if v > -2147483649.0 and v < 2147483648.0:
                iv = int(v)
                if iv >= 0:
                    wi = iv >> 5
                    if wi < nw:
                        bit = ((cat_words[c0 + wi] >> (iv & 31)) & 1) == 1
            out[r] = bit


@njit(parallel=True, cache=True, nogil=True)
def shap_blocks(
    X, out, block,
    tree_node_ptr, node_feat, node_thr, node_mode, node_cat_ptr, cat_words,
    tree_grp_ptr, grp_bit_ptr, grp_bits, grp_col_ptr, grp_cols, grp_off, grp_b, tables,
    tree_leaf_ptr, fb_leaf_val, fb_leaf_slot_ptr, fb_slot_feat, fb_slot_z,
    fb_leaf_path_ptr, fb_path_node, fb_path_dir, fb_path_slot, max_nodes, max_slots,
):
    """SHAP values of all rows of X (n, p) into out[:, :p]; rows in blocks, trees inside."""
    n, p = X.shape
    n_trees = tree_node_ptr.shape[0] - 1
    n_blocks = (n + block - 1) // block
    for bi in prange(n_blocks):
        r0 = bi * block
        r1 = min(n, r0 + block)
        R = r1 - r0
        xt = np.empty((p, R))
        for r in range(R):
            for f in range(p):
                xt[f, r] = X[r0 + r, f]
        acc = np.zeros((p, R))
        bits = np.empty((max(max_nodes, 1), R), np.uint8)
        idx = np.empty(R, np.uint64)  # unsigned: no negative-index wraparound checks
        # fallback scratch
        ones = np.empty(max_slots + 1, np.uint8)
        q = np.empty(max_slots + 2)
        pp = np.empty(max_slots + 1)
        phi = np.empty(max_slots + 1)
        for t in range(n_trees):
            n0 = tree_node_ptr[t]
            n1 = tree_node_ptr[t + 1]
            if n1 == n0:
                continue  # single-leaf tree: only the expected value
            for nd in range(n0, n1):
                _node_bits(
                    xt[node_feat[nd]], R, node_mode[nd], node_thr[nd], cat_words,
                    node_cat_ptr[nd], node_cat_ptr[nd + 1], bits[nd - n0],
                )
            for g in range(tree_grp_ptr[t], tree_grp_ptr[t + 1]):
                for r in range(R):
                    idx[r] = np.uint64(0)
                j0 = grp_bit_ptr[g]
                for j in range(j0, grp_bit_ptr[g + 1]):
                    brow = bits[grp_bits[j]]
                    pos = j - j0
                    for r in range(R):
                        idx[r] |= np.uint64(brow[r]) << np.uint64(pos)
                nc = np.uint64(1) << np.uint64(grp_b[g])
                base = np.uint64(grp_off[g])
                for j in range(grp_col_ptr[g], grp_col_ptr[g + 1]):
                    arow = acc[grp_cols[j]]
                    for r in range(R):
                        arow[r] += tables[base + idx[r]]
                    base += nc
            l0 = tree_leaf_ptr[t]
            l1 = tree_leaf_ptr[t + 1]
            for lf in range(l0, l1):
                s0 = fb_leaf_slot_ptr[lf]
                d = fb_leaf_slot_ptr[lf + 1] - s0
                w = shapley_weights(d)
                zz = fb_slot_z[s0 : s0 + d]
                for r in range(R):
                    for k in range(d):
                        ones[k] = 1
                    for j in range(fb_leaf_path_ptr[lf], fb_leaf_path_ptr[lf + 1]):
                        if bits[fb_path_node[j], r] != fb_path_dir[j]:
                            ones[fb_path_slot[j]] = 0
                    leaf_phi(fb_leaf_val[lf], zz, ones, d, w, q, pp, phi)
                    for k in range(d):
                        acc[fb_slot_feat[s0 + k], r] += phi[k]
        for r in range(R):
            for f in range(p):
                out[r0 + r, f] = acc[f, r]
