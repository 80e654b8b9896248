"""MP4 writing for rollout videos with PyAV (already installed for LeRobot's video datasets)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_mp4(frames: list[np.ndarray], path: Path, fps: int = 10) -> Path:
    """uint8 [H, W, 3] frames -> H.264 MP4 (even sizes are padded for the codec)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    h2, w2 = h + h % 2, w + w % 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        for frame in frames:
            if (h2, w2) != (h, w):
                frame = np.pad(frame, ((0, h2 - h), (0, w2 - w), (0, 0)))
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
