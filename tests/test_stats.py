"""regnet.stats: rank correlation, Kolmogorov-Smirnov, Welch and the paired t-test against known
values."""
import math

import pytest

from regnet.stats import kolmogorov_sf, ks_2samp, paired_t, ranks, spearman, welch


def test_ranks_share_ties():
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


def test_spearman_matches_the_textbook_example():
    # scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]): 0.8207826816681233, p 0.08858700531
    r = spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    assert r["rho"] == pytest.approx(0.8207826816681233, abs=1e-12)
    assert r["p"] == pytest.approx(0.0885870053135438, abs=1e-9)
    assert spearman([1, 2, 3], [30, 20, 10])["rho"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="single value"):
        spearman([1, 2, 3], [5, 5, 5])


def test_kolmogorov_distribution():
    assert kolmogorov_sf(1.358) == pytest.approx(0.05, abs=5e-4)   # the 5% critical value
    assert kolmogorov_sf(1.0) == pytest.approx(0.27, abs=1e-3)
    assert kolmogorov_sf(0.0) == 1.0 and kolmogorov_sf(5.0) < 1e-20


def test_ks_directions():
    same = ks_2samp([1, 2, 3], [1, 2, 3])
    assert same["d"] == 0 and same["p"] == 1.0
    a, b = [float(i) for i in range(100)], [float(i) + 100 for i in range(100)]
    worse = ks_2samp(b, a)          # b's errors are all larger: its EDF lies right of a's
    assert worse["d_a_lower"] == 1.0 and worse["d_a_higher"] == 0.0
    assert worse["p_a_lower"] == pytest.approx(math.exp(-2 * 50)) and worse["p_a_higher"] == 1.0
    better = ks_2samp(a, b)
    assert better["d_a_higher"] == 1.0 and better["p_a_lower"] == 1.0
    # a half shift: D = 0.5 both ways round, smaller p with more samples
    half = ks_2samp([float(i) for i in range(10)], [float(i) + 5 for i in range(10)])
    assert half["d"] == pytest.approx(0.5) and 0.05 < half["p"] < 0.3
    big = ks_2samp([float(i) for i in range(100)], [float(i) + 50 for i in range(100)])
    assert big["d"] == pytest.approx(0.5) and big["p"] < 1e-8


def test_welch_interval_contains_the_difference():
    w = welch([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0])
    assert w["diff"] == -1.0 and w["ci95"][0] < -1.0 < w["ci95"][1] and 0.3 < w["p"] < 0.5


def test_paired_t_matches_students_sleep_data():
    # Student (1908), the two drugs' extra sleep of 10 patients; R's
    # t.test(group1, group2, paired = TRUE): t -4.0621, df 9, p 0.002833, 95% CI [-2.4599, -0.7001]
    group1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    group2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    r = paired_t(group1, group2)
    assert r["diff"] == pytest.approx(-1.58) and r["df"] == 9 and r["n"] == 10
    assert r["t"] == pytest.approx(-4.0621, abs=1e-4)
    assert r["p"] == pytest.approx(0.002833, abs=1e-6)
    assert r["ci95"] == pytest.approx([-2.4599, -0.7001], abs=1e-4)
    # the same data unpaired is a weaker test: Welch gives p 0.0794
    assert welch(group1, group2)["p"] == pytest.approx(0.07939, abs=1e-4)
    with pytest.raises(ValueError, match="equally long"):
        paired_t([1.0, 2.0], [1.0])
