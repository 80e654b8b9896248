"""What a skill sees: a compiled scene with lazily rendered, cached views and their exact ground truth.

Design:
- `SceneContext` wraps an `envs.scene.Scene` (object-only, no robot). Views are rendered on demand and cached
  by key, so a scene whose drawn skills need only the main view never renders a second view or a video path.
  The main view uses the `front` camera (posed by the scene spec); every other view poses the `free` camera.
- A `View` holds RGB, planar depth, segmentation, the camera calibration (OpenCV convention, see envs.scene)
  and what follows from them: which objects are visible (enough segmentation pixels), their pixel boxes and
  centroids, and camera-frame coordinates of world points. Ground truth is read from the simulator, never
  estimated from pixels, except 2D boxes, which are the tight boxes of the *visible* mask.
- Camera poses are an orbit (azimuth, elevation, distance) around a jittered target. `pose_band` decides
  whether a pose belongs to the in-distribution splits or the `shifted` one (held-out azimuth/elevation
  bands).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from envs.scene import SHAPES, CameraInfo, ObjectState, Scene
from spatial_backbone.data.config import CameraConfig

MIN_VISIBLE_PIXELS_112 = 8  # at 112 px; scaled with the image area


@dataclass(frozen=True)
class Pose:
    """A camera pose: eye and target in world metres, plus the orbit parameters it came from (degrees)."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    azimuth: float = 0.0
    elevation: float = 45.0
    distance: float = 0.8
    fovy: float | None = None  # None: the config's field of view

    def as_dict(self) -> dict:
        return {
            "fovy": self.fovy,
            "eye": [round(v, 4) for v in self.eye],
            "target": [round(v, 4) for v in self.target],
            "azimuth": round(self.azimuth, 2),
            "elevation": round(self.elevation, 2),
            "distance": round(self.distance, 4),
        }


def orbit_pose(azimuth: float, elevation: float, distance: float, target=(0.0, 0.03, 0.0)) -> Pose:
    """Eye on a sphere around `target`; azimuth 0 looks from -y towards +y, positive orbits to the right."""
    az, el = math.radians(azimuth), math.radians(elevation)
    t = np.asarray(target, float)
    eye = t + distance * np.array([math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el)])
    return Pose(tuple(float(v) for v in eye), tuple(float(v) for v in t), azimuth, elevation, distance)


def in_shifted_band(cfg: CameraConfig, azimuth: float, elevation: float) -> bool:
    a, e = cfg.shifted_azimuth, cfg.shifted_elevation
    return a[0] <= azimuth <= a[1] or e[0] <= elevation <= e[1]


def sample_pose(rng: np.random.Generator, cfg: CameraConfig, shifted: bool) -> Pose:
    """A random orbit pose inside (shifted=True) or outside (False) the held-out bands (by rejection)."""
    for _ in range(1000):
        az, el = rng.uniform(*cfg.azimuth), rng.uniform(*cfg.elevation)
        if in_shifted_band(cfg, az, el) == shifted:
            break
    else:  # pragma: no cover - the config check guarantees both regions are non-empty
        raise RuntimeError(f"no camera pose with shifted={shifted} in {cfg!r}")
    target = (rng.uniform(-1, 1) * cfg.target_jitter, 0.03 + rng.uniform(-1, 1) * cfg.target_jitter, 0.0)
    return orbit_pose(float(az), float(el), float(rng.uniform(*cfg.distance)), target)


