"""A labelled image set from disk: class folders, or a labels file beside the images.

Labels name ImageNet-1k classes the way people write them: the class index (`281`) or the class name
from the catalog's label list (`tabby`; case, `_` and spaces do not matter). A name the list holds
twice (`crane`) must be given as an index; anything else is refused with the accepted forms.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from deploylab.services.common.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
LABEL_FILES = ("labels.csv", "labels.tsv", "labels.txt")


class DatasetError(UserError):
    """The image set cannot be read as class folders or a labels file."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int  # ImageNet-1k class index


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", " ")


def class_index(label: str, labels: tuple[str, ...]) -> int:
    """The class index a label names: an integer 0..999 or a class name of the label list."""
    text = label.strip()
    if text.isdigit() and int(text) < len(labels):
        return int(text)
    matches = [i for i, name in enumerate(labels) if _normalise(name) == _normalise(text)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DatasetError(f"label {label!r} names classes {matches}: give the class index instead")
    raise DatasetError(
        f"label {label!r} is neither a class index 0..{len(labels) - 1} nor an ImageNet-1k class name "
        f"such as {labels[281]!r}"
    )


def read_dataset(root: Path, labels: tuple[str, ...]) -> list[LabelledImage]:
    """Every labelled image under `root`, sorted by path (the order never depends on the file system).

    A labels file (`labels.csv`/`.tsv`/`.txt`: `relative/path,label` per line) wins over class folders
    (`root/<label>/*.jpg`).
    """
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory of images")
    label_file = next((root / name for name in LABEL_FILES if (root / name).is_file()), None)
    items = _from_label_file(root, label_file, labels) if label_file else _from_folders(root, labels)
    if not items:
        raise DatasetError(
            f"no labelled images in {root}: expected class folders (<root>/<label>/*.jpg) or a "
            f"labels file ({', '.join(LABEL_FILES)}) with `path,label` lines"
        )
    return sorted(items, key=lambda item: item.path)


def _from_folders(root: Path, labels: tuple[str, ...]) -> list[LabelledImage]:
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        index = class_index(folder.name, labels)
        items += [
            LabelledImage(path, index)
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
    return items


def _from_label_file(root: Path, label_file: Path, labels: tuple[str, ...]) -> list[LabelledImage]:
    delimiter = "\t" if label_file.suffix == ".tsv" else ","
    items = []
    with label_file.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 2:
                raise DatasetError(f"{label_file}:{number}: expected `path{delimiter}label`, got {row!r}")
            path = (root / row[0].strip()).resolve()
            if not path.is_file():
                raise DatasetError(f"{label_file}:{number}: no image at {path}")
            items.append(LabelledImage(path, class_index(row[1], labels)))
    return items
