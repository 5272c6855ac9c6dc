"""The zoo's commands: ``zoo-train``, ``zoo-eval``, ``zoo-predict`` (Hydra or argparse entry
points over any task) and the listings ``zoo-models`` and ``zoo-weights``."""
