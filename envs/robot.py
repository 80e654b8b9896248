"""A Cartesian (gantry) arm with a two-finger parallel gripper, built from primitive geoms only.

Design decisions:
- What it is: a gantry. Three slide joints (x, y, z) carry a palm; two fingers ride on slide joints of the
  palm. Every joint is driven by a MuJoCo position actuator. There are no meshes, so a 128x128 frame renders
  in 1-4 ms (llvmpipe), and no inverse kinematics, so the scripted experts are exact. Only the vertical rod,
  the palm and the fingers are drawn; the gantry beams sit above the cameras' field of view and are not
  modelled.
- World frame: x to the right and y away from the `front` camera, z up; the table top is the plane z = 0.
- Control (as in MetaWorld): a 4-D action in [-1, 1]. `action[:3]` moves the end-effector *target* by `action
  * max_step` metres (default 2.5 cm per control step), clipped to the workspace and kept within `max_lag` of
  the measured end-effector (no wind-up when pushing against the table). `action[3]` commands the gripper: -1
  fully open, +1 fully closed, in between proportionally. Closing aims past the fingers' contact point, so a
  held object is squeezed with the actuators' force limit.
- Robot state (`Robot.state`, float32, `STATE_DIM` = 9), what a real arm reports: `[ee_x, ee_y, ee_z,
  gripper_opening, ee_vx, ee_vy, ee_vz, left_finger, right_finger]`, metres and m/s. The end-effector point is
  the site `ee`, 1.6 cm above the fingertips, centred between the fingers (the grasp point). `gripper_opening`
  is the gap between the finger pads; finger positions are each pad's distance from the centre line.
- Gravity compensation on the robot bodies (`gravcomp="1"`), so position gains need not fight gravity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

STATE_DIM = 9
STATE_NAMES = (
    "ee_x",
    "ee_y",
    "ee_z",
    "gripper_opening",
    "ee_vx",
    "ee_vy",
    "ee_vz",
    "left_finger",
    "right_finger",
)
ACTION_DIM = 4
ACTION_NAMES = ("delta_x", "delta_y", "delta_z", "gripper")

# Geometry (metres). The ee site sits EE_ABOVE_TIP above the fingertips.
FINGER_HALF = (0.006, 0.018, 0.028)  # x (thickness), y (width), z (length)
FINGER_MAX = 0.045  # each pad's maximum distance from the centre line
FINGER_CLOSED_TARGET = -0.006  # closing aims past the centre line, so a held object is squeezed
EE_ABOVE_TIP = 0.016
ROD_TOP = 0.9  # world z of the gantry carriage (out of the camera views)


@dataclass(frozen=True)
class RobotConfig:
    """Control parameters of the gantry arm.

    Attributes:
        max_step: metres the end-effector target moves per control step at |action| = 1.
        max_lag: the target is kept within this distance (per axis) of the measured end-effector.
        workspace_low: lower corner of the end-effector workspace (world, metres).
        workspace_high: upper corner of the end-effector workspace (world, metres).
        home: end-effector position at reset.
    """

    max_step: float = 0.025
    max_lag: float = 0.05
    workspace_low: tuple[float, float, float] = (-0.28, -0.28, 0.012)
    workspace_high: tuple[float, float, float] = (0.28, 0.28, 0.32)
    home: tuple[float, float, float] = field(default=(0.0, -0.12, 0.2))

    def __post_init__(self) -> None:
        if not 0.0 < self.max_step <= 0.1:
            raise ValueError(f"max_step must be in (0, 0.1] metres, got {self.max_step!r}")
        if self.max_lag < self.max_step:
            raise ValueError(f"max_lag ({self.max_lag!r}) must be >= max_step ({self.max_step!r})")
        lo, hi = np.asarray(self.workspace_low), np.asarray(self.workspace_high)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(
                f"workspace_low {self.workspace_low!r} must be below workspace_high "
                f"{self.workspace_high!r} on every axis"
            )
        home = np.asarray(self.home)
        if home.shape != (3,) or np.any(home < lo) or np.any(home > hi):
            raise ValueError(f"home {self.home!r} must lie inside the workspace")


def robot_mjcf() -> tuple[str, str, str]:
    """MJCF fragments of the robot: (worldbody xml, actuator xml, contact xml).

    The base of the z slide is at world z = 0, so joint values equal end-effector world coordinates.
    """
    fx, fy, fz = FINGER_HALF
    tip_z = -2 * fz  # fingertip height in the palm frame (palm bottom at z = 0)
    ee_z = tip_z + EE_ABOVE_TIP
    rod_half = ROD_TOP / 2
    finger = (
        '<body name="{side}_finger" pos="0 0 0" gravcomp="1">'
        '<joint name="{side}_finger_joint" type="slide" axis="{sx} 0 0" range="0 {fmax}" damping="2" '
        'armature="0.01"/>'
        '<geom name="{side}_pad" class="robot_finger" type="box" size="{fx} {fy} {fz}" pos="{gx} 0 {gz}"/>'
        "</body>"
    )
    fingers = "".join(
        finger.format(side=side, sx=sx, fmax=FINGER_MAX, fx=fx, fy=fy, fz=fz, gx=sx * fx, gz=-fz)
        for side, sx in (("left", -1), ("right", 1))
    )
    world = (
        '<body name="gantry_x" pos="0 0 0" gravcomp="1">'
        '<joint name="ee_x" type="slide" axis="1 0 0" range="-0.3 0.3" damping="80" armature="0.5"/>'
        '<inertial pos="0 0 0" mass="0.5" diaginertia="0.01 0.01 0.01"/>'
        '<body name="gantry_y" pos="0 0 0" gravcomp="1">'
        '<joint name="ee_y" type="slide" axis="0 1 0" range="-0.3 0.3" damping="80" armature="0.5"/>'
        '<inertial pos="0 0 0" mass="0.5" diaginertia="0.01 0.01 0.01"/>'
        '<body name="gantry_z" pos="0 0 0" gravcomp="1">'
        '<joint name="ee_z" type="slide" axis="0 0 1" range="0 0.4" damping="80" armature="0.5"/>'
        '<inertial pos="0 0 0" mass="0.5" diaginertia="0.01 0.01 0.01"/>'
        f'<body name="palm" pos="0 0 {-ee_z:.4f}" gravcomp="1">'
        f'<geom name="rod" class="robot_visual" type="cylinder" size="0.012 {rod_half:.4f}" '
        f'pos="0 0 {rod_half + 0.015:.4f}"/>'
        '<geom name="palm" class="robot_body" type="box" size="0.02 0.03 0.012" pos="0 0 0.012"/>'
        '<geom name="palm_rail" class="robot_visual" type="box" size="0.055 0.008 0.005" pos="0 0 0.003"/>'
        f'<site name="ee" pos="0 0 {ee_z:.4f}" size="0.004" rgba="1 0 0 0"/>'
        '<camera name="wrist" pos="0 -0.06 -0.005" xyaxes="1 0 0 0 0.9 0.44" fovy="75"/>'
        f"{fingers}"
        "</body></body></body></body>"
    )
    actuators = (
        '<position name="act_x" joint="ee_x" kp="1500" forcerange="-150 150"/>'
        '<position name="act_y" joint="ee_y" kp="1500" forcerange="-150 150"/>'
        '<position name="act_z" joint="ee_z" kp="1500" forcerange="-150 150"/>'
        f'<position name="act_left" joint="left_finger_joint" kp="800" forcerange="-12 12" '
        f'ctrlrange="{FINGER_CLOSED_TARGET} {FINGER_MAX}"/>'
        f'<position name="act_right" joint="right_finger_joint" kp="800" forcerange="-12 12" '
        f'ctrlrange="{FINGER_CLOSED_TARGET} {FINGER_MAX}"/>'
    )
    contact = (
        '<exclude body1="left_finger" body2="right_finger"/>'
        '<exclude body1="palm" body2="left_finger"/>'
        '<exclude body1="palm" body2="right_finger"/>'
    )
    return world, actuators, contact


ROBOT_DEFAULTS = (
    '<default class="robot_visual"><geom contype="0" conaffinity="0" group="1" rgba="0.35 0.35 0.4 1"/>'
    "</default>"
    '<default class="robot_body"><geom contype="1" conaffinity="1" rgba="0.25 0.25 0.3 1" '
    'friction="1 0.01 0.001"/></default>'
    '<default class="robot_finger"><geom contype="1" conaffinity="1" condim="4" friction="2 0.02 0.001" '
    'solref="0.004 1" solimp="0.95 0.99 0.001" rgba="0.15 0.15 0.18 1" mass="0.05"/></default>'
)


class Robot:
    """Binds the gantry's joints, actuators and site in a compiled model; turns actions into controls."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, config: RobotConfig | None = None) -> None:
        self.model, self.data = model, data
        self.config = config or RobotConfig()
        jid = [
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
            for n in ("ee_x", "ee_y", "ee_z", "left_finger_joint", "right_finger_joint")
        ]
        if min(jid) < 0:
            raise ValueError("model has no gantry robot (joints ee_x/ee_y/ee_z/*_finger_joint missing)")
        self._qadr = np.array([model.jnt_qposadr[j] for j in jid])
        self._vadr = np.array([model.jnt_dofadr[j] for j in jid])
        self._act = np.array(
            [
                mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, n)
                for n in ("act_x", "act_y", "act_z", "act_left", "act_right")
            ]
        )
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "ee")
        self.finger_geoms = tuple(
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("left_pad", "right_pad")
        )
        self._low = np.asarray(self.config.workspace_low)
        self._high = np.asarray(self.config.workspace_high)
        self.target = np.asarray(self.config.home, dtype=np.float64).copy()
        self.gripper_command = -1.0

    # -- state -----------------------------------------------------------------------------------------------
    @property
    def ee_pos(self) -> np.ndarray:
        """End-effector (grasp point) world position, (3,). Equals the slide joints' positions."""
        return self.data.qpos[self._qadr[:3]].copy()

    @property
    def ee_vel(self) -> np.ndarray:
        return self.data.qvel[self._vadr[:3]].copy()

    @property
    def fingers(self) -> np.ndarray:
        """Each finger pad's distance from the centre line, (2,) metres."""
        return self.data.qpos[self._qadr[3:]].copy()

    @property
    def opening(self) -> float:
        return float(self.fingers.sum())

    def state(self) -> np.ndarray:
        """Proprioceptive state, float32 (STATE_DIM,); layout in `STATE_NAMES`."""
        f = self.fingers
        return np.concatenate([self.ee_pos, [f.sum()], self.ee_vel, f]).astype(np.float32)

    # -- control ---------------------------------------------------------------------------------------------
    def reset(self, ee_pos: np.ndarray | None = None, opening: float = 2 * FINGER_MAX) -> None:
        """Teleport to `ee_pos` (default: home) with the gripper open; zero velocities; set controls."""
        pos = np.clip(
            np.asarray(self.config.home if ee_pos is None else ee_pos, dtype=np.float64),
            self._low,
            self._high,
        )
        half = float(np.clip(opening / 2, 0.0, FINGER_MAX))
        self.data.qpos[self._qadr] = [*pos, half, half]
        self.data.qvel[self._vadr] = 0.0
        self.target = pos.copy()
        self.gripper_command = -1.0
        self._write_ctrl()

    def apply_action(self, action: np.ndarray) -> None:
        """Move the target by `action[:3] * max_step`; gripper from `action[3]` (validated upstream)."""
        cfg = self.config
        ee = self.ee_pos
        target = np.clip(
            self.target + np.asarray(action[:3], dtype=np.float64) * cfg.max_step, self._low, self._high
        )
        self.target = np.clip(target, ee - cfg.max_lag, ee + cfg.max_lag)
        self.gripper_command = float(np.clip(action[3], -1.0, 1.0))
        self._write_ctrl()

    def _write_ctrl(self) -> None:
        g = (self.gripper_command + 1.0) / 2.0  # 0 open .. 1 closed
        finger = FINGER_MAX + g * (FINGER_CLOSED_TARGET - FINGER_MAX)
        self.data.ctrl[self._act] = [*self.target, finger, finger]

    def pad_contacts(self) -> tuple[set[int], set[int]]:
        """Ids of the geoms the (left, right) finger pad is in contact with now."""
        left: set[int] = set()
        right: set[int] = set()
        pad_l, pad_r = self.finger_geoms[0], self.finger_geoms[1]
        for i in range(self.data.ncon):
            c = self.data.contact[i]
            for g, other in ((int(c.geom1), int(c.geom2)), (int(c.geom2), int(c.geom1))):
                if g == pad_l:
                    left.add(other)
                elif g == pad_r:
                    right.add(other)
        return left, right

    def touching(self, geom_ids: set[int] | frozenset[int]) -> tuple[bool, bool]:
        """Whether the (left, right) finger pads are in contact with any geom in `geom_ids`."""
        left, right = self.pad_contacts()
        return bool(left & geom_ids), bool(right & geom_ids)
