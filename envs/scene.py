"""Tabletop scenes composed in code, with clean ground truth for spatial data and tasks.

Design decisions:
- A scene is data first: `SceneSpec` (objects as `ObjectSpec`s, table, front-camera pose, image size) is a
  small frozen dataclass; `Scene(spec)` compiles it to an MJCF string and a MuJoCo model. Rebuilding a model
  costs ~0.5 ms, so every episode / data sample gets a fresh model; renderers are cached per image size inside
  the scene and closed by `Scene.close()` (or a `with` block).
- World frame: metres, x to the right and y away from the `front` camera, z up; the table top is z = 0 and
  objects are sampled in `WORKSPACE` on it. "Left"/"right" in instructions mean -x/+x, i.e. left/right in the
  front camera's image; "closer to the camera" means smaller y.
- Shapes come from a registry (`SHAPES`): cube, sphere, cylinder (movable, free joints) and plate, bin (fixed
  receptacles). Colours and sizes come from named palettes (`COLORS`, `SIZES`). `ObjectSpec.size` is always
  the half-extents (x, y, z) of the object's bounding box in its own frame.
- Cameras: `front` (fixed, ~45 degrees above the table, jitter-able through the spec), `free` (a world camera
  for arbitrary viewpoints: `set_camera_pose`), and `wrist` on the gripper when the robot is present.
  `Scene.camera(name)` returns OpenCV-convention intrinsics `K` (pixels; pixel (u, v) covers [u, u+1) x [v,
  v+1), so the principal point is (W/2, H/2)) and extrinsics (world -> camera 4x4; camera X right, Y down, Z
  forward, metres). `render_depth` is planar depth (camera-frame Z) in metres, the same quantity as
  `project(...)[1]`. `render_segmentation` gives, per pixel, the index into `objects()` (-1 elsewhere,
  including the table and the robot).
- Shadows are off by default (`shadowsize = 0`): they cost ~30x in render time on CPU (llvmpipe). Surfaces
  are plain colours (no checker floor): high-frequency textures cost video fidelity in recorded datasets (AV1
  at 64x64 went from <= 8 to 9.3 mean abs error per frame with a checker floor).
"""

from __future__ import annotations

import atexit
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import mujoco
import numpy as np

from envs.robot import ROBOT_DEFAULTS, Robot, robot_mjcf

# -----------------------------------------------------------------------------------------------------------
# Palettes and shape registry
# -----------------------------------------------------------------------------------------------------------
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.12, 1.0),
    "green": (0.15, 0.7, 0.2, 1.0),
    "blue": (0.15, 0.3, 0.9, 1.0),
    "yellow": (0.95, 0.85, 0.1, 1.0),
    "purple": (0.55, 0.2, 0.75, 1.0),
    "orange": (1.0, 0.5, 0.05, 1.0),
    "cyan": (0.1, 0.8, 0.85, 1.0),
    "pink": (0.95, 0.45, 0.7, 1.0),
}
# A base half-width per size label; each shape scales it (see SHAPES).
SIZES: dict[str, float] = {"small": 0.018, "medium": 0.024, "large": 0.03}

WORKSPACE = ((-0.22, 0.22), (-0.18, 0.2))  # (x range, y range) of object centres on the table
TABLE_HALF = (0.3, 0.3)
TABLE_COLOR = (0.62, 0.5, 0.38, 1.0)
DEFAULT_FRONT_EYE = (0.0, -0.6, 0.6)
DEFAULT_FRONT_TARGET = (0.0, 0.03, 0.0)
DEFAULT_FOVY = 45.0
BIN_WALL = 0.004
MAX_GEOM = 1000  # renderer scene capacity (a scene has < 100 geoms)


@dataclass(frozen=True)
class ShapeDef:
    """How a shape is sized, drawn and named.

    Attributes:
        word: the noun used in instructions ("ball" for sphere).
        half_extents: base half-width (from `SIZES`) -> bounding-box half extents (x, y, z).
        geoms: (name, rgba, half extents) -> MJCF geom elements in the body frame.
        movable: free joint (True) or fixed to the table (receptacles).
        footprint: base half-width -> radius of the circle the object covers on the table (any yaw).
    """

    word: str
    half_extents: Callable[[float], tuple[float, float, float]]
    geoms: Callable[[str, str, np.ndarray], str]
    movable: bool
    footprint: Callable[[float], float]


