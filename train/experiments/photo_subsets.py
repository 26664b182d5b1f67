"""The photo-folder check's data (`make photo-check`): of each class folder of a photo collection,
the first N photos by name train and the next M test, as symlinks, so the figure in train/NOTES.md
and the README is one command on the same photos every time and none is copied.

    python -m train.experiments.photo_subsets ../shared/photos OUT --train 100 --test 200
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def subsets(
    photos: Path,
    out: Path,
    train: Annotated[int, typer.Option(min=1, help="Training photos a class.")] = 100,
    test: Annotated[int, typer.Option(min=1, help="Test photos a class.")] = 200,
) -> None:
    classes = sorted(p for p in photos.iterdir() if p.is_dir()) if photos.is_dir() else []
    if not classes:
        print(f"error: {photos}: no class folders", file=sys.stderr)
        raise typer.Exit(2)
    shutil.rmtree(out, ignore_errors=True)
    for folder in classes:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        if len(files) < train + test:
            print(f"error: {folder}: {len(files)} photos, under {train} + {test}", file=sys.stderr)
            raise typer.Exit(2)
        for part, chosen in (("train", files[:train]), ("test", files[train : train + test])):
            (out / part / folder.name).mkdir(parents=True)
            for file in chosen:
                (out / part / folder.name / file.name).symlink_to(file.resolve())
    print(f"{out}: {len(classes)} classes, {train} training and {test} test photos each")


if __name__ == "__main__":
    app()
