"""The five-point face template face restoration models are trained on (FFHQ alignment at 512 x 512).

The points (left eye, right eye, nose tip, left and right mouth corner, in the 512 x 512 crop) are those GFPGAN,
CodeFormer and RestoreFormer's face helpers align to; a face warped onto them is what these models expect.
"""

from __future__ import annotations

import numpy as np

#: The face crop's side: the models' input and output.
FACE_SIDE = 512
TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
