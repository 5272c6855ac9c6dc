"""Architecture families, one per file. Importing this package registers every variant."""
from zoo.models import alexnet, densenet, efficientnet, googlenet, lenet, linear, localization, mlp, mobilenet, multilabel, nin, rcnn, resnet, rnn, siamese, style_net, unet, vgg, yolo  # noqa: F401
from zoo.models import transformer  # noqa: F401,E402
from zoo.models import bag_of_embeddings  # noqa: E402,F401
from zoo.models import embeddings  # noqa: E402,F401
from zoo.models import trigger_word  # noqa: E402,F401
from zoo.models import seq2seq  # noqa: E402,F401
from zoo.models import ctc  # noqa: E402,F401