def _geom(name: str, kind: str, size: str, rgba: str, pos: str = "0 0 0", cls: str = "object") -> str:
    return f'<geom name="{name}" class="{cls}" type="{kind}" size="{size}" pos="{pos}" rgba="{rgba}"/>'


def _bin_geoms(name: str, rgba: str, h: np.ndarray) -> str:
    hx, hy, hz = h
    w = BIN_WALL
    parts = [_geom(f"{name}_g0", "box", f"{hx} {hy} {w}", rgba, f"0 0 {-hz + w}", "receptacle")]
    for i, (sx, sy, px, py) in enumerate(
        [(w, hy, hx - w, 0), (w, hy, -hx + w, 0), (hx, w, 0, hy - w), (hx, w, 0, -hy + w)]
    ):
        parts.append(_geom(f"{name}_g{i + 1}", "box", f"{sx} {sy} {hz}", rgba, f"{px} {py} 0", "receptacle"))
    return "".join(parts)


SHAPES: dict[str, ShapeDef] = {
    "cube": ShapeDef(
        "cube",
        lambda s: (s, s, s),
        lambda n, c, h: _geom(f"{n}_g0", "box", f"{h[0]} {h[1]} {h[2]}", c),
        True,
        lambda s: s * math.sqrt(2),
    ),
    "sphere": ShapeDef(
        "ball",
        lambda s: (s, s, s),
        lambda n, c, h: _geom(f"{n}_g0", "sphere", f"{h[0]}", c),
        True,
        lambda s: s,
    ),
    "cylinder": ShapeDef(
        "cylinder",
        lambda s: (s, s, 1.3 * s),
        lambda n, c, h: _geom(f"{n}_g0", "cylinder", f"{h[0]} {h[2]}", c),
        True,
        lambda s: s,
    ),
    "plate": ShapeDef(
        "plate",
        lambda s: (2.4 * s, 2.4 * s, 0.005),
        lambda n, c, h: _geom(f"{n}_g0", "cylinder", f"{h[0]} {h[2]}", c, cls="receptacle"),
        False,
        lambda s: 2.4 * s,
    ),
    "bin": ShapeDef(
        "bin", lambda s: (2.6 * s, 2.6 * s, 0.022), _bin_geoms, False, lambda s: 2.6 * s * math.sqrt(2)
    ),
}
MOVABLE_SHAPES = tuple(k for k, v in SHAPES.items() if v.movable)
RECEPTACLE_SHAPES = tuple(k for k, v in SHAPES.items() if not v.movable)


# -----------------------------------------------------------------------------------------------------------
# Specs
# -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectSpec:
    """One object: identity, look and initial pose. Build with `object_spec` to get consistent fields.

    Attributes:
        name: unique in the scene, e.g. "red_cube" (also the MuJoCo body name).
        shape: a key of `SHAPES`.
        color: a key of `COLORS`; `rgba` is its value unless overridden.
        size_label: a key of `SIZES`.
        size: half extents (x, y, z) of the bounding box in the object frame, metres.
        pos: initial world position of the centre (z = size[2], resting on the table).
        yaw: initial rotation about world z, radians.
    """

    name: str
    shape: str
    color: str
    rgba: tuple[float, float, float, float]
    size_label: str
    size: tuple[float, float, float]
    pos: tuple[float, float, float]
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; valid: {sorted(SHAPES)}")
        if len(self.size) != 3 or min(self.size) <= 0:
            raise ValueError(f"size must be 3 positive half extents, got {self.size!r}")
        if len(self.pos) != 3 or len(self.rgba) != 4:
            raise ValueError(f"pos must have 3 values and rgba 4, got pos={self.pos!r} rgba={self.rgba!r}")
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"object name must be alphanumeric/underscores, got {self.name!r}")

    @property
    def footprint(self) -> float:
        return SHAPES[self.shape].footprint(SIZES[self.size_label])


