"""``compile``: torch.compile for zoo-train's nets, in place, with one-line errors.

``compile=true`` (torch.compile's defaults) or ``compile={mode: max-autotune}`` (its keyword
arguments) compiles each of the task's nets with ``nn.Module.compile``; ``null`` is eager.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
from omegaconf import OmegaConf

from zoo.errors import ConfigError

log = logging.getLogger("zoo.cli.train")


def compile_nets(task, option, trainer=None) -> None:
    """``compile=true`` or ``compile={mode: ..., backend: ...}``: ``nn.Module.compile`` on each of
    the task's nets (``task.nets``). In place: the modules, their ``state_dict`` keys and the
    checkpoints stay those of an eager run (no ``_orig_mod.`` prefix), so eager and compiled runs
    load each other's weights. Compiling is lazy: the code is generated at the first forward pass
    (the sanity check's validation steps, then the first training steps). ``None`` or ``False``:
    nothing is done. A CPU run with the inductor backend (the default) needs a C++ compiler:
    without one the run is refused now, naming the fix, rather than in the first training step."""
    if option is None or option is False:
        return
    kwargs = {} if option is True else dict(OmegaConf.to_container(option, resolve=True)
                                            if OmegaConf.is_config(option) else option)
    on_cpu = trainer is None or type(trainer.accelerator).__name__ == "CPUAccelerator"
    if on_cpu and kwargs.get("backend", "inductor") == "inductor":
        _check_cpp_compiler(option)
    for name in task.nets:
        module = getattr(task, name, None)
        if isinstance(module, torch.nn.Module):
            module.compile(**kwargs)


def _say_compile(option) -> str:
    if OmegaConf.is_config(option):
        option = OmegaConf.to_container(option, resolve=True)
    if isinstance(option, dict):
        return "compile={" + ",".join(f"{k}:{v}" for k, v in option.items()) + "}"
    return f"compile={str(option).lower()}"


def _check_cpp_compiler(option) -> None:
    """Refuse ``compile`` on the CPU when inductor finds no working C++ compiler (``$CXX``, else
    ``g++``), as inductor itself searches for one."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # another torch: a failure comes at the first forward pass (compile_failures)
        return
    try:
        get_cpp_compiler()
    except Exception as err:
        raise ConfigError(f"{_say_compile(option)}: torch.compile's inductor backend generates C++ for the CPU and "
                          f"found no working C++ compiler ({type(err).__name__}: {str(err).splitlines()[0]}); install "
                          "one (e.g. apt-get install g++, or set CXX to its path), or train eagerly with compile=null"
                          ) from None


@contextmanager
def compile_failures(option):
    """Around the work of a compiled run: torch.compile's own failure (tracing, code generation,
    building the generated code) ends the run with one line naming ``compile`` and the way out,
    not a traceback from inside torch (which ``hydra.verbose=zoo.cli.train`` logs)."""
    if option is None or option is False:
        yield
        return
    try:
        yield
    except Exception as err:
        if not _is_compile_error(err):
            raise
        log.debug("torch.compile failed", exc_info=True)
        inner = getattr(err, "inner_exception", None)  # a backend's own error (BackendCompilerFailed)
        cause = inner if isinstance(inner, BaseException) else err
        first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")[:400]
        where = f"backend {err.backend_name!r}: " if inner is not None and hasattr(err, "backend_name") else ""
        raise ConfigError(f"{_say_compile(option)}: torch.compile failed on this machine ({where}"
                          f"{type(cause).__name__}: {first}); train eagerly with compile=null, or try another "
                          "backend, e.g. compile={backend:aot_eager}") from None


def _is_compile_error(err: BaseException) -> bool:
    """An exception raised by torch.compile's machinery (dynamo, inductor), or caused by one."""
    seen = 0
    while err is not None and seen < 5:
        if type(err).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return True
        err, seen = err.__cause__, seen + 1
    return False
