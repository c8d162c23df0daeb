"""The command line as a new user meets it: help with defaults, no abbreviations, suggestions, hints.

Every check goes through the real parser (``descluster.cli.build_parser``) or the
real ``main``; the subprocess tests see exactly what a shell user sees.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from descluster import __version__
from descluster.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "descluster", *args], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def test_every_option_and_argument_of_every_command_has_help_with_its_default():
    parser = build_parser()
    commands = _commands(parser)
    assert set(commands) == {"extract", "run", "convert", "demo", "assign", "label", "simulate", "labels", "serve"}
    checked = 0
    for name, p in commands.items():
        assert p.allow_abbrev is False, name
        assert p.description, f"{name} has no description"
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and len(action.help) > 15, f"{what} has no help text"
            if action.option_strings:  # an option says its default, or that it is required
                assert "(default: " in action.help or "(required)" in action.help, what
                assert action.required == ("(required)" in action.help), what
            else:  # a positional argument says what it is and that it is required
                assert "required" in action.help, what
            checked += 1
    assert checked >= 30  # every option of run/demo (19 each with their own), extract and label
    assert parser.allow_abbrev is False
    assert "unlabelled images" in parser.description  # the tool, not the module docstring


def test_run_defaults_in_help_come_from_runconfig():
    from descluster.config import RunConfig

    d = RunConfig()
    run = _commands(build_parser())["run"]
    helps = {a.option_strings[0]: a.help for a in run._actions if a.option_strings}
    assert f"(default: {d.cluster.k_min})" in helps["--k-min"] and f"(default: {d.cluster.k_max})" in helps["--k-max"]
    assert f"(default: {d.seed})" in helps["--seed"]
    assert f"(default: {d.reduce.max_components})" in helps["--max-components"]
    assert f"(default: {d.embedding.method})" in helps["--embedding"]
    assert f"(default: {','.join(d.reduce.preprocessings)})" in helps["--preprocessing"]


def test_version():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"descluster {__version__}"


def test_abbreviated_option_is_refused_with_the_full_name(tmp_path):
    out = _cli("run", str(tmp_path), "--out", str(tmp_path / "o"), "--algorithm", "kmeans")
    assert out.returncode == 2
    assert "unrecognized arguments: --algorithm kmeans" in out.stderr
    assert "did you mean --algorithms?" in out.stderr
    assert out.stderr.startswith("usage: descluster run")  # the sub-command's usage, not the top level's
    assert "Traceback" not in out.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("typed, meant", [(["--kmax=5"], "--k-max"), (["--seeed", "3"], "--seed"),
                                          (["--no-outlier"], "--no-outliers")])
def test_mistyped_option_gets_the_nearest_one(typed, meant, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "case", "--out", "o", *typed])
    assert exc.value.code == 2
    assert f"did you mean {meant}?" in capsys.readouterr().err


def test_mistyped_command_and_choice_get_suggestions(capsys):
    with pytest.raises(SystemExit):
        main(["rnu", "case"])
    assert "did you mean run?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "case", "--out", "o", "--embedding", "tnse"])
    assert "did you mean tsne?" in capsys.readouterr().err


def test_unrelated_unknown_option_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        main(["run", "case", "--out", "o", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def _images(folder: Path, n: int = 3) -> Path:
    for i in range(n):
        (folder / "cars").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(folder / "cars" / f"{i}.png")
    return folder


def test_run_on_an_image_folder_suggests_extract(tmp_path):
    images = _images(tmp_path / "photos")
    out = _cli("run", str(images), "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert "holds 3 images but no descriptors/ folder" in out.stderr
    assert f"descluster extract {images} --out CASE" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_on_a_zip_says_it_is_a_file(tmp_path):
    z = tmp_path / "photos.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("cars/0.png", b"x")
    out = _cli("run", str(z), "--out", str(tmp_path / "o"))
    assert out.returncode == 2
    assert f"{z} is a file (a .zip), not a case folder" in out.stderr
    assert f"descluster extract {z} --out CASE" in out.stderr and f"--images {z}" in out.stderr
    assert "Traceback" not in out.stderr


def test_label_prints_the_path_it_wrote(tmp_path, capsys):
    pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "cluster": [0, 1, 1]}).to_csv(tmp_path / "clusters.csv",
                                                                                    index=False)
    pd.DataFrame({"cluster": [0, 1], "name": ["van", "car"]}).to_csv(tmp_path / "names.csv", index=False)
    assert main(["label", str(tmp_path), "--names", str(tmp_path / "names.csv")]) == 0
    out = capsys.readouterr().out
    assert str((tmp_path / "labels.csv").resolve()) in out and "3 rows" in out
    assert pd.read_csv(tmp_path / "labels.csv")["name"].tolist() == ["van", "car", "car"]
    target = tmp_path / "sub.csv"
    assert main(["label", str(tmp_path), "--names", str(tmp_path / "names.csv"), "--out", str(target)]) == 0
    assert str(target.resolve()) in capsys.readouterr().out and target.is_file()


def test_label_warns_about_clusters_left_unnamed(tmp_path, capsys):
    pd.DataFrame({"path": [f"{i}.jpg" for i in range(6)], "cluster": [0, 1, 1, 2, 3, 3]}).to_csv(
        tmp_path / "clusters.csv", index=False)
    pd.DataFrame({"cluster": [0, 2], "name": ["van", ""]}).to_csv(tmp_path / "names.csv", index=False)
    assert main(["label", str(tmp_path), "--names", str(tmp_path / "names.csv")]) == 0
    err = capsys.readouterr().err
    assert "warning: 5 of 6 images have an empty name: cluster(s) 1, 2, 3 have no row or an empty name" in err
    pd.DataFrame({"cluster": [0, 1, 2, 3], "name": ["a", "b", "c", "d"]}).to_csv(tmp_path / "names.csv", index=False)
    assert main(["label", str(tmp_path), "--names", str(tmp_path / "names.csv")]) == 0
    assert "warning" not in capsys.readouterr().err

    exported = "path,kind,kind_confidence,kind_source\n0.jpg,van,1.0,given\n"  # the session's export
    (tmp_path / "labels.csv").write_text(exported)
    assert main(["label", str(tmp_path), "--names", str(tmp_path / "names.csv")]) == 2
    assert "was not written by `descluster label`" in capsys.readouterr().err
    assert (tmp_path / "labels.csv").read_text() == exported
    assert main(["label", str(tmp_path), "--names", str(tmp_path / "names.csv"), "--out",
                 str(tmp_path / "names_labels.csv")]) == 0


@pytest.mark.parametrize("what", ["missing", "empty", "no-comparison"])
def test_serve_on_a_folder_that_is_not_a_results_folder_exits_2_before_listening(tmp_path, what):
    folder = tmp_path / "out"
    if what != "missing":
        folder.mkdir()
    if what == "no-comparison":
        (folder / "manifest.json").write_text("{}")
        (folder / "clusters.csv").write_text("path,cluster\na.jpg,0\n")
    r = subprocess.run([sys.executable, "-m", "descluster", "serve", str(folder), "--port", "1"],
                       capture_output=True, text=True, cwd=REPO, timeout=60,
                       env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "open: http" not in r.stdout  # it never listened
    line = {"missing": f"{folder}: no such results folder", "empty": f"{folder / 'manifest.json'} does not exist",
            "no-comparison": f"{folder / 'comparison.csv'} does not exist"}[what]
    assert r.stderr.strip().splitlines() == [next(s for s in r.stderr.splitlines() if line in s)]
    assert r.stderr.startswith("descluster: error: ")


@pytest.mark.parametrize("typed, option, field", [
    (["--k-min", "0"], "--k-min", "k_min=0"),
    (["--algorithms", "kmean"], "--algorithms", "algorithms=['kmean']"),
    (["--preprocessing", "foo"], "--preprocessing", "preprocessings=['foo']"),
])
def test_a_bad_option_value_names_the_option_typed(tmp_path, capsys, typed, option, field):
    assert main(["run", str(tmp_path / "case"), "--out", str(tmp_path / "o"), *typed]) == 2
    err = capsys.readouterr().err
    assert f"error: {option}: {field}" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_a_bad_config_value_is_refused_even_when_the_option_overrides_it(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('k_max = "ten"\n')
    assert main(["run", str(tmp_path / "case"), "--out", str(tmp_path / "o"), "--config", str(toml),
                 "--k-max", "5"]) == 2
    assert f"--config {toml}: k_max='ten' is invalid" in capsys.readouterr().err
    toml.write_text("k_max = 12\n")  # a valid file; the option's bad value is the option's fault
    assert main(["run", str(tmp_path / "case"), "--out", str(tmp_path / "o"), "--config", str(toml),
                 "--k-min", "0"]) == 2
    err = capsys.readouterr().err
    assert "--k-min: k_min=0 is invalid" in err and "--config" not in err


def test_every_command_is_listed_in_the_help_epilog_and_the_readme():
    from descluster.cli import EPILOG

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = list(sub.choices)
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Commands (stable interface)", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert len(commands) >= 9
    for name in commands:
        assert f"descluster {name} " in EPILOG, name
        assert f"descluster {name} " in block, name


def test_a_refused_run_leaves_no_empty_output_folder(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", str(tmp_path / "no-case"), "--out", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err and not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["run", str(tmp_path / "no-case"), "--out", str(kept)]) == 2
    assert kept.is_dir()  # a folder the user made is never removed


def test_embedding_umap_without_umap_learn_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    assert main(["run", str(tmp_path / "case"), "--out", str(tmp_path / "o"), "--embedding", "umap"]) == 2
    err = capsys.readouterr().err
    assert "--embedding umap: umap-learn is not installed; pip install \".[umap]\"" in err