def object_spec(
    shape: str,
    color: str,
    size_label: str = "medium",
    xy: Sequence[float] = (0.0, 0.0),
    yaw: float = 0.0,
    name: str | None = None,
) -> ObjectSpec:
    """An `ObjectSpec` resting on the table at `xy`, sized from the palettes."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; valid: {sorted(SHAPES)}")
    if color not in COLORS:
        raise ValueError(f"unknown color {color!r}; valid: {sorted(COLORS)}")
    if size_label not in SIZES:
        raise ValueError(f"unknown size {size_label!r}; valid: {sorted(SIZES)}")
    h = SHAPES[shape].half_extents(SIZES[size_label])
    return ObjectSpec(
        name=name or f"{color}_{shape}",
        shape=shape,
        color=color,
        rgba=COLORS[color],
        size_label=size_label,
        size=tuple(round(v, 5) for v in h),
        pos=(float(xy[0]), float(xy[1]), round(h[2], 5)),
        yaw=float(yaw),
    )


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to build a scene.

    Attributes:
        objects: the objects (names unique).
        image_size: default rendered image height = width, pixels.
        table_half: table top half sizes (x, y), metres.
        front_eye: world position of the `front` camera.
        front_target: world point the `front` camera looks at.
        fovy: vertical field of view of the `front` and `free` cameras, degrees.
    """

    objects: tuple[ObjectSpec, ...]
    image_size: int = 128
    table_half: tuple[float, float] = TABLE_HALF
    front_eye: tuple[float, float, float] = DEFAULT_FRONT_EYE
    front_target: tuple[float, float, float] = DEFAULT_FRONT_TARGET
    fovy: float = DEFAULT_FOVY

    def __post_init__(self) -> None:
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"object names must be unique, got {names!r}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [16, 1024], got {self.image_size!r}")
        if not 10.0 <= self.fovy <= 120.0:
            raise ValueError(f"fovy must be in [10, 120] degrees, got {self.fovy!r}")
        if np.allclose(self.front_eye, self.front_target):
            raise ValueError(f"front_eye {self.front_eye!r} equals front_target")

    def object(self, name: str) -> ObjectSpec:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"no object {name!r}; objects: {[o.name for o in self.objects]}")


def place_objects(
    rng: np.random.Generator,
    objects: Sequence[ObjectSpec],
    gap: float = 0.015,
    workspace: tuple[tuple[float, float], tuple[float, float]] = WORKSPACE,
    max_tries: int = 200,
    max_yaw: float = math.pi,
) -> tuple[ObjectSpec, ...]:
    """Give every object a random non-overlapping position and a yaw in [-max_yaw, max_yaw] inside `workspace`
    (footprints + `gap` apart).

    Raises RuntimeError if no placement is found in `max_tries` attempts per object.
    """
    placed: list[ObjectSpec] = []
    # Big objects first: they are the hardest to fit.
    order = sorted(range(len(objects)), key=lambda i: -objects[i].footprint)
    result: list[ObjectSpec | None] = [None] * len(objects)
    for i in order:
        obj = objects[i]
        r = obj.footprint
        lo = np.array([workspace[0][0], workspace[1][0]]) + (r if not SHAPES[obj.shape].movable else 0.0)
        hi = np.array([workspace[0][1], workspace[1][1]]) - (r if not SHAPES[obj.shape].movable else 0.0)
        for _ in range(max_tries):
            xy = rng.uniform(lo, hi)
            if all(np.hypot(*(xy - np.asarray(p.pos[:2]))) >= r + p.footprint + gap for p in placed):
                break
        else:
            raise RuntimeError(f"could not place {obj.name!r} without overlap after {max_tries} tries")
        yaw = float(rng.uniform(-max_yaw, max_yaw))
        new = replace(obj, pos=(float(xy[0]), float(xy[1]), obj.pos[2]), yaw=yaw)
        placed.append(new)
        result[i] = new
    return tuple(o for o in result if o is not None)


def jitter_camera(
    rng: np.random.Generator,
    jitter: float,
    eye: Sequence[float] = DEFAULT_FRONT_EYE,
    target: Sequence[float] = DEFAULT_FRONT_TARGET,
) -> tuple[tuple, tuple]:
    """Perturb a camera eye by U(-jitter, jitter) metres per axis and its target by half of that."""
    e = np.asarray(eye, dtype=float) + rng.uniform(-jitter, jitter, 3)
    t = np.asarray(target, dtype=float) + rng.uniform(-jitter / 2, jitter / 2, 3)
    return tuple(float(v) for v in e), tuple(float(v) for v in t)


