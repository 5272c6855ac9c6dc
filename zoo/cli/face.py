"""``zoo-face``: enroll people, verify a claimed identity, identify a face, with a Siamese encoder.

    zoo-face enroll ada ada1.png ada2.png --db faces.json --model outputs/.../checkpoints/best.ckpt
    zoo-face verify door.png --name ada --db faces.json
    zoo-face identify door.png --db faces.json

``--model`` is a checkpoint written by ``zoo-train`` (a Siamese experiment) or a published weight's
name; ``enroll`` needs it when it creates the database, which then remembers it. The database
(a JSON file) stores embeddings only, with the names and the threshold: the Euclidean distance
under which two faces are called the same person, by default the one chosen on the model's
validation pairs (``--threshold`` sets another when the database is created). ``verify`` exits
with 0 on a match and 1 otherwise; ``identify`` prints the name, or "not recognized" when no one
enrolled is within the threshold. Errors exit with 2 and say what to do.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _model(args, db=None):
    from zoo.faces import FaceError, FaceModel

    source = args.model or (db.model if db is not None else None)
    if not source:
        raise FaceError("no model: give --model, a checkpoint (.ckpt) of a Siamese run or a published weight's name")
    return FaceModel.load(source)


def enroll(args) -> dict:
    from zoo.faces import FaceDatabase, FaceError

    db_path = Path(args.db)
    db = FaceDatabase.load(db_path) if db_path.exists() else None
    if db is not None and args.threshold is not None and args.threshold != db.threshold:
        raise FaceError(f"{db_path} already has the threshold {db.threshold}; a threshold is set when a database is "
                        "created (use another --db file)")
    model = _model(args, db)
    if db is None:
        db = FaceDatabase.create(model, args.threshold)
        db.path = db_path
    db.check_model(model)
    count = db.enroll(args.name, model.embed_files(args.images))
    db.save(db_path)
    return {"enrolled": args.name, "images": len(args.images), "embeddings": count, "db": str(db_path),
            "threshold": db.threshold}


def verify_cmd(args) -> dict:
    from zoo.faces import FaceDatabase, verify

    db = FaceDatabase.load(args.db)
    db._require_people()
    return {"image": args.image, **verify(_model(args, db), db, args.name, args.image)}


def identify_cmd(args) -> dict:
    from zoo.faces import FaceDatabase, identify

    db = FaceDatabase.load(args.db)
    db._require_people()
    return {"image": args.image, **identify(_model(args, db), db, args.image)}


def _say(command: str, r: dict) -> str:
    if command == "enroll":
        return (f"enrolled {r['enrolled']}: {r['images']} image(s), {r['embeddings']} embedding(s) in {r['db']} "
                f"(threshold {r['threshold']:.4f})")
    if command == "verify":
        verdict = "MATCH" if r["match"] else "NO MATCH"
        return f"{r['image']}: {verdict} for {r['name']} (distance {r['distance']:.4f}, threshold {r['threshold']:.4f})"
    who = r["name"] if r["recognized"] else "not recognized"
    return f"{r['image']}: {who} (nearest {r['nearest'][0][0]} at distance {r['distance']:.4f}, threshold {r['threshold']:.4f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-face", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", required=True, help="the face database (a JSON file of embeddings)")
    common.add_argument("--model", default=None, help="a checkpoint (.ckpt) of a Siamese run, or a published weight; "
                                                     "default: the database's own")
    common.add_argument("--json", action="store_true", help="print JSON")
    e = sub.add_parser("enroll", parents=[common], help="add a person's images to the database")
    e.add_argument("name")
    e.add_argument("images", nargs="+")
    e.add_argument("--threshold", type=float, default=None,
                   help="when creating the database: the distance threshold (default: the model's)")
    v = sub.add_parser("verify", parents=[common], help="is this image NAME? (exit 0: match, 1: no match)")
    v.add_argument("image")
    v.add_argument("--name", required=True)
    i = sub.add_parser("identify", parents=[common], help="who is in this image?")
    i.add_argument("image")
    args = p.parse_args(argv)
    from zoo.faces import FaceError

    run = {"enroll": enroll, "verify": verify_cmd, "identify": identify_cmd}[args.command]
    try:
        result = run(args)
    except (FaceError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"zoo-face: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else _say(args.command, result))
    if args.command == "verify" and not result["match"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
