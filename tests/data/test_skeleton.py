"""The MPII skeleton: joint order, left/right flip pairs, body parts."""
from __future__ import annotations

from focusclip.data.skeleton import BODY_PARTS, FLIP_PAIRS, JOINTS, flip_index


def test_skeleton_matches_mpii_readme_order():
    assert JOINTS[0] == "r_ankle" and JOINTS[9] == "head_top" and JOINTS[15] == "l_wrist"
    perm = flip_index()
    assert [perm[perm[i]] for i in range(16)] == list(range(16))
    for a, b in FLIP_PAIRS:
        assert JOINTS[a].replace("r_", "X_") == JOINTS[b].replace("l_", "X_")
    assert len(BODY_PARTS) == 10 and BODY_PARTS["torso"] == (6, 7, 12, 13, 2, 3)
