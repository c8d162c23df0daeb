"""Shared fixtures: a small slice of the built-in demo data, extracted once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tiny-vehicles"


def make_demo_slice(dest: Path, per_type: int) -> Path:
    """Copy the first ``per_type`` images of each vehicle type (and their labels) into ``dest``."""
    labels = pd.read_csv(DEMO / "labels.csv")
    picked = labels.groupby("vehicle_type", sort=True).head(per_type).reset_index(drop=True)
    for rel in picked["path"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO / rel, dest / rel)
    picked.to_csv(dest / "labels.csv", index=False)
    return dest


@pytest.fixture(scope="session")
def demo_slice_case(tmp_path_factory) -> Path:
    """A case extracted from 40 images per type (240 images) with all default backbones."""
    pytest.importorskip("torch", reason="descriptor extraction needs the [extract] extra")
    from descluster.extract import extract_case

    root = tmp_path_factory.mktemp("demo_slice")
    images = make_demo_slice(root / "images", per_type=40)
    case = root / "case"
    extract_case(images, case, progress=False)
    return case
