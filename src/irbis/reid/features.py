"""Local pattern features: RootSIFT keypoints on the prepared crop."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from irbis.reid.preprocess import Prepared


@dataclass(frozen=True, slots=True)
class Features:
    """Keypoints and descriptors of one annotation.

    Attributes
    ----------
    xy:
        ``(n, 2)`` float32 keypoint positions in the prepared image's pixels.
    size, angle:
        ``(n,)`` float32 keypoint diameters and orientations (degrees).
    desc:
        ``(n, d)`` float32 descriptors (RootSIFT: L2-normalised, so squared L2
        distances lie in ``[0, 4]``).
    xy_original:
        ``(n, 2)`` float32 positions in the original frame, for drawing matches.
    """

    xy: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    desc: np.ndarray
    xy_original: np.ndarray

    def __len__(self) -> int:
        # Keypoints, not descriptors: a catalogue drops its copy of the descriptors
        # (they live in the index) but keeps the keypoints for verification.
        return int(self.xy.shape[0])

    def without_descriptors(self) -> Features:
        """The same keypoints with no descriptor copy (saves 512 B per keypoint)."""
        return Features(
            self.xy,
            self.size,
            self.angle,
            np.zeros((0, self.desc.shape[1]), np.float32),
            self.xy_original,
        )

    @staticmethod
    def empty(dim: int = 128) -> Features:
        """No keypoints (a blank or featureless crop)."""
        z2 = np.zeros((0, 2), np.float32)
        z1 = np.zeros((0,), np.float32)
        return Features(z2, z1, z1, np.zeros((0, dim), np.float32), z2)


def rootsift(desc: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman 2012): L1-normalise, square-root.

    Comparing square-rooted histograms with L2 is the Hellinger kernel on the
    originals, which is less dominated by a few large bins than plain SIFT.
    """
    d = np.asarray(desc, dtype=np.float32)
    d = d / (np.abs(d).sum(axis=1, keepdims=True) + eps)
    return np.sqrt(np.maximum(d, 0.0)).astype(np.float32)


def extract(
    prep: Prepared,
    max_keypoints: int = 600,
    root: bool = True,
    contrast_threshold: float = 0.02,
) -> Features:
    """SIFT keypoints (multi-scale by construction: a DoG pyramid) → RootSIFT.

    Parameters
    ----------
    prep:
        Output of :func:`irbis.reid.preprocess.prepare`.
    max_keypoints:
        Keep the strongest keypoints; bounds index size and query time.
    root:
        RootSIFT (default) or plain SIFT descriptors (the baseline).
    contrast_threshold:
        SIFT's DoG contrast threshold; lower than OpenCV's 0.04 because CLAHE-ed
        night IR rosettes are faint.

    Notes
    -----
    Keypoints are restricted to the animal mask where one exists. Keypoints
    smaller than 3 px are dropped: they sit on JPEG noise and sensor grain, not
    rosettes.
    """
    sift = cv2.SIFT_create(nfeatures=max_keypoints * 2, contrastThreshold=contrast_threshold)
    kps, desc = sift.detectAndCompute(prep.gray, prep.mask)
    if desc is None or not kps:
        return Features.empty()
    resp = np.array([k.response for k in kps], np.float32)
    size = np.array([k.size for k in kps], np.float32)
    keep = np.flatnonzero(size >= 3.0)
    keep = keep[np.argsort(-resp[keep], kind="stable")[:max_keypoints]]
    if keep.size == 0:
        return Features.empty()
    xy = np.array([kps[i].pt for i in keep], np.float32)
    ang = np.array([kps[i].angle for i in keep], np.float32)
    d = desc[keep]
    d = rootsift(d) if root else d.astype(np.float32)
    return Features(xy, size[keep], ang, d, prep.to_original(xy).astype(np.float32))
