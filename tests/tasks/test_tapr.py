"""TaPR against examples worked by hand from its definitions (Hwang et al. 2019)."""

import math

import numpy as np
import pytest

from rnnbench.tasks.anomaly import best_f1_threshold
from rnnbench.tasks.tapr import ambiguous_weights, tapr, tapr_threshold

W0 = 1 / (1 + math.exp(-6))  # first step after an attack: 0.997527
W_MID = 0.5  # the middle of a 3-step ambiguous section


def steps(n, *ranges):
    out = np.zeros(n, dtype=np.int64)
    for a, b in ranges:
        out[a:b] = 1
    return out


def test_ambiguous_weights_decay_from_one_to_zero():
    np.testing.assert_allclose(ambiguous_weights(3), [W0, W_MID, 1 - W0])
    np.testing.assert_allclose(ambiguous_weights(1), [W0])
    assert len(ambiguous_weights(0)) == 0
    w = ambiguous_weights(50)
    assert np.all(np.diff(w) < 0) and w[0] > 0.99 and w[-1] < 0.01


def test_two_attacks_three_predictions_by_hand():
    # attacks [2, 6) and [10, 12); alarms [3, 5), [7, 9) (false) and [11, 13)
    label = steps(14, (2, 6), (10, 12))
    pred = steps(14, (3, 5), (7, 9), (11, 13))
    m = tapr(pred, label)
    # recall: shares 2/4 and 1/2 both reach theta 0.5 -> TaR_d 1, TaR_p 0.5
    assert (m["tar_d"], m["tar_p"], m["tar"]) == pytest.approx((1.0, 0.5, 0.75))
    # precision: alarms are covered 1, 0 and 1/2 -> TaP_d 2/3, TaP_p 1/2
    assert (m["tap_d"], m["tap_p"]) == pytest.approx((2 / 3, 0.5))
    assert m["tap"] == pytest.approx(0.5 * 2 / 3 + 0.25)
    assert m["f1"] == pytest.approx(2 * (7 / 12) * 0.75 / (7 / 12 + 0.75))  # 0.65625
    assert (m["n_attacks"], m["n_predictions"], m["n_detected"]) == (2, 3, 2)


def test_the_ambiguous_section_credits_a_late_alarm():
    label = steps(10, (2, 5))
    pred = steps(10, (4, 7))  # one step inside, two just after
    late = tapr(pred, label, delta=3)
    share = (1 + W0 + W_MID) / 3  # 0.832509
    assert (late["tar_d"], late["tar_p"]) == pytest.approx((1.0, share))
    assert (late["tap_d"], late["tap_p"]) == pytest.approx((1.0, share))
    assert late["f1"] == pytest.approx(0.5 + 0.5 * share)
    strict = tapr(pred, label)  # delta 0: only 1 of 3 steps is on the attack
    assert (strict["tar_d"], strict["tar"], strict["tap"]) == pytest.approx((0, 1 / 6, 1 / 6))


def test_the_ambiguous_section_stops_at_the_next_attack():
    label = steps(6, (0, 2), (3, 5))
    pred = steps(6, (2, 3))  # the one step between them: A1's ambiguous section
    m = tapr(pred, label, delta=3)
    # A1 share W0 / 2 = 0.4988 misses theta; A2 gets nothing
    assert (m["tar_d"], m["tar_p"]) == pytest.approx((0.0, W0 / 4))
    assert (m["tap_d"], m["tap_p"]) == pytest.approx((1.0, W0))


def test_one_long_alarm_over_two_attacks_and_the_parameters():
    label = steps(8, (1, 3), (5, 7))
    pred = np.ones(8, dtype=np.int64)
    m = tapr(pred, label)
    assert m["tar"] == pytest.approx(1.0)  # each attack fully covered
    assert (m["tap_d"], m["tap_p"]) == pytest.approx((1.0, 0.5))  # half the alarm on attacks
    assert tapr(pred, label, theta=0.6)["tap_d"] == 0.0
    assert tapr(pred, label, alpha=1.0)["tap"] == pytest.approx(1.0)
    assert tapr(pred, label, alpha=0.0)["tap"] == pytest.approx(0.5)
    none = tapr(np.zeros(8, dtype=np.int64), label)
    assert (none["tap"], none["tar"], none["f1"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="theta"):
        tapr(pred, label, theta=1.5)
    with pytest.raises(ValueError, match="delta"):
        tapr(pred, label, delta=-1)
    with pytest.raises(ValueError, match="differ in length"):
        tapr(pred[:-1], label)


def test_threshold_rule_does_not_saturate_where_point_adjust_does():
    # One spike per 20-step attack: point-adjusted F1 is a perfect 1, TaPR is not fooled.
    label = steps(200, (20, 40), (80, 100), (150, 170))
    scores = np.zeros(200)
    scores[[25, 90, 160]] = 5.0
    _, pa = best_f1_threshold(scores, label, point_adjusted=True)
    assert pa["f1"] == 1.0
    _, m = tapr_threshold(scores, label)
    assert m["f1"] < 0.2  # TaR = 0.5 * 0 + 0.5 * 1/20: the alarms cover 5% of each attack
    # Scores high over the attacks: the rule finds the threshold that flags exactly them.
    good = label * 2.0 + np.linspace(0, 0.5, 200)
    thr, m = tapr_threshold(good, label)
    assert m["f1"] == pytest.approx(1.0)
    assert np.array_equal(good > thr, label.astype(bool))
    with pytest.raises(ValueError, match="no attack steps"):
        tapr_threshold(good, np.zeros(200, dtype=np.int64))
