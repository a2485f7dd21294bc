"""Tree parsing, subtree grouping and table precompute for :mod:`models.treeshap`.

Trees are read from ``booster.dump_model()``. Each tree becomes flat node arrays (internal
nodes numbered by LightGBM's ``split_index``); then either

* a *table tree*: its leaves are partitioned into groups (a subtree plus the path above
  it); each group gets one table indexed by the raw decision bits of its nodes, or
* a *fallback tree* (its tables do not fit the remaining memory budget): per-leaf exact
  evaluation, O(leaves x depth^2) per row.

Leaves deeper than ``MAX_LEAF_BITS`` never get a table (it would hold 2^depth rows); they
are evaluated directly like the leaves of a fallback tree, the rest of the tree still uses
tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models import _treeshap_kernels as K

MAX_GROUP_BITS = 8  # decision bits of a merged (multi-leaf) group table
MAX_LEAF_BITS = 12  # deepest leaf that may get a table of its own (2^12 x 12 doubles = 384 KB)
MEM_WEIGHT = 1.5 / 4096  # estimated per-row cost of one table double (cache refills)


@dataclass
class ParsedTree:
    """One tree in flat form; internal node ids are LightGBM split indices."""

    feat: np.ndarray  # (n_int,) int64 split feature
    thr: np.ndarray  # (n_int,) float64 threshold (unused for categorical)
    mode: np.ndarray  # (n_int,) int64 decision mode, see _treeshap_kernels.MODE_*
    cat: list[np.ndarray]  # per node uint32 bitset words (empty for numerical)
    left: np.ndarray  # (n_int,) child: >= 0 internal id, < 0 is ~leaf id
    right: np.ndarray
    count: np.ndarray  # (n_int,) float64 internal_count
    leaf_value: np.ndarray  # (n_leaves,) float64
    leaf_count: np.ndarray  # (n_leaves,) float64
    leaf_path: list[list[tuple[int, int]]] = field(default_factory=list)  # (node, dir=1 left)
    expected_value: float = 0.0

    @property
    def n_internal(self) -> int:
        return int(self.feat.shape[0])

    def lists(self) -> tuple[list, list, list, list, list]:
        """(feat, count, leaf_count, left, right) as Python lists (fast scalar access)."""
        cached = getattr(self, "_lists", None)
        if cached is None:
            cached = (
                self.feat.tolist(), self.count.tolist(), self.leaf_count.tolist(),
                self.left.tolist(), self.right.tolist(),
            )
            self._lists = cached
        return cached


def _cat_words(threshold: str) -> np.ndarray:
    cats = [int(c) for c in str(threshold).split("||") if c != ""]
    n_words = (max(cats) // 32 + 1) if cats else 0
    words = np.zeros(n_words, np.uint32)
    for c in cats:
        words[c // 32] |= np.uint32(1 << (c % 32))
    return words


def _mode(node: dict) -> int:
    if node["decision_type"] == "==":
        return K.MODE_CAT
    thr = float(node["threshold"])
    mt = node.get("missing_type", "None")
    dl = bool(node.get("default_left", False))
    if mt == "Zero":
        return K.MODE_ZERO_L if dl else K.MODE_ZERO_R
    if mt == "NaN":
        return K.MODE_NOT_GT if dl else K.MODE_LE
    # missing_type None: LightGBM maps NaN to 0.0 and compares 0.0 <= thr.
    return K.MODE_NOT_GT if thr >= 0.0 else K.MODE_LE


def parse_tree(structure: dict) -> ParsedTree:
    """Flatten one ``tree_structure`` of the dump (iteratively: deep trees are fine)."""
    if "split_index" not in structure:  # single-leaf tree
        v = float(structure.get("leaf_value", 0.0))
        e = np.empty(0)
        ei = np.empty(0, np.int64)
        return ParsedTree(ei, e, ei, [], ei, ei, e, np.array([v]), np.array([1.0]), [[]], v)
    internal: dict[int, dict] = {}
    leaves: dict[int, tuple[dict, list[tuple[int, int]]]] = {}
    stack: list[tuple[dict, list[tuple[int, int]]]] = [(structure, [])]
    while stack:
        node, path = stack.pop()
        if "split_index" in node:
            i = int(node["split_index"])
            internal[i] = node
            stack.append((node["left_child"], [*path, (i, 1)]))
            stack.append((node["right_child"], [*path, (i, 0)]))
        else:
            leaves[int(node["leaf_index"])] = (node, path)
    n_int = len(internal)
    n_leaves = len(leaves)

    def child(c: dict) -> int:
        return int(c["split_index"]) if "split_index" in c else ~int(c["leaf_index"])

    nodes = [internal[i] for i in range(n_int)]
    feat = np.array([int(nd["split_feature"]) for nd in nodes], np.int64)
    mode = np.array([_mode(nd) for nd in nodes], np.int64)
    thr = np.array(
        [0.0 if nd["decision_type"] == "==" else float(nd["threshold"]) for nd in nodes]
    )
    cat = [
        _cat_words(nd["threshold"]) if nd["decision_type"] == "==" else np.empty(0, np.uint32)
        for nd in nodes
    ]
    left = np.array([child(nd["left_child"]) for nd in nodes], np.int64)
    right = np.array([child(nd["right_child"]) for nd in nodes], np.int64)
    count = np.array([float(nd["internal_count"]) for nd in nodes])
    lv = np.array([float(leaves[i][0]["leaf_value"]) for i in range(n_leaves)])
    lc = np.array([float(leaves[i][0]["leaf_count"]) for i in range(n_leaves)])
    paths = [leaves[i][1] for i in range(n_leaves)]
    # LightGBM Tree::ExpectedValue: sum of leaf_value * leaf_count / internal_count(root).
    ev = float(np.sum(lv * (lc / count[0])))
    return ParsedTree(feat, thr, mode, cat, left, right, count, lv, lc, paths, ev)


def leaf_slots(tree: ParsedTree, leaf: int) -> tuple[list[int], list[float], list[int]]:
    """Unique path features of a leaf (first-appearance order), their zero fractions, and
    the slot of every path node."""
    feat, count, leaf_count = tree.lists()[:3]
    feats: list[int] = []
    zs: list[float] = []
    node_slot: list[int] = []
    path = tree.leaf_path[leaf]
    for j, (nd, _) in enumerate(path):
        nxt = path[j + 1][0] if j + 1 < len(path) else ~leaf
        frac = (count[nxt] if nxt >= 0 else leaf_count[~nxt]) / count[nd]
        f = feat[nd]
        if f in feats:
            s = feats.index(f)
            zs[s] *= frac
        else:
            s = len(feats)
            feats.append(f)
            zs.append(frac)
        node_slot.append(s)
    return feats, zs, node_slot


@dataclass
class Group:
    bits: list[int]  # internal node ids, bit position = list index
    leaves: list[int]

    @property
    def b(self) -> int:
        return len(self.bits)


def plan_groups(
    tree: ParsedTree, max_group_bits: int = MAX_GROUP_BITS
) -> tuple[list[Group], list[int]]:
    """Partition the leaves into table groups minimising estimated per-row work, plus the
    leaves too deep for a table (evaluated directly)."""
    direct = [lf for lf, p in enumerate(tree.leaf_path) if len(p) > MAX_LEAF_BITS]
    feat, _, _, left, right = tree.lists()
    # path (internal nodes from the root) to every internal node, parents before children
    node_path: dict[int, list[int]] = {0: []}
    order = [0]
    for nd in order:
        for c in (left[nd], right[nd]):
            if c >= 0:
                node_path[c] = [*node_path[nd], nd]
                order.append(c)

    def cost(bits: list[int]) -> float:
        n_cols = len({feat[i] for i in bits})
        # index build is vectorised (cheap per bit); each column is a gather + add; big
        # tables cost cache refills once per block of rows.
        return 2.0 + 0.4 * len(bits) + 1.5 * n_cols + MEM_WEIGHT * n_cols * (1 << len(bits))

    best: dict[int, tuple[float, list[Group]]] = {}
    sub_ints: dict[int, list[int]] = {}
    sub_leaves: dict[int, list[int]] = {}
    has_direct: set[int] = set()  # subtrees holding a leaf too deep for a table
    for nd in reversed(order):  # children before parents
        parts: list[Group] = []
        split_cost = 0.0
        ints = [nd]
        lvs: list[int] = []
        for c in (left[nd], right[nd]):
            if c >= 0:
                sc, sg = best[c]
                ints += sub_ints[c]
                lvs += sub_leaves[c]
                if c in has_direct:
                    has_direct.add(nd)
            else:
                lbits = [i for i, _ in tree.leaf_path[~c]]
                if len(lbits) > MAX_LEAF_BITS:  # evaluated directly, never in a group
                    sc, sg = 4.0 * len(lbits) ** 2, []
                    has_direct.add(nd)
                else:
                    sc, sg = cost(lbits), [Group(lbits, [~c])]
                    lvs.append(~c)
            split_cost += sc
            parts.extend(sg)
        sub_ints[nd] = ints
        sub_leaves[nd] = lvs
        bits = node_path[nd] + ints
        if len(bits) <= max_group_bits and nd not in has_direct:
            gc = cost(bits)
            if gc <= split_cost:
                best[nd] = (gc, [Group(bits, lvs)])
                continue
        best[nd] = (split_cost, parts)
    return best[0][1], direct


def group_cols(tree: ParsedTree, g: Group) -> list[int]:
    feat = tree.lists()[0]
    cols: list[int] = []
    for nd in g.bits:
        f = feat[nd]
        if f not in cols:
            cols.append(f)
    return cols


def group_bytes(tree: ParsedTree, groups: list[Group]) -> int:
    return sum(8 * len(group_cols(tree, g)) << g.b for g in groups)


@dataclass
class Model:
    """Flat arrays consumed by ``_treeshap_kernels.shap_blocks``."""

    arrays: dict[str, np.ndarray]
    max_nodes: int
    max_slots: int
    n_fallback_trees: int
    n_direct_leaves: int
    table_bytes: int
    expected_value: float


def _i64(x: list[int]) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def build_model(
    trees: list[ParsedTree], table_budget_bytes: int, max_group_bits: int = MAX_GROUP_BITS
) -> Model:
    """Choose table vs fallback per tree under the budget, then precompute all tables."""
    plans = [plan_groups(t, max_group_bits) if t.n_internal > 0 else ([], []) for t in trees]
    sizes = [group_bytes(t, p[0]) for t, p in zip(trees, plans, strict=True)]
    # cheapest tables first, so the budget covers as many trees as possible
    used = 0
    use_table = [False] * len(trees)
    for i in sorted(range(len(trees)), key=lambda i: sizes[i]):
        if trees[i].n_internal == 0:
            continue
        if used + sizes[i] <= table_budget_bytes:
            use_table[i] = True
            used += int(sizes[i])

    tree_node_ptr = [0]
    node_feat: list[int] = []
    node_thr: list[float] = []
    node_mode: list[int] = []
    node_cat_ptr = [0]
    cat_words: list[int] = []
    tree_grp_ptr = [0]
    grp_bit_ptr = [0]
    grp_bits: list[int] = []
    grp_col_ptr = [0]
    grp_cols: list[int] = []
    grp_off: list[int] = []
    grp_b: list[int] = []
    grp_leaf_ptr = [0]
    g_leaf_val: list[float] = []
    g_leaf_slot_ptr = [0]
    g_slot_z: list[float] = []
    g_slot_col: list[int] = []
    g_leaf_path_ptr = [0]
    g_path_bit: list[int] = []
    g_path_dir: list[int] = []
    g_path_slot: list[int] = []
    tree_leaf_ptr = [0]
    fb_leaf_val: list[float] = []
    fb_leaf_slot_ptr = [0]
    fb_slot_feat: list[int] = []
    fb_slot_z: list[float] = []
    fb_leaf_path_ptr = [0]
    fb_path_node: list[int] = []
    fb_path_dir: list[int] = []
    fb_path_slot: list[int] = []
    table_len = 0
    max_nodes = 0
    max_slots = 1
    n_fallback = 0

    for t, plan, tab in zip(trees, plans, use_table, strict=True):
        node_feat.extend(t.feat.tolist())
        node_thr.extend(t.thr.tolist())
        node_mode.extend(t.mode.tolist())
        for words in t.cat:
            cat_words.extend(int(w) for w in words)
            node_cat_ptr.append(len(cat_words))
        tree_node_ptr.append(len(node_feat))
        max_nodes = max(max_nodes, t.n_internal)
        groups, direct = plan
        if t.n_internal > 0 and not tab:
            n_fallback += 1
            groups, direct = [], list(range(len(t.leaf_value)))
        if t.n_internal > 0:
            for g in groups:
                cols = group_cols(t, g)
                bitpos = {nd: i for i, nd in enumerate(g.bits)}
                grp_bits.extend(g.bits)
                grp_bit_ptr.append(len(grp_bits))
                grp_cols.extend(cols)
                grp_col_ptr.append(len(grp_cols))
                grp_off.append(table_len)
                grp_b.append(g.b)
                table_len += len(cols) << g.b
                for lf in g.leaves:
                    feats, zs, slots = leaf_slots(t, lf)
                    g_leaf_val.append(float(t.leaf_value[lf]))
                    g_slot_z.extend(zs)
                    g_slot_col.extend(cols.index(f) for f in feats)
                    g_leaf_slot_ptr.append(len(g_slot_z))
                    for (nd, d), s in zip(t.leaf_path[lf], slots, strict=True):
                        g_path_bit.append(bitpos[nd])
                        g_path_dir.append(d)
                        g_path_slot.append(s)
                    g_leaf_path_ptr.append(len(g_path_bit))
                grp_leaf_ptr.append(len(g_leaf_val))
            for lf in direct:
                feats, zs, slots = leaf_slots(t, lf)
                fb_leaf_val.append(float(t.leaf_value[lf]))
                fb_slot_feat.extend(feats)
                fb_slot_z.extend(zs)
                fb_leaf_slot_ptr.append(len(fb_slot_z))
                max_slots = max(max_slots, len(feats))
                for (nd, d), s in zip(t.leaf_path[lf], slots, strict=True):
                    fb_path_node.append(nd)
                    fb_path_dir.append(d)
                    fb_path_slot.append(s)
                fb_leaf_path_ptr.append(len(fb_path_node))
        tree_grp_ptr.append(len(grp_off))
        tree_leaf_ptr.append(len(fb_leaf_val))

    tables = np.empty(table_len)
    grp_off_a = _i64(grp_off)
    grp_b_a = _i64(grp_b)
    if grp_off:
        K.fill_group_tables(
            tables, grp_off_a, grp_b_a, np.diff(_i64(grp_col_ptr)), _i64(grp_leaf_ptr),
            np.asarray(g_leaf_val, np.float64), _i64(g_leaf_slot_ptr),
            np.asarray(g_slot_z, np.float64), _i64(g_slot_col), _i64(g_leaf_path_ptr),
            _i64(g_path_bit), np.asarray(g_path_dir, np.uint8), _i64(g_path_slot),
        )
    arrays = {
        "tree_node_ptr": _i64(tree_node_ptr),
        "node_feat": _i64(node_feat),
        "node_thr": np.asarray(node_thr, np.float64),
        "node_mode": _i64(node_mode),
        "node_cat_ptr": _i64(node_cat_ptr),
        "cat_words": np.asarray(cat_words, np.uint32),
        "tree_grp_ptr": _i64(tree_grp_ptr),
        "grp_bit_ptr": _i64(grp_bit_ptr),
        "grp_bits": _i64(grp_bits),
        "grp_col_ptr": _i64(grp_col_ptr),
        "grp_cols": _i64(grp_cols),
        "grp_off": grp_off_a,
        "grp_b": grp_b_a,
        "tables": tables,
        "tree_leaf_ptr": _i64(tree_leaf_ptr),
        "fb_leaf_val": np.asarray(fb_leaf_val, np.float64),
        "fb_leaf_slot_ptr": _i64(fb_leaf_slot_ptr),
        "fb_slot_feat": _i64(fb_slot_feat),
        "fb_slot_z": np.asarray(fb_slot_z, np.float64),
        "fb_leaf_path_ptr": _i64(fb_leaf_path_ptr),
        "fb_path_node": _i64(fb_path_node),
        "fb_path_dir": np.asarray(fb_path_dir, np.uint8),
        "fb_path_slot": _i64(fb_path_slot),
    }
    return Model(
        arrays, max_nodes, max_slots, n_fallback, len(fb_leaf_val), int(tables.nbytes),
        float(sum(t.expected_value for t in trees)),
    )
