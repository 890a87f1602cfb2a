"""Fig. 6 (Sec. 5.2): the PASS-range split, equal numbers per range, and the InfiMNIST row name."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.pipeline.evaluation import fig6_rows
from hotcold.pipeline.fig6 import pass_range_masks, range_label, split_by_pass
from hotcold.pipeline.infimnist import row_name

RANGES = [[0.5, 0.6], [0.6, 0.7], [0.7, 0.8], [0.8, 0.9], [0.9, 1.0]]


def test_ranges_are_half_open_and_the_last_includes_one():
    scores = np.array([0.49, 0.5, 0.5999, 0.6, 0.8999, 0.9, 1.0, np.nan])
    masks = pass_range_masks(scores, RANGES, include_all=True)
    assert list(masks) == ["0.5-0.6", "0.6-0.7", "0.7-0.8", "0.8-0.9", "0.9-1.0", "all"]
    assert np.flatnonzero(masks["0.5-0.6"]).tolist() == [1, 2]
    assert np.flatnonzero(masks["0.6-0.7"]).tolist() == [3]
    assert np.flatnonzero(masks["0.8-0.9"]).tolist() == [4]
    assert np.flatnonzero(masks["0.9-1.0"]).tolist() == [5, 6]
    assert masks["all"].all()  # below 0.5 and without a PASS too
    assert "all" not in pass_range_masks(scores, RANGES, include_all=False)


def _net(rng, n):
    keys = np.array([f"k{i:04d}" for i in range(n)], dtype=object)
    return keys, rng.uniform(0.45, 1.0, n)


def test_split_gives_every_range_the_smallest_ranges_count_on_every_net():
    rng = np.random.default_rng(0)
    nets = {"base0": _net(rng, 400), "base1": _net(rng, 300)}
    n, counts, keys = split_by_pass(nets, RANGES, include_all=True, seed=7)
    assert n == min(c for by_range in counts.values() for c in by_range.values())
    assert counts["base0"]["all"] == 400
    for net, (all_keys, scores) in nets.items():
        masks = pass_range_masks(scores, RANGES, include_all=True)
        for label, chosen in keys[net].items():
            assert len(chosen) == len(set(chosen)) == n
            in_range = set(all_keys[masks[label]].tolist())
            assert set(chosen) <= in_range
            assert chosen == sorted(chosen)
    again = split_by_pass(nets, RANGES, include_all=True, seed=7)
    assert again[2] == keys
    assert split_by_pass(nets, RANGES, include_all=True, seed=8)[2] != keys


def test_a_range_without_images_is_left_out_not_emptying_the_others():
    keys = np.array(["a", "b", "c", "d"], dtype=object)
    nets = {"base0": (keys, np.array([0.55, 0.56, 0.95, 0.97]))}
    n, counts, chosen = split_by_pass(nets, [[0.5, 0.6], [0.7, 0.8], [0.9, 1.0]], include_all=True, seed=0)
    assert n == 2 and counts["base0"]["0.7-0.8"] == 0
    assert list(chosen["base0"]) == ["0.5-0.6", "0.9-1.0", "all"]


def test_fig6_rows_average_over_nets_in_pass_order():
    results = {f"evaluate/fig6/{label}/{net}": {"set": label, "base": net, "train_images": 5, "weights": "w",
                                               "mnist_error": e, "adv_error": 2 * e}
               for label, e in (("all", 0.01), ("0.9-1.0", 0.02), ("0.5-0.6", 0.03)) for net in ("base0", "base1")}
    rows = fig6_rows(results)
    assert [r["pass_range"] for r in rows] == ["0.5-0.6", "0.9-1.0", "all"]
    assert rows[0]["nets"] == 2 and rows[0]["mnist_error_mean"] == pytest.approx(0.03)
    assert rows[1]["adv_error_mean"] == pytest.approx(0.04) and rows[1]["train_images"] == 5


@pytest.mark.parametrize("low, high, label", [(0.5, 0.6, "0.5-0.6"), (0.9, 1, "0.9-1.0"), (0.85, 0.95, "0.85-0.95")])
def test_range_labels(low, high, label):
    assert range_label(low, high) == label


@pytest.mark.parametrize("samples, name", [(1000000, "InfiMNIST (1M)"), (20000, "InfiMNIST (20K)"),
                                           (12345, "InfiMNIST (12345)")])
def test_infimnist_row_names(samples, name):
    assert row_name(samples, original=True) == name
    assert row_name(samples, original=False) == name.replace("InfiMNIST", "InfiMNIST-style")
