"""Architecture families, one per file. Importing this package registers every variant."""
from zoo.models import lenet, linear, mlp  # noqa: F401
