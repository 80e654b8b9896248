"""Typed configuration of spatial data generation; `conf/spatial_data.yaml` mirrors it.

Design: scene content, cameras and answer formats are separate dataclasses so skills and tests can build them
alone. The `shifted` split is defined here: held-out (color, shape) pairs and held-out bands of camera azimuth
and elevation never appear in train/val/test and every shifted scene has at least one of each kind of shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "val", "test", "shifted")


def _check_range(name: str, r: list[float], lo: float, hi: float) -> None:
    if len(r) != 2 or not lo <= r[0] <= r[1] <= hi:
        raise ValueError(f"{name}={r!r} must be [low, high] with {lo} <= low <= high <= {hi}")


@dataclass
class CameraConfig:
    """Camera poses around the table: an orbit (azimuth, elevation, distance) around a jittered target.

    azimuth: degrees, 0 = looking from -y towards +y (the default `front` view), positive = orbit to the
    right.
    elevation: degrees above the table plane. distance: metres from the target.
    shifted_azimuth / shifted_elevation: held-out bands: train/val/test poses avoid both; shifted poses fall
    in at least one of them.
    fovy: vertical field of view, degrees. target_jitter: metres, per axis on the table.
    path_frames: frames along the straight camera path of video skills. path_length: metres travelled.
    """

    azimuth: list[float] = field(default_factory=lambda: [-60.0, 60.0])
    elevation: list[float] = field(default_factory=lambda: [30.0, 70.0])
    distance: list[float] = field(default_factory=lambda: [0.6, 0.85])
    shifted_azimuth: list[float] = field(default_factory=lambda: [35.0, 60.0])
    shifted_elevation: list[float] = field(default_factory=lambda: [60.0, 70.0])
    fovy: float = 45.0
    target_jitter: float = 0.04
    path_frames: int = 5
    path_length: list[float] = field(default_factory=lambda: [0.3, 0.6])

    def __post_init__(self) -> None:
        _check_range("camera.azimuth", self.azimuth, -180, 180)
        _check_range("camera.elevation", self.elevation, 5, 89)
        _check_range("camera.distance", self.distance, 0.2, 3.0)
        _check_range("camera.shifted_azimuth", self.shifted_azimuth, self.azimuth[0], self.azimuth[1])
        _check_range("camera.shifted_elevation", self.shifted_elevation, self.elevation[0], self.elevation[1])
        _check_range("camera.path_length", self.path_length, 0.05, 2.0)
        if self.shifted_azimuth == self.azimuth and self.shifted_elevation == self.elevation:
            raise ValueError(
                "camera.shifted_azimuth and shifted_elevation cover every pose: nothing left to train"
            )
        if not 10 <= self.fovy <= 120:
            raise ValueError(f"camera.fovy={self.fovy!r} must be in [10, 120] degrees")
        if not 2 <= self.path_frames <= 16:
            raise ValueError(f"camera.path_frames={self.path_frames!r} must be in [2, 16]")


@dataclass
class FormatConfig:
    """Which answer formats items get (see `formats.py`). Fractions apply to items that allow the format.

    think: fraction of items with a ground-truth chain written VST-R style (`<think>...</think>` answer).
    spatialthinker: fraction of choice/word items with a scene graph written in SpatialThinker's tags.
    system_prompt: write the format's system prompt into each item (plain items get none).
    """

    think: float = 0.25
    spatialthinker: float = 0.25
    system_prompt: bool = True

    def __post_init__(self) -> None:
        for name in ("think", "spatialthinker"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"formats.{name}={v!r} must be a fraction in [0, 1]")
        if self.think + self.spatialthinker > 1.0:
            raise ValueError(
                f"formats.think + formats.spatialthinker = {self.think + self.spatialthinker} > 1"
            )


@dataclass
class SpatialDataConfig:
    """`svla-spatial-data`: render random scenes and write a spatial VQA / reasoning / pretext dataset.

    out_dir: dataset directory (written atomically: temporary sibling, then rename).
    overwrite: replace an existing dataset at out_dir (else an existing one is an error).
    seed: base seed; scene i of split s uses np.random.default_rng([seed, split index, i]).
    scenes: scenes per split (train, val, test, shifted).
    questions_per_scene: items drawn per scene (skills that do not fit a scene are skipped).
    skills: registered skill names to draw from (empty = all); skill_weights: relative weights (default 1).
    image_size: rendered height = width, pixels. image_format: png (lossless) or jpg.
    n_objects: [min, max] objects per scene. shapes / colors: palettes (envs.scene names).
    heldout_pairs: "color_shape" pairs only the shifted split contains.
    num_workers: worker processes (each renders whole scenes); chunk_scenes: scenes per task.
    """

    out_dir: str = "outputs/spatial_data"
    overwrite: bool = False
    seed: int = 0
    scenes: dict[str, int] = field(
        default_factory=lambda: {"train": 1700, "val": 100, "test": 100, "shifted": 100}
    )
    questions_per_scene: int = 10
    skills: list[str] = field(default_factory=list)
    skill_weights: dict[str, float] = field(default_factory=dict)
    image_size: int = 112
    image_format: str = "png"
    n_objects: list[int] = field(default_factory=lambda: [3, 5])
    shapes: list[str] = field(default_factory=lambda: ["cube", "sphere", "cylinder", "plate", "bin"])
    colors: list[str] = field(
        default_factory=lambda: ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink"]
    )
    heldout_pairs: list[str] = field(
        default_factory=lambda: ["red_sphere", "blue_cube", "green_cylinder", "yellow_cube", "purple_sphere"]
    )
    camera: CameraConfig = field(default_factory=CameraConfig)
    formats: FormatConfig = field(default_factory=FormatConfig)
    num_workers: int = 2
    chunk_scenes: int = 20

    def __post_init__(self) -> None:
        bad = sorted(set(self.scenes) - set(SPLITS))
        if bad or any(n < 0 for n in self.scenes.values()):
            raise ValueError(f"scenes={dict(self.scenes)!r}: keys must be in {SPLITS} and counts >= 0")
        if self.questions_per_scene < 1:
            raise ValueError(f"questions_per_scene={self.questions_per_scene!r} must be >= 1")
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size={self.image_size!r} must be in [32, 1024]")
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image_format={self.image_format!r} must be 'png' or 'jpg'")
        if len(self.n_objects) != 2 or not 2 <= self.n_objects[0] <= self.n_objects[1] <= 6:
            raise ValueError(f"n_objects={self.n_objects!r} must be [min, max] with 2 <= min <= max <= 6")
        if self.num_workers < 0 or self.chunk_scenes < 1:
            raise ValueError(f"num_workers={self.num_workers!r} must be >= 0 and chunk_scenes >= 1")
        if any(w < 0 for w in self.skill_weights.values()):
            raise ValueError(f"skill_weights={dict(self.skill_weights)!r} must be >= 0")
        from envs.scene import COLORS, SHAPES

        bad = [s for s in self.shapes if s not in SHAPES] + [c for c in self.colors if c not in COLORS]
        if bad:
            raise ValueError(f"unknown shapes/colors {bad!r}; valid: {sorted(SHAPES)} / {sorted(COLORS)}")
        pairs = {f"{c}_{s}" for c in self.colors for s in self.shapes}
        bad = [p for p in self.heldout_pairs if p not in pairs]
        if bad:
            raise ValueError(
                f"heldout_pairs {bad!r} are not color_shape pairs of the palettes, e.g. 'red_cube'"
            )
        if len(pairs) - len(set(self.heldout_pairs)) < self.n_objects[1]:
            raise ValueError(
                f"heldout_pairs={self.heldout_pairs!r} leave too few pairs for {self.n_objects[1]} objects"
            )
