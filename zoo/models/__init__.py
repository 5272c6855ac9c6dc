"""Architecture families, one per file. Importing this package registers every variant."""
from zoo.models import alexnet, densenet, efficientnet, googlenet, lenet, linear, localization, mlp, mobilenet, nin, resnet, vgg  # noqa: F401
