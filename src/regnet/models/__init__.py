"""Every family registers its variants on import."""
from . import resnet  # noqa: F401  (ResNet baselines; the base the other families extend)
from . import iresnet  # noqa: F401  (iResNet, ResStage, ResGroup; Duta et al.)
from . import inflate  # noqa: F401  (2D -> 3D inflation; iresnet3d50, resnet3d50)
from .anynet import AnyNetCfg, RegNetCfg, build_anynet, build_regnet  # noqa: F401  (AnyNet, RegNet zoo)
from .regnet_gen import generate_regnet  # noqa: F401  (the RegNet width/depth generator)
from . import self_regulated  # noqa: F401  (RNN-regulated ResNets; Xu et al.)
from .net import ClassifierHead, FeatureNet, Net, Stage, make_blocks

__all__ = ["Net", "Stage", "FeatureNet", "ClassifierHead", "make_blocks"]
