"""Models: a timm backbone, an FPN neck and one head per task (DESIGN §2).

Example:
    >>> from mtvision.models import build_model
    >>> model = build_model("test_resnet.r160_in1k", tasks={})
    >>> sorted(model.parameter_counts())
    ['backbone', 'neck', 'shared', 'total']
"""

from mtvision.models.backbone import Backbone, load_pretrained
from mtvision.models.build import build_model
from mtvision.models.multitask import MultiTaskModel
from mtvision.models.neck import FPN
from mtvision.models.specs import TaskSpec

__all__ = ["Backbone", "FPN", "MultiTaskModel", "TaskSpec", "build_model", "load_pretrained"]
