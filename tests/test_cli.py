"""The command line: clustering never needs torch; bad input exits 2 with a message naming the file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from descluster.cli import main

STUDY_MODULES = ["descluster.cli", "descluster.case", "descluster.pipeline", "descluster.preprocess",
                 "descluster.cluster.sweep", "descluster.metrics", "descluster.recommend", "descluster.embed",
                 "descluster.outliers.consensus", "descluster.outliers.quality", "descluster.interpret",
                 "descluster.report.build", "descluster.labelling"]


def test_study_modules_do_not_import_torch():
    code = "import sys\n" + "".join(f"import {m}\n" for m in STUDY_MODULES) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_row_mismatch_exits_2_and_names_both_files(tmp_path, capsys):
    (tmp_path / "descriptors").mkdir()
    np.save(tmp_path / "descriptors" / "a.npy", np.ones((98, 4), np.float32))
    pd.DataFrame({"paths": [f"x\\{i}.jpg" for i in range(100)]}).to_csv(tmp_path / "images_paths.csv", index=False)
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "a.npy" in err and "images_paths.csv" in err and "98" in err and "100" in err
    assert not (tmp_path / "out" / "clusters.csv").exists()


def test_bad_parameter_exits_2_and_names_it(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "o"), "--k-min", "1"]) == 2
    assert "k_min" in capsys.readouterr().err
