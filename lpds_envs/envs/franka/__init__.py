"""Franka Panda tasks in the RAI ``robotic`` simulator (paper Sec. 5.7, App. G): ``lpds/FrankaPickPlace-v0``
(:mod:`.pick_place`) and ``lpds/FrankaMugHang-v0`` (:mod:`.mug_hang`), on the shared base :mod:`.base`.

Needs the ``franka`` extra (``pip install 'lpds[franka]'``, which installs ``robotic`` 0.4.2; its binary needs Debian's
``liblapack3``) and, for images, an X server (:mod:`.simulator`). ``robotic`` is imported when an env is made, never by
``import lpds_envs``.
"""

from .simulator import MISSING_EXTRA, ensure_display, import_robotic

#: raw id -> (entry point, time limit in 0.1 s steps)
FRANKA_RAW_IDS: dict[str, tuple[str, int]] = {
    "lpds/FrankaPickPlace-v0": ("lpds_envs.envs.franka.pick_place:make_pick_place", 150),
    "lpds/FrankaMugHang-v0": ("lpds_envs.envs.franka.mug_hang:make_mug_hang", 200),
}

__all__ = ["FRANKA_RAW_IDS", "MISSING_EXTRA", "ensure_display", "import_robotic"]
