"""The Python API: the README example, Study().fit without files, save/load round trip, assign, the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import descluster
from descluster.cli import main
from descluster.errors import CaseError

README = Path(__file__).resolve().parents[1] / "README.md"


def _blobs(n=600, seed=0, kinds=(("a", 40), ("b", 24), ("c", 12)), k=5, shift=None, noise=1.0):
    """Latent Gaussian blobs seen through one random ReLU map per descriptor kind (fixed maps)."""
    maps = np.random.default_rng(99)
    W = {name: maps.normal(size=(6, d)) for name, d in kinds}
    centres = maps.normal(size=(k, 6)) * 5
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, k, n)
    latent = centres[groups] + noise * rng.normal(size=(n, 6))
    if shift is not None:
        latent = latent + shift
    return {name: np.maximum(latent @ W[name], 0) + 0.05 * rng.normal(size=(n, d)) for name, d in kinds}, groups


#: Every algorithm, each on a sample smaller than the case, so the sample-and-extend routes run too.
SMALL = {"kmeans": {"init_sample": 200}, "gmm": {"max_fit_rows": 300}, "birch": {"max_fit_rows": 300},
         "ward": {"max_fit_rows": 300}, "hdbscan": {"max_fit_rows": 300}}
FIELDS = dict(k_max=8, preprocessings=["standard", "l2"], embedding="pca", progress=False,
              cluster={"params": SMALL})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    X, groups = _blobs()
    case = descluster.Case.from_arrays(X, paths=[f"cam1/{i:04d}.jpg" for i in range(len(groups))],
                                       labels=pd.DataFrame({"group": groups}))
    cache = tmp_path_factory.mktemp("cache")
    return case, descluster.Study(**FIELDS).fit(case, cache_dir=cache)


def test_readme_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    section = section[: section.index("\n## ", 5)]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    assert (tmp_path / "demo-api-out" / "model" / "model.json").is_file()


def test_fit_from_arrays_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, groups = _blobs(n=240, kinds=(("a", 16), ("b", 8)))
    case = descluster.Case.from_arrays(X, paths=[f"x/{i}.jpg" for i in range(240)])
    result = descluster.Study(k_max=6, algorithms=["kmeans"], preprocessings=["standard"], embedding="pca",
                              outliers=False, progress=False).fit(case)
    assert list(tmp_path.iterdir()) == []
    assert result.clusters["path"].tolist() == case.paths
    assert result.comparison["recommended"].sum() == 1
    assert result.clusters_for("a")["cluster"].nunique() >= 2
    assert "descluster study" in result._repr_html_() and result.recommended in result._repr_html_()
    with pytest.raises(CaseError, match="'b' has 10 rows but 240 paths"):
        descluster.Case.from_arrays({"a": X["a"], "b": X["b"][:10]}, paths=case.paths)


def test_fitted_result_recovers_the_planted_groups(fitted):
    case, result = fitted
    comp = result.comparison
    assert comp.loc[comp["recommended"], "ari_group"].iloc[0] > 0.9  # external check only
    assert set(comp["algorithm"]) == set(descluster.RunConfig().cluster.algorithms)


def test_save_then_load_equals_the_saved_result_and_matches_the_cli(fitted, tmp_path):
    case, result = fitted
    out = result.save(tmp_path / "api")
    back = descluster.StudyResult.load(out)
    assert back == result
    assert back.recommended == result.recommended and back.recommendation == result.recommendation
    assert back.model.configurations.keys() == result.model.configurations.keys()
    # `descluster run` on the same case and parameters writes the same files and the same clusters
    folder = tmp_path / "case"
    (folder / "descriptors").mkdir(parents=True)
    for name, X in case.descriptors.items():
        np.save(folder / "descriptors" / f"{name}.npy", X)
    pd.DataFrame({"paths": case.paths}).to_csv(folder / "images_paths.csv", index=False)
    pd.DataFrame({"path": case.paths, "group": case.labels["group"]}).to_csv(folder / "labels.csv", index=False)
    config = tmp_path / "run.toml"
    config.write_text("[cluster.params.kmeans]\ninit_sample = 200\n[cluster.params.gmm]\nmax_fit_rows = 300\n"
                      "[cluster.params.birch]\nmax_fit_rows = 300\n[cluster.params.ward]\nmax_fit_rows = 300\n"
                      "[cluster.params.hdbscan]\nmax_fit_rows = 300\n")
    cli = tmp_path / "cli"
    assert main(["run", str(folder), "--out", str(cli), "--k-max", "8", "--preprocessing", "standard,l2",
                 "--embedding", "pca", "--config", str(config)]) == 0
    files = lambda d: sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if ".cache" not in p.parts)
    assert files(cli) == files(out)
    for name in ("clusters.csv", "clusters_a.csv", "outliers.csv", "model/arrays.npz"):
        assert (cli / name).read_bytes() == (out / name).read_bytes(), name
    cli_model = descluster.StudyResult.load(cli).model  # same model; only the inputs' fingerprints differ
    assert cli_model.to_state()[1].keys() == result.model.to_state()[1].keys()
    assert [sid.fingerprint for sid, _ in cli_model.spaces.values()] != [
        sid.fingerprint for sid, _ in result.model.spaces.values()]  # file digests vs array digests


def test_assign_reproduces_the_study_labels(fitted):
    case, result = fitted
    run = result.run
    assigned = result.assign(case).table
    assert assigned["path"].tolist() == case.paths
    np.testing.assert_array_equal(assigned["cluster"], run.choices[run.recommended].labels)
    for d, key in run.per_descriptor.items():
        np.testing.assert_array_equal(assigned[f"cluster_{d}"], run.choices[key].labels)
    # every configuration's predictor on the study's own rows (what a saved model would apply)
    for key, choice in run.choices.items():
        if choice.predictor is None:
            continue
        labels = choice.predictor.predict(run.spaces[choice.space.key].X)
        agree = np.mean(labels == choice.labels)
        if choice.algorithm == "kmeans":
            assert agree == 1.0, key
        assert agree >= 0.99, (key, agree)
    assert assigned["confidence"].between(0, 1).all()
    assert assigned["flagged"].mean() < 0.05 and assigned["far"].mean() < 0.05
    # the study's own images are as far as the study said its own images are: the expected share is measured
    summary = result.assign(case).drift.summary
    assert summary["far_share"] == pytest.approx(summary["expected_far_share"], abs=1e-6)
    # the same descriptor clauses as the study: with no ImageNet summary, no group and no pixel flag in this case,
    # assigning the study's own rows flags what the study's descriptor clause flagged, give or take the reference
    # sample the scores of new images are measured against
    study = run.outliers.set_index("path").loc[case.paths]
    same = (assigned["flagged"].to_numpy() == study["flagged"].to_numpy()).mean()
    assert same >= 0.98 and "flag rule" in result.model.rule_text()


def test_assign_new_images_finds_a_new_group_and_refuses_other_descriptors(fitted, tmp_path):
    case, result = fitted
    same, _ = _blobs(n=300, seed=5)
    # a dense group far from every cluster in direction as well as in scale, so that l2 scaling, which the
    # study may choose, cannot hide it (a shift along (1, ..., 1) only rescales the ReLU features)
    odd, _ = _blobs(n=40, seed=6, k=1, shift=np.array([-30.0, -30, 30, 30, -30, 30]), noise=0.3)
    X = {name: np.vstack([same[name], odd[name]]) for name in same}
    new = descluster.Case.from_arrays(X, paths=[f"cam2/{i:04d}.jpg" for i in range(340)])
    model = descluster.FittedModel.load(result.save(tmp_path / "out", report=False) / "model")
    a = model.assign(new)
    t = a.table
    assert t["far"].iloc[300:].all() and t["far"].iloc[:300].mean() < 0.05
    assert a.drift.summary["new_groups"] == 1 and (t["new_group"].iloc[:300] == -1).all()
    assert (t["new_group"].iloc[300:] == 0).mean() >= 0.9 and a.drift.groups["size"].iloc[0] >= 36
    # the far rows are reported far in at least two kinds by name, and the flag rule flags them; the
    # study's own kind of rows are rarely flagged
    space = result.recommended.split("/")[1]
    assert t["reason"].iloc[300:].str.contains(f"far from the study's images in a/{space}, b/{space}").all()
    assert (t["n_flags"].iloc[300:] >= 2).all() and t["flagged"].iloc[300:].all()
    assert t["flagged"].iloc[:300].mean() < 0.05
    # the isolation forest travels with the model and scores the far rows as easier to isolate
    iso = [c for c in t.columns if c.startswith("iforest_")]
    assert len(iso) == 3 and all(t[c].iloc[300:].mean() > t[c].iloc[:300].mean() for c in iso)
    assert all(ref.forest is not None for ref in model.outliers.values())
    assert a.drift.shares["new_count"].sum() == 340 and a.drift.summary["total_variation"] > 0
    a.save(tmp_path / "new")
    assert pd.read_csv(tmp_path / "new" / "assignments.csv")["path"].tolist() == new.paths
    with pytest.raises(CaseError, match="no descriptor 'c'"):
        model.assign(descluster.Case.from_arrays({"a": X["a"], "b": X["b"]}, paths=new.paths))
    with pytest.raises(CaseError, match="'b' has 7 features"):
        model.assign(descluster.Case.from_arrays({**X, "b": X["b"][:, :7]}, paths=new.paths))


def test_cli_assign_writes_assignments_in_input_order(fitted, tmp_path, capsys):
    case, result = fitted
    out = result.save(tmp_path / "out", report=False)
    new, _ = _blobs(n=120, seed=7)
    folder = tmp_path / "new"
    (folder / "descriptors").mkdir(parents=True)
    for name, X in new.items():
        np.save(folder / "descriptors" / f"{name}.npy", X.astype(np.float32))
    paths = [f"cam3\\{i:04d}.jpg" for i in range(120)][::-1]
    pd.DataFrame({"paths": paths}).to_csv(folder / "images_paths.csv", index=False)
    assert main(["assign", str(folder), "--model", str(out), "--out", str(tmp_path / "a")]) == 0
    table = pd.read_csv(tmp_path / "a" / "assignments.csv")
    assert table["path"].tolist() == paths
    assert {"cluster", "label", "confidence", "flagged", "reason", "far"} <= set(table.columns)
    assert (tmp_path / "a" / "drift.json").is_file() and "assigned 120 images" in capsys.readouterr().out
    assert main(["assign", str(folder), "--model", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    assert "no fitted model" in capsys.readouterr().err