@dataclass
class View:
    """One rendered view and its pixel-level ground truth. depth/seg may be None when not rendered."""

    key: str
    pose: Pose
    cam: CameraInfo
    rgb: np.ndarray  # [H, W, 3] uint8
    depth: np.ndarray | None  # [H, W] float32 metres (camera-frame Z)
    seg: np.ndarray | None  # [H, W] int32 object index or -1
    _visible: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.seg is not None:
            idx, counts = np.unique(self.seg[self.seg >= 0], return_counts=True)
            thr = MIN_VISIBLE_PIXELS_112 * (self.cam.width * self.cam.height) / 112**2
            self._visible = {int(i): int(c) for i, c in zip(idx, counts, strict=True) if c >= thr}

    @property
    def visible(self) -> list[int]:
        """Indices of objects with at least the minimum number of visible pixels."""
        if self.seg is None:
            raise ValueError(f"view {self.key!r} was rendered without segmentation")
        return sorted(self._visible)

    def pixels(self, i: int) -> int:
        return self._visible.get(i, 0)

    def box2d(self, i: int) -> list[int]:
        """Tight pixel box [x1, y1, x2, y2] of the visible mask (x2, y2 exclusive pixel edges)."""
        ys, xs = np.nonzero(self.seg == i)
        return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]

    def centroid(self, i: int) -> tuple[float, float]:
        """Mean (u, v) of the visible mask, pixel centres at +0.5."""
        ys, xs = np.nonzero(self.seg == i)
        return float(xs.mean() + 0.5), float(ys.mean() + 0.5)

    def to_cam(self, points_world: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> camera frame [N, 3] (X right, Y down, Z forward)."""
        p = np.atleast_2d(np.asarray(points_world, float))
        return p @ self.cam.extrinsic[:3, :3].T + self.cam.extrinsic[:3, 3]

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) pixels [N, 2] and depth Z [N] of world points."""
        pc = self.to_cam(points_world)
        z = pc[:, 2]
        uv = (pc @ self.cam.K.T)[:, :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)[:, None]
        return uv, z

    def world_points(self) -> np.ndarray:
        """World coordinates [H, W, 3] of every pixel centre, from the depth map."""
        if self.depth is None:
            raise ValueError(f"view {self.key!r} was rendered without depth")
        h, w = self.depth.shape
        k = self.cam.K
        us, vs = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)  # [H, W]
        pc = np.stack(
            [(us - k[0, 2]) * self.depth / k[0, 0], (vs - k[1, 2]) * self.depth / k[1, 1], self.depth], -1
        )  # [H, W, 3] camera frame
        r, t = self.cam.extrinsic[:3, :3], self.cam.extrinsic[:3, 3]
        return (pc - t) @ r  # [H, W, 3]: R^T (p - t) per pixel

    def unproject(self, u: float, v: float) -> np.ndarray:
        """World point seen at pixel centre (u, v) from the depth map."""
        if self.depth is None:
            raise ValueError(f"view {self.key!r} was rendered without depth")
        z = float(self.depth[int(v), int(u)])
        k = self.cam.K
        pc = np.array([(u - k[0, 2]) * z / k[0, 0], (v - k[1, 2]) * z / k[1, 1], z])
        r, t = self.cam.extrinsic[:3, :3], self.cam.extrinsic[:3, 3]
        return r.T @ (pc - t)


class SceneContext:
    """A scene plus its sampling settings, shared by every skill called on it.

    Attributes:
        scene: the compiled `envs.scene.Scene` (object-only).
        objects: ground-truth object states (world frame).
        camera_cfg: camera ranges; shifted: whether extra poses come from the held-out bands.
        absent: (color, shape) pairs not in the scene, usable as "absent object" questions.
    """

    def __init__(
        self,
        scene: Scene,
        camera_cfg: CameraConfig,
        shifted: bool = False,
        absent: tuple[tuple[str, str], ...] = (),
        main_pose: Pose | None = None,
    ) -> None:
        self.scene = scene
        self.objects: list[ObjectState] = scene.objects()
        self.camera_cfg = camera_cfg
        self.shifted = shifted
        self.absent = absent
        self._views: dict[str, View] = {}
        self.cache: dict[
            str, object
        ] = {}  # per-scene state shared by skills (second view motion, camera path)
        self.main_pose = main_pose or Pose(scene.spec.front_eye, scene.spec.front_target)

    def label(self, i: int) -> str:
        """The object's phrase: color and shape word, e.g. 'red ball'. Unique within a scene."""
        o = self.objects[i]
        return f"{o.color} {SHAPES[o.shape].word}"

    def shape_word(self, i: int) -> str:
        return SHAPES[self.objects[i].shape].word

    def view(self, key: str = "main", pose: Pose | None = None, depth: bool = True) -> View:
        """The cached view `key`, rendered at `pose` (`free` camera) on first use; main = front view."""
        if key in self._views:
            return self._views[key]
        cam_name = "front"
        if key != "main":
            if pose is None:
                raise ValueError(f"view {key!r} is not rendered yet and no pose was given")
            cam_name = "free"
            self.scene.set_camera_pose("free", pose.eye, pose.target, fovy=pose.fovy or self.camera_cfg.fovy)
        else:
            pose = self.main_pose
        v = View(
            key=key,
            pose=pose,
            cam=self.scene.camera(cam_name),
            rgb=self.scene.render_rgb(cam_name),
            depth=self.scene.render_depth(cam_name) if depth else None,
            seg=self.scene.render_segmentation(cam_name),
        )
        self._views[key] = v
        return v

    def has_view(self, key: str) -> bool:
        return key in self._views
