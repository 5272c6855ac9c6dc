"""Architecture families, one per file. Importing this package registers every variant."""
from zoo.models import alexnet, densenet, efficientnet, googlenet, lenet, linear, localization, mlp, mobilenet, multilabel, nin, rcnn, resnet, rnn, siamese, style_net, unet, vgg, yolo  # noqa: F401
