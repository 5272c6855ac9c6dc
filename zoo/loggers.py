"""Logger factories used by ``conf/logger/``."""
from __future__ import annotations

import netrc
import os
from pathlib import Path


def wandb_account_configured() -> bool:
    """True when Weights & Biases credentials are present (``WANDB_API_KEY`` or a netrc entry
    for api.wandb.ai, where ``wandb login`` writes them)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    for candidate in (os.environ.get("NETRC"), Path.home() / ".netrc"):
        if candidate and Path(candidate).is_file():
            try:
                if netrc.netrc(str(candidate)).authenticators("api.wandb.ai"):
                    return True
            except (netrc.NetrcParseError, OSError):
                pass
    return False


def wandb_logger(project: str = "zoo", name: str | None = None, save_dir: str = ".",
                 offline: bool | None = None, log_model: bool = False, tags: list[str] | None = None,
                 group: str | None = None):
    """A ``WandbLogger`` that runs offline unless an account is configured (or ``offline`` is
    given). Offline runs are written under ``<save_dir>/wandb/offline-run-*`` and can be
    uploaded later with ``wandb sync``."""
    from lightning.pytorch.loggers import WandbLogger

    if offline is None:
        offline = not wandb_account_configured() or os.environ.get("WANDB_MODE") == "offline"
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=project, name=name, save_dir=save_dir, offline=offline,
                       log_model=log_model and not offline, tags=tags, group=group)
