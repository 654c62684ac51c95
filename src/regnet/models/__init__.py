"""The networks. Importing this package registers every family's variants (`import regnet`
does it); `create_model` builds one by name."""
from . import resnet  # noqa: F401  (ResNet baselines)
from . import iresnet  # noqa: F401  (iResNet, ResStage, ResGroup; Duta et al.)
from . import anynet  # noqa: F401  (AnyNet and the RegNet zoo; Radosavovic et al.)
from . import self_regulated  # noqa: F401  (RNN-regulated ResNets; Xu et al.)
from . import inflate  # noqa: F401  (2D -> 3D inflation; iresnet3d50, resnet3d50)
from .factory import create_model, ssd_trunk
from .net import ClassifierHead, FeatureNet, Net, Stage, StageSpec, build_stages

__all__ = ["create_model", "ssd_trunk", "Net", "Stage", "StageSpec", "build_stages",
           "FeatureNet", "ClassifierHead"]
