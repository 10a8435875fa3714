"""Which face detector protects faces best (issue 19): recall, false alarms, time and install size, same run.

Photos with faces that ship offline in scikit-image: the astronaut (one face, 512 x 512) and the 100 face crops of
its LFW subset (each 25 x 25 crop enlarged 4x into a 160 x 160 grey margin), plus the subset's 100 non-face crops
for false alarms. A face counts as found when a box covers its centre. Run with OpenCV 4 importable for the Haar
cascade (e.g. PYTHONPATH=<folder with opencv-python-headless<5>); OpenCV 5 has no cascades and is reported so.

    python bench/face_detectors.py
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import numpy as np
from PIL import Image

from desktop_sr.editor.faces import available_backends, detect_faces


def lfw_photos() -> tuple[list[np.ndarray], list[np.ndarray]]:
    from skimage.data import lfw_subset

    crops = lfw_subset()
    out = []
    for crop in crops:
        big = Image.fromarray((crop * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
        canvas = np.full((160, 160), 128, np.uint8)
        canvas[30:130, 30:130] = np.asarray(big)
        out.append(np.repeat(canvas[..., None], 3, axis=2).astype(np.float32) / 255.0)
    return out[:100], out[100:]


def covers(boxes: list[tuple[int, int, int, int]], x: float, y: float) -> bool:
    return any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)


def installed_mb(dist: str) -> float:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return float("nan")
    return sum((Path(f.locate()).stat().st_size for f in files if Path(f.locate()).is_file()), 0) / 1e6


def main() -> None:
    from skimage.data import astronaut

    faces, others = lfw_photos()
    astro = astronaut().astype(np.float32) / 255.0
    big = np.asarray(Image.fromarray(astronaut()).resize((4000, 4000), Image.Resampling.BICUBIC), np.float32) / 255
    backends = available_backends()
    import cv2

    if "opencv" not in backends:
        print(f"opencv: cv2 {cv2.__version__} has no Haar cascades (OpenCV 5): not measured")
    print("backend  astronaut  LFW recall  false alarms  ms/photo (512 px, 16 MP)  install MB")
    for backend in backends:
        astro_found = covers(detect_faces(astro, backend), 250, 120)  # the face's centre in the astronaut
        found = sum(covers(detect_faces(f, backend), 80, 80) for f in faces)
        alarms = sum(bool(detect_faces(o, backend)) for o in others)
        times = []
        for img in (astro, big):
            start = time.perf_counter()
            for _ in range(3):
                detect_faces(img, backend)
            times.append((time.perf_counter() - start) / 3 * 1000)
        dists = ("opencv-python-headless",) if backend == "opencv" else ("scikit-image", "scipy")
        size = sum(installed_mb(d) for d in dists)
        if backend == "opencv" and np.isnan(size):
            size = installed_mb("opencv-python")
        print(f"{backend:8s} {'yes' if astro_found else 'NO':>9s}  {found:>4d}/100   {alarms:>6d}/100"
              f"      {times[0]:7.1f}  {times[1]:8.1f}             {size:7.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
