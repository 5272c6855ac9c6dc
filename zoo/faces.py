"""Face verification (1:1) and recognition (1:K) with a trained Siamese encoder.

    model = FaceModel.load("outputs/siamese_triplet_mnist5k/<time>/checkpoints/best.ckpt")
    db = FaceDatabase.create(model)             # the threshold: the model's, chosen on validation pairs
    db.enroll("ada", model.embed_files(["ada1.png", "ada2.png"]))
    db.save("faces.json")
    verify(model, db, "ada", "door_camera.png")  # {"match": True, "distance": 0.21, ...}
    identify(model, db, "door_camera.png")       # {"name": "ada", "recognized": True, ...} or name None

Verification compares the Euclidean distance between the image's embedding and the nearest
embedding enrolled for the claimed name with the database's threshold: a match when the distance
is at most the threshold. Recognition finds the enrolled person nearest to the image and answers
"not recognized" (``name: None``) when even that person is farther than the threshold.

The database (:class:`FaceDatabase`, a JSON file) stores embeddings only -- never an image --
with the names, the threshold, the embedding size and the model it was made with (embeddings of
another model are not comparable: the database refuses them). The model is any checkpoint of the
metric-learning task (``zoo.tasks.metric_learning``), or a published weight of one; the image
files are read as the model's training data was (``read_input`` of its datamodule).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["FaceError", "FaceModel", "FaceDatabase", "verify", "identify"]

FORMAT = "zoo-face-db"


class FaceError(ValueError):
    """A request the face API refuses; the message says what to do."""


class FaceModel:
    """A Siamese encoder with the reader of its input files and its verification threshold."""

    def __init__(self, task, datamodule, source: str):
        self.task, self.datamodule, self.source = task.eval(), datamodule, str(source)
        facts = datamodule.data_facts() if hasattr(datamodule, "data_facts") else {}
        self.input_shape = tuple(facts.get("input_shape") or ())
        value = getattr(task, "distance_threshold", None)
        self.threshold = None if value is None or math.isnan(float(value)) else float(value)

    @classmethod
    def load(cls, source: str | Path) -> "FaceModel":
        """A checkpoint written by ``zoo-train`` (a path), or a published weight's name."""
        from hydra.utils import instantiate

        from zoo.cli.eval import task_from_source
        from zoo.tasks.metric_learning import MetricLearningTask

        source = str(source)
        try:
            task = task_from_source(source)
        except FileNotFoundError as err:  # no such checkpoint file, or an unknown weight name
            raise FaceError(f"{err} Give the path of a checkpoint (.ckpt) of a Siamese run, e.g. "
                            "outputs/siamese_triplet_mnist5k/<time>/checkpoints/best.ckpt") from None
        if not isinstance(task, MetricLearningTask):
            raise FaceError(f"{source} holds a {getattr(task, 'family', type(task).__name__)} model, not a Siamese "
                            "encoder: train one with e.g. `zoo-train experiment=siamese_triplet_mnist5k`")
        data_cfg = dict((task.run_config or {}).get("data") or {})
        if not data_cfg:
            raise FaceError(f"{source} stores no data config: it cannot say how to read image files")
        data_cfg.pop("augment", None)
        return cls(task, instantiate(data_cfg, _convert_="all"), source)

    @property
    def embedding_dim(self) -> int | None:
        return getattr(self.task.net, "embedding_dim", None)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) preprocessed images, as the model's datamodule gives them -> (N, D)."""
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if self.input_shape and tuple(images.shape[1:]) != self.input_shape:
            raise FaceError(f"the model takes images of shape {self.input_shape} (channels, height, width), got "
                            f"{tuple(images.shape[1:])}: read image files with embed_files, which converts and "
                            "resizes them")
        with torch.no_grad():
            emb = self.task.net(images)
        return emb.detach().float().cpu()

    def embed_files(self, files: Sequence[str | Path]) -> torch.Tensor:
        """The embeddings (N, D) of image files (PNG, JPEG ...), read as the training images."""
        if not files:
            raise FaceError("no image given: name at least one image file")
        examples = []
        for f in files:
            path = Path(f)
            if not path.is_file():
                raise FaceError(f"{path}: no such image file")
            example, _ = self.datamodule.read_input(path)
            examples.append(example)
        return self.embed_images(torch.stack(examples))


