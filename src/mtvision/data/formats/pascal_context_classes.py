"""PASCAL-Context label spaces: the 459 raw classes reduced to the 21 / 59 class sets, the
human-part groups, and the classes whose distilled normals are kept.

Raw ``LabelMap`` values are the 459 class ids of Mottaghi et al., "The Role of Context for
Object Detection and Semantic Segmentation in the Wild" (CVPR 2014; ``labels.txt``, the ids of
``context_classes.json`` in Vandenhende's ``data/db_info``), 0 = unlabelled.

* :data:`VOC21_IDS`: Vandenhende et al.'s ``CONTEXT_CATEGORY_LABELS`` (``data/pascal_context.py``
  of SimonVandenhende/Multi-Task-Learning-PyTorch): class ``k`` of the 20 VOC objects has raw id
  ``VOC21_IDS[k]``; every other pixel is background (class 0), which is scored.
* :data:`CONTEXT59_IDS`: the 59 most frequent classes, the mapping of the Detail-API converters
  (PyTorch-Encoding ``pcontext.py``, mmsegmentation ``tools/dataset_converters/pascal_context.py``),
  sorted by id, which sorts the names alphabetically. As mmseg's ``PascalContextDataset59``
  (``reduce_zero_label``), every other pixel, background included, is void.
* :data:`HUMAN_PARTS_6`: Vandenhende's ``HUMAN_PART[6]`` (from ASTMT, Maninis et al. CVPR 2019),
  PASCAL-Part person parts grouped into 6 + background.
* :data:`NORMALS_IDS`: the raw classes whose distilled normals their loader keeps
  (``_load_normals_distilled``): the names of ``nyu_classes.json`` that are also in
  ``context_classes.json`` (not ``unknown``), plus ``tvmonitor``. Their loader intersects the two
  JSON files at run time; the ids here are that intersection, taken by name from those files.

Example:
    >>> len(VOC21_IDS), len(CONTEXT59_IDS), len(set(HUMAN_PARTS_6.values())), CONTEXT59_NAMES[CONTEXT59_IDS.index(397)]
    (21, 59, 6, 'table')
"""

from __future__ import annotations

RAW_CLASSES = 459

VOC21_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
VOC21_IDS = [0, 2, 23, 25, 31, 34, 45, 59, 65, 72, 98, 397, 113, 207, 258, 284, 308, 347, 368, 416, 427]

CONTEXT59_IDS = [2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113, 115,
                 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326, 347, 349,
                 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458]
CONTEXT59_NAMES = ["aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
                   "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup",
                   "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse",
                   "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
                   "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
                   "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood"]

PART_NAMES_6 = ["background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg"]
HUMAN_PARTS_6 = {
    "hair": 1, "head": 1, "lear": 1, "lebrow": 1, "leye": 1, "mouth": 1, "nose": 1, "rear": 1, "rebrow": 1,
    "reye": 1, "neck": 2, "torso": 2, "luarm": 3, "ruarm": 3, "lhand": 4, "llarm": 4, "rhand": 4, "rlarm": 4,
    "luleg": 5, "ruleg": 5, "lfoot": 6, "llleg": 6, "rfoot": 6, "rlleg": 6,
}
PERSON = 15  # PASCAL VOC class index of "person" in the human_parts .mat files (class_ind)

NORMALS_IDS = frozenset({
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46, 49, 50, 51, 53, 55, 56,
    59, 61, 62, 65, 66, 68, 69, 72, 73, 78, 83, 84, 85, 87, 88, 95, 96, 101, 104, 105, 107, 111, 113, 115, 122, 124,
    135, 141, 142, 143, 146, 150, 154, 157, 158, 159, 165, 172, 174, 181, 183, 184, 191, 193, 195, 197, 199, 202,
    213, 215, 216, 219, 220, 223, 225, 228, 230, 232, 233, 238, 239, 242, 243, 246, 250, 251, 252, 255, 260, 261,
    263, 269, 272, 273, 275, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293, 295, 304, 307, 309, 310, 314,
    315, 319, 323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355, 357, 368, 370, 371, 374, 379, 380, 383,
    384, 397, 401, 403, 405, 407, 408, 411, 412, 413, 414, 417, 419, 421, 423, 427, 429, 430, 432, 440, 441, 442,
    443, 444, 446, 454, 457,
})
