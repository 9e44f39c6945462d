"""lpds_envs.metrics: D3IL's Avoiding route classifier and behaviour entropy, on hand-made inputs with known answers."""

import numpy as np
import pytest

from lpds_envs.metrics import avoiding_route, behaviour_entropy


def polyline(points, n=40):
    pts = np.asarray(points, dtype=float)
    return np.concatenate([np.linspace(a, b, n, endpoint=False) for a, b in zip(pts[:-1], pts[1:])] + [pts[-1:]])


def test_route_of_hand_made_paths():
    # left of row 1 (x < 0.5), middle of row 2 (0.425 < x < 0.575), rightmost of row 3 (x > 0.65): 12*0 + 4*1 + 3
    path = polyline([(0.525, -0.28), (0.42, -0.15), (0.42, -0.05), (0.5, 0.03), (0.5, 0.13), (0.72, 0.21), (0.72, 0.4)])
    assert avoiding_route(path) == 7
    # right, top (x < 0.425), second gap of row 3 (0.35 < x < 0.5): 12 + 0 + 1
    path = polyline(
        [(0.525, -0.28), (0.58, -0.15), (0.58, -0.05), (0.35, 0.03), (0.35, 0.13), (0.42, 0.21), (0.42, 0.4)]
    )
    assert avoiding_route(path) == 13
    # observations (desired x, y, actual x, y): the actual position decides
    obs = np.concatenate([np.full_like(path, 0.9), path], axis=1)
    assert avoiding_route(obs) == 13


def test_route_is_read_where_d3il_reads_it():
    # row 1 is read at the first position within 0.03 of y = -0.1: a path that is right of 0.5 at y = -0.13 and
    # swerves left just after still counts as right
    path = np.array([[0.52, -0.2], [0.52, -0.131], [0.52, -0.129], [0.45, -0.1], [0.45, 0.08], [0.45, 0.3]])
    assert avoiding_route(path) // 12 == 1
    # row 3 is read at the first position at or past y = 0.26
    path = np.array([[0.45, -0.28], [0.45, -0.1], [0.5, 0.08], [0.6, 0.259], [0.4, 0.26], [0.6, 0.3]])
    assert avoiding_route(path) % 4 == 1


def test_unfinished_paths_have_no_route():
    assert avoiding_route(np.array([[0.525, -0.28], [0.45, -0.1], [0.45, 0.1]])) == -1  # never reached row 3
    assert avoiding_route(np.array([[0.525, -0.28], [0.525, -0.2]])) == -1
    # skipping a row's window entirely (a jump) leaves it unread
    assert avoiding_route(np.array([[0.45, -0.2], [0.45, 0.0], [0.45, 0.08], [0.45, 0.3]])) == -1
    with pytest.raises(ValueError, match="shape"):
        avoiding_route(np.zeros((5, 3)))


def test_behaviour_entropy_known_answers():
    assert behaviour_entropy(np.arange(24)) == pytest.approx(1.0)
    assert behaviour_entropy(np.repeat(np.arange(24), 5)) == pytest.approx(1.0)
    assert behaviour_entropy([4, 4, 4, 4]) == 0.0
    assert behaviour_entropy([0, 1]) == pytest.approx(np.log(2) / np.log(24))
    # p = (1/2, 1/4, 1/4): H = 1.5 bits
    assert behaviour_entropy([2, 2, 7, 9]) == pytest.approx(1.5 * np.log(2) / np.log(24))
    # only successful rollouts count (D3IL: mode_encoding[successes == 1])
    assert behaviour_entropy([0, 1, 2, 3], success=[True, True, False, False]) == pytest.approx(np.log(2) / np.log(24))
    assert behaviour_entropy([5, -1, -1]) == 0.0  # unlabelled rollouts are failures by default
    assert behaviour_entropy([-1, -1]) == 0.0  # no success: no behaviour
    assert behaviour_entropy([0, 1, 2, 3], n_modes=4) == pytest.approx(1.0)


def test_behaviour_entropy_bad_input():
    with pytest.raises(ValueError, match="n_modes"):
        behaviour_entropy([0], n_modes=1)
    with pytest.raises(ValueError, match="success"):
        behaviour_entropy([0, 1], success=[True])
    with pytest.raises(ValueError, match="modes in"):
        behaviour_entropy([0, 30])
    with pytest.raises(ValueError, match="modes in"):
        behaviour_entropy([-1, 3], success=[True, True])