@dataclass
class FaceDatabase:
    """Enrolled embeddings by name, the verification threshold (a Euclidean distance between
    embeddings) and the model they come from."""

    threshold: float
    model: str
    embedding_dim: int
    people: dict[str, list[list[float]]] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def create(cls, model: FaceModel, threshold: float | None = None) -> "FaceDatabase":
        thr = threshold if threshold is not None else model.threshold
        if thr is None:
            raise FaceError(f"{model.source} carries no verification threshold (it was never validated): "
                            "give one, e.g. --threshold 0.5 (a Euclidean distance between unit embeddings, 0..2)")
        if not (isinstance(thr, (int, float)) and math.isfinite(thr) and thr >= 0):
            raise FaceError(f"the threshold must be a distance >= 0, got {thr!r}")
        dim = model.embedding_dim or int(model.embed_images(torch.zeros(1, *model.input_shape)).shape[1])
        return cls(threshold=float(thr), model=model.source, embedding_dim=int(dim))

    # -- files ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "FaceDatabase":
        path = Path(path)
        if not path.is_file():
            raise FaceError(f"no face database at {path}: enroll someone first (zoo-face enroll NAME IMAGE... "
                            f"--db {path} --model MODEL)")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"its format is {data.get('format')!r}, not {FORMAT!r}")
            db = cls(threshold=float(data["threshold"]), model=str(data["model"]),
                     embedding_dim=int(data["embedding_dim"]), people={str(k): [list(map(float, e)) for e in v]
                                                                       for k, v in data["people"].items()},
                     path=path)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise FaceError(f"{path} is not a face database written by zoo-face ({type(err).__name__}: {err}); "
                            "give another --db file, or delete it and enroll again") from None
        for name, embs in db.people.items():
            if any(len(e) != db.embedding_dim for e in embs):
                raise FaceError(f"{path}: an embedding of {name!r} is not of size {db.embedding_dim}; the file is "
                                "damaged: delete it and enroll again")
        return db

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path or self.path)
        data = {"format": FORMAT, "version": 1, "model": self.model, "threshold": self.threshold,
                "embedding_dim": self.embedding_dim, "people": self.people}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)  # never half a database
        self.path = path
        return path

    # -- contents ---------------------------------------------------------------------------------
    def check_model(self, model: FaceModel) -> None:
        dim = model.embedding_dim
        if dim is not None and dim != self.embedding_dim:
            raise FaceError(f"the database{self._where()} holds {self.embedding_dim}-d embeddings of {self.model}, "
                            f"but {model.source} makes {dim}-d ones: embeddings of two models are not comparable; "
                            "use the database's own model, or another --db file")

    def enroll(self, name: str, embeddings: torch.Tensor) -> int:
        """Add (N, D) embeddings under ``name``; returns how many ``name`` now has."""
        name = str(name).strip()
        if not name:
            raise FaceError("the name to enroll is empty: give a name")
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embedding_dim:
            raise FaceError(f"embeddings of shape {tuple(embeddings.shape)} cannot join a database of "
                            f"{self.embedding_dim}-d embeddings")
        self.people.setdefault(name, []).extend([[round(float(v), 7) for v in row] for row in embeddings])
        return len(self.people[name])

    def _where(self) -> str:
        return f" {self.path}" if self.path else ""

    def _require_people(self) -> None:
        if not self.people:
            raise FaceError(f"the face database{self._where()} is empty: enroll someone first (zoo-face enroll "
                            "NAME IMAGE... --db FILE)")

    def distances(self, embedding: torch.Tensor) -> dict[str, float]:
        """Per enrolled name, the Euclidean distance from ``embedding`` (D,) to their nearest enrolled one."""
        self._require_people()
        emb = embedding.view(-1).float()
        out = {}
        for name, embs in self.people.items():
            enrolled = torch.tensor(embs, dtype=torch.float32)  # (M, D)
            out[name] = float((enrolled - emb).pow(2).sum(1).sqrt().min())
        return out


def _one(model: FaceModel, image: str | Path | torch.Tensor) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return model.embed_images(image)[0]
    return model.embed_files([image])[0]


def verify(model: FaceModel, db: FaceDatabase, name: str, image: str | Path | torch.Tensor) -> dict:
    """1:1 -- is this image ``name``? ``{"name", "match", "distance", "threshold"}``."""
    db._require_people()
    db.check_model(model)
    if name not in db.people:
        enrolled = ", ".join(sorted(db.people))
        raise FaceError(f"{name!r} is not enrolled in the face database{db._where()} (enrolled: {enrolled}); enroll "
                        f"them first (zoo-face enroll {name} IMAGE... --db FILE)")
    d = db.distances(_one(model, image))[name]
    return {"name": name, "match": d <= db.threshold, "distance": round(d, 6), "threshold": db.threshold}


def identify(model: FaceModel, db: FaceDatabase, image: str | Path | torch.Tensor, top: int = 3) -> dict:
    """1:K -- who is this? ``{"name": <nearest name, or None: not recognized>, "recognized",
    "distance", "threshold", "nearest": [(name, distance) ...]}``."""
    db._require_people()
    db.check_model(model)
    ranked = sorted(db.distances(_one(model, image)).items(), key=lambda kv: kv[1])
    best, d = ranked[0]
    recognized = d <= db.threshold
    return {"name": best if recognized else None, "recognized": recognized, "distance": round(d, 6),
            "threshold": db.threshold, "nearest": [[n, round(v, 6)] for n, v in ranked[:top]]}
