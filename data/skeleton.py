"""The MPII 16-joint skeleton: joint order, flip pairs, limbs and the paper's ten body parts."""
from __future__ import annotations

# Joint order of the MPII README (ids 0..15), also used by HRNet/mmpose.
JOINTS: tuple[str, ...] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS = len(JOINTS)
JOINT_ID = {name: i for i, name in enumerate(JOINTS)}

# Left/right pairs swapped by a horizontal flip (HRNet lib/dataset/mpii.py).
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


def flip_index() -> list[int]:
    """Permutation mapping each joint to its mirror joint (identity for centre joints)."""
    perm = list(range(NUM_JOINTS))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


# Bones for drawing a skeleton: (joint a, joint b).
LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 6), (5, 4), (4, 3), (3, 6), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (15, 14), (14, 13), (13, 7),
)

# The ten body parts of the FocusCLIP paper's ROI heatmap (docs/design.md §3.3), joint ids per part.
BODY_PARTS: dict[str, tuple[int, ...]] = {
    "head": (7, 8, 9, 12, 13),
    "torso": (6, 7, 12, 13, 2, 3),
    "l_upper_arm": (13, 14, 7),
    "r_upper_arm": (12, 11, 7),
    "l_lower_arm": (14, 15, 13),
    "r_lower_arm": (11, 10, 12),
    "l_upper_leg": (3, 4, 6),
    "r_upper_leg": (2, 1, 6),
    "l_lower_leg": (4, 5, 3),
    "r_lower_leg": (1, 0, 2),
}
