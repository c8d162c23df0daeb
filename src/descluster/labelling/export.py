"""Exports of a labelling session: labels.csv, Label Studio tasks JSON, one folder (or zip) per class.

- :func:`labels_table` / :func:`export_labels_csv`: ``path`` plus, per task,
  ``<task>`` (the final label, empty when none), ``<task>_confidence`` and
  ``<task>_source`` (``given``: shown and answered; ``group``: member of a named
  group that was not shown; ``identity``: from answered images of the same
  object; ``propagated``; ``none``).
- :func:`export_label_studio`: a Label Studio tasks file (a JSON list, one task
  per image, ``data.image`` the image URL) whose ``predictions`` carry the labels
  as pre-annotations, one ``choices`` result per task with its score (Label
  Studio documentation, "Import pre-annotated data into Label Studio":
  ``predictions[].result[]`` with ``from_name``, ``to_name``, ``type``,
  ``value.choices`` and a prediction ``score``); :func:`label_studio_config` is
  the matching labelling configuration (one ``<Choices>`` per task).
- :func:`export_image_folders`: ``DEST/<task>/<class>/<image>`` as symbolic
  links to the images (folder sources), or a zip archive holding copies (any
  source, also a zip). Every image path is normalised and resolved, and a file
  whose real location is outside the image root is refused.

Every file is written atomically (:mod:`descluster.io.atomic`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from .. import __version__
from ..errors import LabellingError, UnsafePathError
from ..io.atomic import atomic_path, write_csv, write_text
from ..io.images import normalise_case_path
from .names import LABEL_HEADER, csv_header

__all__ = ["labels_table", "export_labels_csv", "export_label_studio", "label_studio_config",
           "export_image_folders", "LABEL_STUDIO_PREFIX"]

#: Default image URL prefix: Label Studio's local-files storage route (``?d=`` + path under its document root).
LABEL_STUDIO_PREFIX = "/data/local-files/?d="


def _tasks(session, tasks) -> list[str]:
    names = [t["name"] for t in session.tasks()]
    if not names:
        raise LabellingError(f"the labelling session in {session.results.root} has no task yet, so nothing to "
                             "export: add one in `descluster serve` (or Session.add_task) and label first")
    if tasks is None:
        return names
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise LabellingError(f"unknown task(s) {unknown}; tasks are {names}")
    return tasks


def labels_table(session, tasks=None) -> pd.DataFrame:
    """One row per image: ``path`` and, per task, ``<task>``, ``<task>_confidence``, ``<task>_source``."""
    out = pd.DataFrame({"path": session.paths})
    for t in _tasks(session, tasks):
        lab = session.labels(t)
        out[t] = lab["label"].to_numpy()
        out[f"{t}_confidence"] = lab["confidence"].round(6).to_numpy()
        out[f"{t}_source"] = lab["source"].to_numpy()
    return out


def export_labels_csv(session, path: str | os.PathLike | None = None, tasks=None) -> Path:
    """Write :func:`labels_table` to ``path`` (default ``RESULTS/labels.csv``); returns the path.

    Raises
    ------
    LabellingError
        The session has no task, a task is unknown, or (``path`` not given) ``RESULTS/labels.csv`` holds
        the cluster names written by ``descluster label`` (columns ``path,cluster,name``), which an
        export would replace: pass ``path`` to write elsewhere.
    """
    table = labels_table(session, tasks)
    target = Path(path) if path is not None else session.results.root / "labels.csv"
    if path is None and csv_header(target) == LABEL_HEADER:
        raise LabellingError(f"{target} holds the cluster names written by `descluster label`; an export "
                             "would replace them: give another file with --csv FILE")
    write_csv(target, table)
    return target


def label_studio_config(session, tasks=None) -> str:
    """Label Studio labelling configuration (XML) matching :func:`export_label_studio`."""
    lines = ["<View>", '  <Image name="image" value="$image"/>']
    for t in _tasks(session, tasks):
        classes = session.state(t).classes
        lines.append(f"  <Header value={quoteattr(t)}/>")
        lines.append(f"  <Choices name={quoteattr(t)} toName=\"image\" choice=\"single\">")
        lines += [f"    <Choice value={quoteattr(c)}/>" for c in classes]
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def export_label_studio(session, path: str | os.PathLike, tasks=None, image_prefix: str = LABEL_STUDIO_PREFIX) -> Path:
    """Write a Label Studio tasks JSON with the labels as scored pre-annotations.

    Parameters
    ----------
    session : Session
    path : str or PathLike
        The JSON file; the labelling configuration is written beside it as ``<stem>.xml``.
    tasks : str or list of str, optional
        Default all tasks.
    image_prefix : str
        Prepended to the URL-quoted image path (default :data:`LABEL_STUDIO_PREFIX`).

    Returns
    -------
    Path of the JSON file.
    """
    names = _tasks(session, tasks)
    table = labels_table(session, names)
    cols = {t: (table[t].to_numpy(), table[f"{t}_confidence"].to_numpy(), table[f"{t}_source"].to_numpy())
            for t in names}
    records = []
    for i, image in enumerate(table["path"]):
        result, scores = [], []
        for t in names:
            label, score, source = cols[t][0][i], float(cols[t][1][i]), str(cols[t][2][i])
            if not isinstance(label, str) or not label:
                continue
            result.append({"id": f"{i + 1}-{len(result)}", "from_name": t, "to_name": "image", "type": "choices",
                           "value": {"choices": [label]}, "score": score, "meta": {"source": source}})
            scores.append(score)
        task = {"id": i + 1, "data": {"image": image_prefix + quote(normalise_case_path(image)), "path": image}}
        if result:
            task["predictions"] = [{"model_version": f"descluster {__version__}", "score": min(scores),
                                    "result": result}]
        records.append(task)
    target = Path(path)
    write_text(target, json.dumps(records, ensure_ascii=False, separators=(",", ":")) + "\n")
    write_text(target.with_suffix(".xml"), label_studio_config(session, names))
    return target


_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def _folder_name(text: str) -> str:
    """A file-system-safe folder name for a class or task (``/``, ``\\``, ``:`` ... become ``_``)."""
    name = _UNSAFE.sub("_", text).strip(" .") or "_"
    return name[:120]


def _flat_name(case_path: str) -> str:
    """Image file name that keeps its folders (``a/b/c.jpg`` -> ``a__b__c.jpg``): unique within a class."""
    return "__".join(_folder_name(p) for p in normalise_case_path(case_path).split("/"))


def _contained_file(root: Path, case_path: str) -> Path:
    """The real file of ``case_path`` under folder ``root``, refusing anything that resolves outside it."""
    key = normalise_case_path(case_path)
    real_root = root.resolve()
    for cand in (root / key, root / key.split("/", 1)[-1]):
        if cand.is_file():
            real = cand.resolve()
            if not real.is_relative_to(real_root):
                raise UnsafePathError(f"{case_path}: resolves to {real}, outside the image root {real_root}")
            return real
    raise LabellingError(f"{case_path}: not found under the image root {root}")


def export_image_folders(session, dest: str | os.PathLike, tasks=None, mode: str = "link",
                         min_confidence: float = 0.0) -> Path:
    """One folder per class: ``DEST/<task>/<class>/<image>``, as links or inside a zip.

    Parameters
    ----------
    session : Session
    dest : str or PathLike
        ``mode="link"``: a folder that must not exist yet (built under a temporary
        name, then renamed). ``mode="zip"``: the ``.zip`` file to write (stored,
        not deflated: images are compressed already).
    tasks : str or list of str, optional
    mode : {"link", "zip"}
        Links need the images in a folder; a zip works from a folder or a zip source.
    min_confidence : float
        Leave out images whose label confidence is below this.

    Returns
    -------
    Path of the folder or zip.

    Raises
    ------
    LabellingError
        Bad mode, ``dest`` exists (link mode), links from a zip source, a missing image.
    UnsafePathError
        An image path that resolves outside the image root.
    """
    if mode not in ("link", "zip"):
        raise LabellingError(f"mode={mode!r}: use 'link' or 'zip'")
    names = _tasks(session, tasks)
    table = labels_table(session, names)
    source = session.results.image_source()
    dest = Path(dest)
    if mode == "link":
        if source.is_zip:
            raise LabellingError(f"the images are in the zip {source.root}: links need a folder; use mode='zip'")
        if dest.exists():
            raise LabellingError(f"{dest} exists already: give a new folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for t in names:
                keep = (table[t] != "") & (table[f"{t}_confidence"] >= min_confidence)
                for path, label in zip(table.loc[keep, "path"], table.loc[keep, t]):
                    folder = tmp / _folder_name(t) / _folder_name(label)
                    folder.mkdir(parents=True, exist_ok=True)
                    os.symlink(_contained_file(source.root, path), folder / _flat_name(path))
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest
    with atomic_path(dest) as tmp_zip:
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_STORED) as zf:
            for t in names:
                keep = (table[t] != "") & (table[f"{t}_confidence"] >= min_confidence)
                for path, label in zip(table.loc[keep, "path"], table.loc[keep, t]):
                    arc = f"{_folder_name(t)}/{_folder_name(label)}/{_flat_name(path)}"
                    if source.is_zip:
                        data = source.read_bytes(path)
                    else:
                        data = _contained_file(source.root, path).read_bytes()
                    zf.writestr(arc, data)
    return dest