def sample_scene_spec(
    rng: np.random.Generator,
    n_objects: int = 3,
    shapes: Sequence[str] = tuple(SHAPES),
    colors: Sequence[str] = tuple(COLORS),
    camera_jitter: float = 0.0,
    image_size: int = 128,
) -> SceneSpec:
    """A random scene of `n_objects` (1-6) distinct (color, shape) objects, non-overlapping, sizes random.

    At most one receptacle (plate/bin) is drawn, so small tables stay uncluttered.
    """
    if not 1 <= n_objects <= 6:
        raise ValueError(f"n_objects must be in [1, 6], got {n_objects!r}")
    bad = [s for s in shapes if s not in SHAPES] + [c for c in colors if c not in COLORS]
    if bad or not shapes or not colors:
        raise ValueError(
            f"unknown or empty shapes/colors {bad!r}; valid shapes {sorted(SHAPES)}, colors {sorted(COLORS)}"
        )
    kinds: list[tuple[str, str]] = []
    while len(kinds) < n_objects:
        shape, color = str(rng.choice(list(shapes))), str(rng.choice(list(colors)))
        n_recept = sum(SHAPES[s].movable is False for s, _ in kinds)
        if (shape, color) in kinds or (not SHAPES[shape].movable and n_recept >= 1 and len(set(shapes)) > 1):
            continue
        kinds.append((shape, color))
    objs = [object_spec(s, c, str(rng.choice(list(SIZES)))) for s, c in kinds]
    eye, target = (
        jitter_camera(rng, camera_jitter) if camera_jitter > 0 else (DEFAULT_FRONT_EYE, DEFAULT_FRONT_TARGET)
    )
    return SceneSpec(
        objects=place_objects(rng, objs), image_size=image_size, front_eye=eye, front_target=target
    )


