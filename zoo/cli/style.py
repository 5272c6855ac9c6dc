"""``zoo-style``: neural style transfer by optimisation (Gatys, Ecker & Bethge 2016), or with a
trained feed-forward network (Johnson et al. 2016); ``zoo-style-report`` writes reports/style/.

    zoo-style --content skimage:astronaut --style skimage:gravel --features random --steps 300 --size 128 --out out.png
    zoo-style --content my_photo.jpg --style painting.jpg --features zoo:vgg11_bn.mnist5k --out out.png
    zoo-style --content my_photo.jpg --style skimage:brick --features imagenet --out out.png   # torchvision's VGG-19, if on disk
    zoo-style --net outputs/style_johnson_skimage/<time>/checkpoints/best.ckpt --content my_photo.jpg --out out.png
    zoo-style-report --size 128 --steps 300      # both offline feature networks -> reports/style/

The optimisation method changes the pixels of the generated image ``G`` (initialised from noise,
or from the content image plus noise) to lower ``J(G) = alpha J_content + beta J_style (+ TV)``
(``zoo.losses.style``) with L-BFGS or Adam. Beside the stylised PNG it writes ``<out>.json`` (the
settings, the feature network, the content, style and total costs at every iteration and the
time), ``<out>_costs.png`` (those costs over the iterations) and ``<out>_panel.png`` (content,
style and result side by side).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from zoo.losses.style import (DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, FeatureNetworkError, FeatureSource,
                              content_cost, feature_network, gram_matrix, style_cost, total_cost, total_variation)

INITS = ("noise", "content+noise", "content")


@dataclass
class StyleResult:
    """What one optimisation produced: the image (3, H, W) in [0, 1] and the cost history."""

    image: torch.Tensor
    history: list[dict] = field(default_factory=list)  # per iteration: total, content, style, tv, seconds
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def fall(self) -> float:
        """Initial total cost / final total cost."""
        first, last = self.history[0]["total"], self.history[-1]["total"]
        return first / last if last > 0 else float("inf")


def gatys_transfer(content: torch.Tensor, style: torch.Tensor, features: FeatureSource, steps: int = 300,
                   optimizer: str = "lbfgs", lr: float | None = None, init: str = "noise", noise_ratio: float = 0.6,
                   content_layer: str = DEFAULT_CONTENT_LAYER, style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
                   style_weights: Sequence[float] | None = None, alpha: float = 1.0, beta: float = 100.0,
                   tv_weight: float = 0.01, pool: str = "avg", seed: int = 0) -> StyleResult:
    """Optimise the pixels of ``G`` (Gatys et al. 2016, section 2) for ``steps`` iterations.

    Args:
        content, style: (3, H, W) images in [0, 1] (the style image may have another size).
        features: the feature network (:func:`zoo.losses.style.feature_network`).
        optimizer: ``lbfgs`` (one iteration per step, its own line search) or ``adam``
            (``lr`` 0.02 by default; pixels clamped to [0, 1] after each step).
        init: ``noise`` (uniform in [0, 1]), ``content+noise`` (``(1 - r) C + r U(0, 1)``, r =
            ``noise_ratio``, as in the course notes) or ``content``.
        alpha, beta, tv_weight: the weights of J_content, J_style and the total variation.
        pool: ``avg`` (Gatys et al.'s choice for synthesis) or ``max`` between the VGG's stages.
    Returns: the image (clamped to [0, 1]) and the costs of every iterate, the first the initial image's.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be lbfgs or adam, got {optimizer!r}")
    layers = [content_layer, *style_layers]
    acts = features.activations(layers, pool=pool)
    style_layers = list(style_layers)
    weights = dict(zip(style_layers, style_weights)) if style_weights else None
    with torch.no_grad():
        a_C = acts(content[None])[content_layer]
        style_acts = acts(style[None])
        grams_S = {name: gram_matrix(style_acts[name]) for name in style_layers}
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(content.shape, generator=g)
    start = {"noise": noise, "content+noise": (1 - noise_ratio) * content + noise_ratio * noise,
             "content": content.clone()}[init]
    G = start[None].clone().requires_grad_(True)  # (1, 3, H, W)

    def costs() -> tuple[torch.Tensor, dict]:
        acts_G = acts(G)
        j_c = content_cost(a_C, acts_G[content_layer])
        j_s = style_cost(grams_S, acts_G, weights)
        tv = total_variation(G)
        j = total_cost(j_c, j_s, alpha, beta, tv, tv_weight)
        return j, {"total": float(j.detach()), "content": float(j_c.detach()), "style": float(j_s.detach()),
                   "tv": float(tv.detach())}

    history: list[dict] = []
    t0 = time.perf_counter()
    # the optimiser sees J / J(G_0): the costs of a small or untrained feature network can be so
    # small that L-BFGS's curvature pairs fall below its threshold (y.s > 1e-10) and it never
    # leaves steepest descent; the recorded costs are J's own
    with torch.no_grad():
        scale = 1.0 / max(costs()[1]["total"], 1e-30)
    if optimizer == "lbfgs":
        # one L-BFGS iteration per step() call: its curvature history persists across calls, and
        # the first evaluation of each call is the cost of the current iterate (recorded)
        opt = torch.optim.LBFGS([G], lr=lr or 1.0, max_iter=1, history_size=50, line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)
    else:
        opt = torch.optim.Adam([G], lr=lr or 0.02)
    for it in range(steps):
        seen: list[dict] = []

        def closure():
            opt.zero_grad()
            j, parts = costs()
            (j * scale).backward()
            if not seen:
                seen.append(parts)
            return j.detach() * scale

        opt.step(closure)
        if optimizer == "adam":
            with torch.no_grad():
                G.clamp_(0, 1)
        history.append({"iteration": it, **seen[0], "seconds": round(time.perf_counter() - t0, 4)})
        if not all(v == v for v in seen[0].values()):
            raise FloatingPointError(f"the cost became NaN at iteration {it}: lower --lr or the weights")
    with torch.no_grad():
        _, parts = costs()
    seconds = time.perf_counter() - t0
    history.append({"iteration": steps, **parts, "seconds": round(seconds, 4)})
    settings = {"features": features.source, "feature_network": features.description, "steps": steps,
                "optimizer": optimizer, "lr": lr, "init": init, "noise_ratio": noise_ratio,
                "content_layer": content_layer, "style_layers": style_layers, "style_weights": style_weights,
                "alpha": alpha, "beta": beta, "tv_weight": tv_weight, "pool": pool, "seed": seed,
                "size": list(content.shape[-2:])}
    return StyleResult(G.detach()[0].clamp(0, 1), history, seconds, settings)


# -- figures ---------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_costs(history: list[dict], path: Path, title: str = "") -> Path:
    """Total, content (alpha-weighted) and style (beta-weighted) costs over the iterations, log scale."""
    plt = _plt()
    it = [h["iteration"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.semilogy(it, [h["total"] for h in history], label="total J(G)", lw=2)
    ax.semilogy(it, [max(h["content"], 1e-12) for h in history], label="J_content")
    ax.semilogy(it, [max(h["style"], 1e-12) for h in history], label="J_style")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost (log)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"costs, {history[-1]['seconds']:.1f} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_panel(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path, title: str = "") -> Path:
    """Images (3, H, W) in [0, 1] side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.6), squeeze=False)
    for ax, img, t in zip(axes[0], images, titles):
        ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(t, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_result(result: StyleResult, content: torch.Tensor, style: torch.Tensor, out: Path,
                 sources: dict) -> dict:
    """Write ``out`` (PNG), ``<out>.json``, ``<out>_costs.png`` and ``<out>_panel.png``; return the record."""
    from datamodules.vision.style_images import save_image

    out = Path(out)
    save_image(result.image, out)
    stem = out.with_suffix("")
    costs_png = plot_costs(result.history, Path(f"{stem}_costs.png"),
                           f"{result.settings['features']}: J fell {result.fall:.3g}x in "
                           f"{result.settings['steps']} iterations, {result.seconds:.1f} s")
    panel_png = plot_panel([content, style, result.image], ["content", "style", f"result ({result.settings['features']})"],
                           Path(f"{stem}_panel.png"), result.settings["feature_network"])
    record = {**sources, "settings": result.settings, "seconds": round(result.seconds, 3),
              "seconds_per_iteration": round(result.seconds / max(1, result.settings["steps"]), 4),
              "initial_total": result.history[0]["total"], "final_total": result.history[-1]["total"],
              "fall": result.fall, "files": {"image": out.name, "costs": costs_png.name, "panel": panel_png.name},
              "history": result.history}
    Path(f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


# -- the feed-forward net --------------------------------------------------------------------------

def stylise_with_net(checkpoint: str | Path, content: torch.Tensor) -> torch.Tensor:
    """The stylised (3, H, W) image of a trained style network's checkpoint (written by zoo-train)."""
    from zoo.tasks import StyleTransferTask, load_task

    task = load_task(checkpoint)
    if not isinstance(task, StyleTransferTask):
        raise ValueError(f"{checkpoint} holds a {type(task).__name__}, not a style-transfer run; train one with "
                         "`zoo-train experiment=style_johnson_skimage`")
    with torch.no_grad():
        return task.eval().predict_step(content[None])[0]


# -- the command -------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo-style", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--content", default="skimage:astronaut", help="an image file or skimage:<name> (default: %(default)s)")
    p.add_argument("--style", default="skimage:gravel", help="an image file or skimage:<name> (default: %(default)s)")
    p.add_argument("--features", default="random",
                   help="random | random:<vgg> | zoo:<weight> (e.g. zoo:vgg11_bn.mnist5k) | imagenet[:<vgg>] (default: %(default)s)")
    p.add_argument("--net", default=None, help="a checkpoint of a trained style network (zoo-train "
                                               "experiment=style_johnson_skimage): stylise --content with it instead")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=128, help="longer side of the images, in pixels")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--init", choices=INITS, default="noise")
    p.add_argument("--noise-ratio", type=float, default=0.6)
    p.add_argument("--content-layer", default=DEFAULT_CONTENT_LAYER)
    p.add_argument("--style-layers", default=",".join(DEFAULT_STYLE_LAYERS), help="comma-separated")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--beta", type=float, default=100.0)
    p.add_argument("--tv-weight", type=float, default=0.01)
    p.add_argument("--pool", choices=("avg", "max"), default="avg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--imagenet-path", default=None, help="torchvision's VGG weights file (for --features imagenet)")
    p.add_argument("--download", action="store_true", help="allow downloading torchvision's weights (online only)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default="stylised.png")
    return p


USER_ERRORS = (FeatureNetworkError, FileNotFoundError, ValueError, ImportError, FloatingPointError)


def run(args: argparse.Namespace) -> dict:
    from datamodules.vision.style_images import load_image, save_image

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.size < 16:
        raise ValueError(f"--size must be at least 16 pixels (the VGG halves it four times), got {args.size}")
    content = load_image(args.content, args.size)
    if args.net:
        image = stylise_with_net(args.net, content)
        save_image(image, args.out)
        plot_panel([content, image], ["content", "stylised"], Path(f"{Path(args.out).with_suffix('')}_panel.png"),
                   f"feed-forward network {args.net}")
        return {"content": args.content, "net": str(args.net), "out": str(args.out)}
    style = load_image(args.style, args.size)
    features = feature_network(args.features, seed=args.seed, imagenet_path=args.imagenet_path, download=args.download)
    result = gatys_transfer(content, style, features, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                            init=args.init, noise_ratio=args.noise_ratio, content_layer=args.content_layer,
                            style_layers=[s for s in args.style_layers.split(",") if s], alpha=args.alpha,
                            beta=args.beta, tv_weight=args.tv_weight, pool=args.pool, seed=args.seed)
    return write_result(result, content, style, Path(args.out), {"content": args.content, "style": args.style})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        record = run(args)
    except USER_ERRORS as err:
        print(f"zoo-style: {err}", file=sys.stderr)
        return 2
    if "fall" in record:
        print(f"{args.out}: J(G) {record['initial_total']:.4g} -> {record['final_total']:.4g} "
              f"({record['fall']:.3g}x lower) in {record['settings']['steps']} iterations, {record['seconds']:.1f} s "
              f"[{record['settings']['feature_network']}]")
    else:
        print(f"{args.out}: stylised by {args.net}")
    return 0


# -- the report ------------------------------------------------------------------------------------

REPORT_FEATURES = ("zoo:vgg11_bn.mnist5k", "random")


def write_report(out_dir: Path = Path("reports/style"), content: str = "skimage:astronaut",
                 style: str = "skimage:gravel", size: int = 128, steps: int = 300,
                 features: Sequence[str] = REPORT_FEATURES, init: str = "noise", seed: int = 0,
                 alpha: float = 1.0, beta: float = 100.0, tv_weight: float = 0.01,
                 command: str = "") -> list[dict]:
    """Run the optimisation with each offline feature network and write the images, cost curves,
    timings and a README.md table into ``out_dir``."""
    from datamodules.vision.style_images import load_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c, s = load_image(content, size), load_image(style, size)
    records = []
    for source in features:
        fs = feature_network(source, seed=seed)
        result = gatys_transfer(c, s, fs, steps=steps, init=init, alpha=alpha, beta=beta, tv_weight=tv_weight,
                                seed=seed)
        slug = source.replace(":", "_").replace(".", "_")
        records.append(write_result(result, c, s, out_dir / f"{slug}.png", {"content": content, "style": style}))
    plot_panel([c, s, *[load_image(out_dir / r["files"]["image"]) for r in records]],
               ["content", "style", *[r["settings"]["features"] for r in records]], out_dir / "comparison.png",
               f"Gatys et al. optimisation, {steps} L-BFGS iterations from noise, {size} px")
    (out_dir / "README.md").write_text(_report_markdown(records, content, style, size, steps, init, command))
    return records


def _report_markdown(records: list[dict], content: str, style: str, size: int, steps: int, init: str,
                     command: str) -> str:
    lines = [
        "# Neural style transfer by optimisation (Gatys et al. 2016)",
        "",
        "Written by `zoo-style-report`; every number and image here comes from that run.",
        "",
        f"Content `{content}`, style `{style}`, longer side {size} px, G initialised from `{init}`, "
        f"{steps} L-BFGS iterations, `J = alpha J_content + beta J_style + tv_weight TV(G)` (alpha {records[0]['settings']['alpha']:g}, beta {records[0]['settings']['beta']:g}, "
        f"tv_weight {records[0]['settings']['tv_weight']:g}, the same for both networks), content at "
        f"`{records[0]['settings']['content_layer']}`, style at {', '.join(records[0]['settings']['style_layers'])}.",
        "",
        "No ImageNet-trained VGG is available offline on the machine that wrote this report, so neither "
        "result is the paper's setting: one feature network was trained on 28x28 grey MNIST digits "
        "(it reads each colour channel as a grey image), the other was never trained.",
        "",
        "The costs of two feature networks are on different scales (their activations differ); the fall "
        "(initial / final J) is what compares them. Times are wall-clock seconds on "
        f"{torch.get_num_threads()} CPU thread(s) of this machine.",
        "",
        "| feature network | J(G) initial | J(G) final | fall | J_content final | J_style final | time (s) | s / iteration | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in records:
        last = r["history"][-1]
        lines.append(
            f"| `{r['settings']['features']}`: {r['settings']['feature_network']} | {r['initial_total']:.4g} | "
            f"{r['final_total']:.4g} | {r['fall']:.3g}x | {last['content']:.4g} | {last['style']:.4g} | "
            f"{r['seconds']:.1f} | {r['seconds_per_iteration']:.3f} | [image]({r['files']['image']}) |")
    lines += ["", "![content, style and the results](comparison.png)", ""]
    for r in records:
        lines += [f"## `{r['settings']['features']}`", "", f"{r['settings']['feature_network']}.", "",
                  f"![panel]({r['files']['panel']})", "", f"![costs]({r['files']['costs']})", ""]
    lines += ["Costs and settings of each run, iteration by iteration: the `.json` files beside the images.", ""]
    if command:
        lines += ["Reproduce with:", "", f"    {command}", ""]
    return "\n".join(lines)


def report_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-style-report",
                                description="Style transfer by optimisation with each offline feature network -> reports/style/")
    p.add_argument("--out-dir", default="reports/style")
    p.add_argument("--content", default="skimage:astronaut")
    p.add_argument("--style", default="skimage:gravel")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--init", choices=INITS, default="noise")
    p.add_argument("--features", default=",".join(REPORT_FEATURES), help="comma-separated feature networks")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--beta", type=float, default=100.0)
    p.add_argument("--tv-weight", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    command = "zoo-style-report " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        records = write_report(Path(args.out_dir), args.content, args.style, args.size, args.steps,
                               [f for f in args.features.split(",") if f], args.init, args.seed,
                               args.alpha, args.beta, args.tv_weight, command.strip())
    except USER_ERRORS as err:
        print(f"zoo-style-report: {err}", file=sys.stderr)
        return 2
    for r in records:
        print(f"{r['settings']['features']}: J(G) fell {r['fall']:.3g}x in {r['settings']['steps']} iterations, "
              f"{r['seconds']:.1f} s")
    print(f"wrote {Path(args.out_dir) / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
