"""Which face detector protects faces best (issue 19): recall, false alarms, time and install size, same run.

Photos with faces that ship offline in scikit-image: the astronaut (one face, 512 x 512) and the 100 face crops of
its LFW subset (each 25 x 25 crop enlarged 4x into a 160 x 160 grey margin), plus the subset's 100 non-face crops
for false alarms. A face counts as found when a box covers its centre. Run with OpenCV 4 importable for the Haar
cascade (e.g. PYTHONPATH=<folder with opencv-python-headless<5>); OpenCV 5 has no cascades and is reported so.

    python bench/face_detectors.py

Then the landmarks face restoration aligns with (``desktop_sr.engine.faces.landmarks``: the same face cascade, eye
centres from OpenCV's eye cascade inside the box, else from the box's mean geometry): recall and false alarms again,
how often both eyes are detected, the box-geometry eyes' distance from the detected ones (in inter-ocular distances:
the error of the fallback), and how many faces' five points are plausible (eyes level within 20 degrees, 25-65 % of
the box apart, in its upper half, mouth below the eyes).
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


def landmarks_report(faces: list[np.ndarray], others: list[np.ndarray]) -> None:
    import math

    from desktop_sr.engine.faces import landmarks as lm

    found = detected = plausible = 0
    fallback_error: list[float] = []
    start = time.perf_counter()
    for img in faces:
        hit = [f for f in lm.detect(img) if covers([f.box], 80, 80)]
        if not hit:
            continue
        found += 1
        f = hit[0]
        p = f.array()
        x0, y0, x1, y1 = f.box
        w, h = x1 - x0, y1 - y0
        iod = math.dist(p[0], p[1])
        angle = abs(math.degrees(math.atan2(p[1, 1] - p[0, 1], p[1, 0] - p[0, 0])))
        plausible += (angle <= 20 and 0.25 * w <= iod <= 0.65 * w and max(p[0, 1], p[1, 1]) < y0 + h / 2
                      and min(p[3, 1], p[4, 1]) > max(p[0, 1], p[1, 1]))  # fmt: skip
        if f.eyes_detected:
            detected += 1
            guess = [(x0 + ex * w, y0 + ey * h) for ex, ey in (lm.BOX_LEFT_EYE, lm.BOX_RIGHT_EYE)]
            fallback_error.append(max(math.dist(guess[0], p[0]), math.dist(guess[1], p[1])) / iod)
    alarms = sum(bool(lm.detect(o)) for o in others)
    ms = (time.perf_counter() - start) / (len(faces) + len(others)) * 1000
    err = np.asarray(fallback_error)
    print("\nlandmarks (face cascade + eye cascade, box geometry as fallback)")
    print(f"  LFW recall {found}/100, false alarms {alarms}/100, {ms:.1f} ms/photo")
    print(f"  both eyes detected: {detected}/{found}; plausible five points: {plausible}/{found}")
    print(f"  fallback eyes vs detected eyes: median {np.median(err):.2f}, 90th percentile "
          f"{np.percentile(err, 90):.2f} inter-ocular distances")  # fmt: skip


if __name__ == "__main__":
    main()
    landmarks_report(*lfw_photos())