# -----------------------------------------------------------------------------------------------------------
# Geometry helpers
# -----------------------------------------------------------------------------------------------------------
def look_at_axes(eye: Sequence[float], target: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-frame (right, up, forward) unit axes of a camera at `eye` looking at `target` with world z up
    (y up when looking straight down)."""
    f = np.asarray(target, float) - np.asarray(eye, float)
    f /= np.linalg.norm(f)
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    x = np.cross(f, up)
    x /= np.linalg.norm(x)
    return x, np.cross(x, f), f


def look_at_quat(eye: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """MuJoCo camera quaternion (w, x, y, z) for a camera at `eye` looking at `target` with world z up."""
    x, y, f = look_at_axes(eye, target)
    mat = np.stack([x, y, -f], axis=1)  # columns: camera x, y, z (MuJoCo looks along -z)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def box_corners(center: np.ndarray, rot: np.ndarray, half: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of an oriented box, in the order of itertools.product((-1, 1), repeat=3)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    return center + (signs * half) @ rot.T


@dataclass(frozen=True)
class ObjectState:
    """Ground truth of one object at the current simulation state (world frame, metres)."""

    index: int
    name: str
    shape: str
    color: str
    size_label: str
    size: np.ndarray  # (3,) half extents in the object frame
    pos: np.ndarray  # (3,) centre
    quat: np.ndarray  # (4,) w, x, y, z
    rot: np.ndarray  # (3, 3) object -> world rotation
    corners: np.ndarray = field(repr=False)  # (8, 3) oriented bounding box corners
    aabb: np.ndarray = field(repr=False)  # (2, 3) world axis-aligned min / max

    @property
    def yaw(self) -> float:
        return float(math.atan2(self.rot[1, 0], self.rot[0, 0]))


@dataclass(frozen=True)
class CameraInfo:
    """A camera's calibration. K: (3, 3) pixels. extrinsic: (4, 4) world -> camera, OpenCV axes."""

    name: str
    width: int
    height: int
    fovy: float  # degrees, vertical
    K: np.ndarray
    extrinsic: np.ndarray

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        r, t = self.extrinsic[:3, :3], self.extrinsic[:3, 3]
        return -r.T @ t


# -----------------------------------------------------------------------------------------------------------
# MJCF
# -----------------------------------------------------------------------------------------------------------
def _fmt(v: Sequence[float]) -> str:
    return " ".join(f"{float(x):.9g}" for x in v)


def scene_mjcf(spec: SceneSpec, with_robot: bool = True, timestep: float = 0.002) -> str:
    """The MJCF document of a scene."""
    tx, ty = spec.table_half
    bodies = []
    for o in spec.objects:
        sdef = SHAPES[o.shape]
        joint = f'<freejoint name="{o.name}_joint"/>' if sdef.movable else ""
        quat = _fmt([math.cos(o.yaw / 2), 0, 0, math.sin(o.yaw / 2)])
        bodies.append(
            f'<body name="{o.name}" pos="{_fmt(o.pos)}" quat="{quat}">{joint}'
            f"{sdef.geoms(o.name, _fmt(o.rgba), np.asarray(o.size))}</body>"
        )
    robot_world, robot_act, robot_contact = robot_mjcf() if with_robot else ("", "", "")
    front_q = _fmt(look_at_quat(spec.front_eye, spec.front_target))
    res = spec.image_size
    return f"""<mujoco model="svla_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{res}" offheight="{res}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
    <map znear="0.01" zfar="20"/>
  </visual>
  <statistic center="0 0 0.1" extent="1.0"/>
  <asset>
    <material name="floor" rgba="0.28 0.3 0.33 1"/>
  </asset>
  <default>
    <default class="object">
      <geom condim="4" friction="1 0.01 0.001" solref="0.004 1" density="600"/>
    </default>
    <default class="receptacle"><geom condim="3" friction="0.8 0.01 0.001" solref="0.004 1"/></default>
    {ROBOT_DEFAULTS}
  </default>
  <worldbody>
    <light name="key" pos="0.3 -0.4 1.5" dir="-0.2 0.3 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" material="floor" contype="0"
      conaffinity="0"/>
    <geom name="table" type="box" size="{tx} {ty} 0.02" pos="0 0 -0.02" rgba="{_fmt(TABLE_COLOR)}"
      friction="0.6 0.01 0.001"/>
    <geom name="table_leg" type="box" size="{tx * 0.8} {ty * 0.8} 0.36" pos="0 0 -0.4" rgba="0.4 0.3 0.22 1"
      contype="0" conaffinity="0"/>
    <camera name="front" pos="{_fmt(spec.front_eye)}" quat="{front_q}" fovy="{spec.fovy}"/>
    <camera name="free" pos="{_fmt(spec.front_eye)}" quat="{front_q}" fovy="{spec.fovy}"/>
    {"".join(bodies)}
    {robot_world}
  </worldbody>
  <actuator>{robot_act}</actuator>
  <contact>{robot_contact}</contact>
</mujoco>"""


# -----------------------------------------------------------------------------------------------------------
# Scene
# -----------------------------------------------------------------------------------------------------------
_LIVE_SCENES: weakref.WeakSet[Scene] = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _close_live_scenes() -> None:
    """Free renderers still open at exit, before the EGL display is terminated (else EGLErrors are printed).

    Registered after the first renderer exists, i.e. after `mujoco.egl` registered its own exit hook, so it
    runs first (atexit is last-in, first-out).
    """
    for scene in list(_LIVE_SCENES):
        try:
            scene.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def _rebind_renderer(r: mujoco.Renderer, model: mujoco.MjModel) -> None:
    """Point an existing `mujoco.Renderer` at a new model, keeping its GL context.

    Mirrors `mujoco.Renderer.__init__` (mujoco 3.3.0, pinned) for the model-dependent parts: MjvScene and
    MjrContext. Creating a fresh EGL context per episode cost ~50 ms on llvmpipe.
    """
    r._gl_context.make_current()
    r._mjr_context.free()
    r._mjr_context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
    mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, r._mjr_context)
    r._mjr_context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
    r._scene = mujoco.MjvScene(model=model, maxgeom=MAX_GEOM)
    r._model = model


class Scene:
    """A compiled scene: MuJoCo model + data, ground truth, cameras and cached renderers.

    Usage:
        with Scene(sample_scene_spec(np.random.default_rng(0)), with_robot=False) as scene:
            rgb = scene.render_rgb("front"); objs = scene.objects(); cam = scene.camera("front")
    """

    def __init__(
        self, spec: SceneSpec, with_robot: bool = True, timestep: float = 0.002, recycle: Scene | None = None
    ) -> None:
        """Compile `spec`. `recycle`: a scene being replaced; its renderers (GL contexts) are taken over and
        rebound to the new model (~5 ms instead of ~50 ms for a new EGL context), and it is closed."""
        self.spec = spec
        self.with_robot = with_robot
        self.xml = scene_mjcf(spec, with_robot, timestep)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.model.vis.quality.shadowsize = 0
        self.data = mujoco.MjData(self.model)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        _LIVE_SCENES.add(self)
        self.body_ids = np.array([self._id(mujoco.mjtObj.mjOBJ_BODY, o.name) for o in spec.objects], int)
        # geom id -> object index (-1 for table, robot, floor); used by segmentation.
        self.geom_to_object = np.full(self.model.ngeom, -1, dtype=np.int32)
        for i, b in enumerate(self.body_ids):
            self.geom_to_object[self.model.geom_bodyid == b] = i
        self.object_geoms: list[frozenset[int]] = [
            frozenset(np.flatnonzero(self.geom_to_object == i).tolist()) for i in range(len(spec.objects))
        ]
        if with_robot:
            Robot(self.model, self.data).reset()  # gripper at its home pose, open
        mujoco.mj_forward(self.model, self.data)
        if recycle is not None:
            for key, r in recycle._renderers.items():
                glob = self.model.vis.global_
                glob.offwidth, glob.offheight = max(glob.offwidth, key[0]), max(glob.offheight, key[1])
                _rebind_renderer(r, self.model)
                self._renderers[key] = r
            recycle._renderers = {}
            recycle.close()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Free the renderers (EGL contexts). Safe to call twice."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise KeyError(f"no {kind.name.removeprefix('mjOBJ_').lower()} named {name!r} in the scene")
        return i

    def forward(self) -> None:
        """Recompute derived quantities (positions, cameras) after editing qpos or a camera."""
        mujoco.mj_forward(self.model, self.data)

    # -- ground truth ----------------------------------------------------------------------------------------
    def objects(self) -> list[ObjectState]:
        """Current state of every object, in `spec.objects` order."""
        out = []
        for i, (o, b) in enumerate(zip(self.spec.objects, self.body_ids, strict=True)):
            pos, rot = self.data.xpos[b].copy(), self.data.xmat[b].reshape(3, 3).copy()
            half = np.asarray(o.size)
            corners = box_corners(pos, rot, half)
            out.append(
                ObjectState(
                    index=i,
                    name=o.name,
                    shape=o.shape,
                    color=o.color,
                    size_label=o.size_label,
                    size=half,
                    pos=pos,
                    quat=self.data.xquat[b].copy(),
                    rot=rot,
                    corners=corners,
                    aabb=np.stack([corners.min(0), corners.max(0)]),
                )
            )
        return out

    def object_index(self, name: str) -> int:
        for i, o in enumerate(self.spec.objects):
            if o.name == name:
                return i
        raise KeyError(f"no object {name!r}; objects: {[o.name for o in self.spec.objects]}")

    def object_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.body_ids[self.object_index(name)]].copy()

    # -- cameras ---------------------------------------------------------------------------------------------
    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(self.model.camera(i).name for i in range(self.model.ncam))

    def camera(self, name: str, width: int | None = None, height: int | None = None) -> CameraInfo:
        """Intrinsics and extrinsics (OpenCV convention) of camera `name` at the current state."""
        cid = self._id(mujoco.mjtObj.mjOBJ_CAMERA, name)
        w, h = width or self.spec.image_size, height or self.spec.image_size
        fovy = float(self.model.cam_fovy[cid])
        f = 0.5 * h / math.tan(math.radians(fovy) / 2)
        k = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
        r_c2w = self.data.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo -> OpenCV axes
        ext = np.eye(4)
        ext[:3, :3] = r_c2w.T
        ext[:3, 3] = -r_c2w.T @ self.data.cam_xpos[cid]
        return CameraInfo(name=name, width=w, height=h, fovy=fovy, K=k, extrinsic=ext)

    def set_camera_pose(
        self, name: str, eye: Sequence[float], target: Sequence[float], fovy: float | None = None
    ) -> None:
        """Place a world-fixed camera (`free`, `front`) at `eye` looking at `target` (world z up)."""
        cid = self._id(mujoco.mjtObj.mjOBJ_CAMERA, name)
        if self.model.cam_bodyid[cid] != 0:
            raise ValueError(f"camera {name!r} is attached to a moving body; only world cameras can be posed")
        if np.allclose(eye, target):
            raise ValueError(f"camera eye {tuple(eye)!r} equals target")
        self.model.cam_pos[cid] = eye
        self.model.cam_quat[cid] = look_at_quat(eye, target)
        if fovy is not None:
            if not 10.0 <= fovy <= 120.0:
                raise ValueError(f"fovy must be in [10, 120] degrees, got {fovy!r}")
            self.model.cam_fovy[cid] = fovy
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def project(self, points_world: np.ndarray, camera: str | CameraInfo) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) as (u, v) = (column, row) and camera-frame depth Z (N,) of world points.

        Pixel (u, v) covers [u, u+1) x [v, v+1): the pixel index of a point is `floor(uv)`.
        """
        cam = self.camera(camera) if isinstance(camera, str) else camera
        p = np.atleast_2d(np.asarray(points_world, float))
        pc = p @ cam.extrinsic[:3, :3].T + cam.extrinsic[:3, 3]
        z = pc[:, 2]
        uv = (pc @ cam.K.T)[:, :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)[:, None]
        return uv, z

    # -- rendering -------------------------------------------------------------------------------------------
    def renderer(self, width: int | None = None, height: int | None = None) -> mujoco.Renderer:
        """The cached renderer of this size (created on first use; closed by `close`)."""
        key = (width or self.spec.image_size, height or self.spec.image_size)
        if key not in self._renderers:
            # The offscreen buffer is sized to what is rendered: a 1024^2 multisampled buffer costs ~80 ms to
            # allocate per model on llvmpipe, a 128^2 one ~3 ms.
            glob = self.model.vis.global_
            glob.offwidth, glob.offheight = max(glob.offwidth, key[0]), max(glob.offheight, key[1])
            self._renderers[key] = mujoco.Renderer(self.model, height=key[1], width=key[0], max_geom=MAX_GEOM)
            if not _EXIT_HOOK:
                _EXIT_HOOK.append(True)
                atexit.register(_close_live_scenes)
        return self._renderers[key]

    def _render(self, camera: str, mode: str, size: tuple[int | None, int | None]) -> np.ndarray:
        self._id(mujoco.mjtObj.mjOBJ_CAMERA, camera)
        r = self.renderer(*size)
        r.disable_depth_rendering()
        r.disable_segmentation_rendering()
        if mode == "depth":
            r.enable_depth_rendering()
        elif mode == "segmentation":
            r.enable_segmentation_rendering()
        r.update_scene(self.data, camera=camera)
        return r.render()

    def render_rgb(
        self, camera: str = "front", width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """uint8 (H, W, 3)."""
        return self._render(camera, "rgb", (width, height))

    def render_depth(
        self, camera: str = "front", width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """float32 (H, W) planar depth (camera-frame Z) in metres."""
        return self._render(camera, "depth", (width, height)).astype(np.float32, copy=False)

    def render_segmentation(
        self, camera: str = "front", width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """int32 (H, W): index into `objects()` per pixel, -1 for background (table, robot, floor)."""
        seg = self._render(camera, "segmentation", (width, height))
        ids, types = seg[..., 0], seg[..., 1]
        out = np.full(ids.shape, -1, dtype=np.int32)
        # compare with a plain int: against the pybind enum numpy loops in Python (~20 ms per 112 px image)
        is_geom = (types == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids >= 0)
        out[is_geom] = self.geom_to_object[ids[is_geom]]
        return out
