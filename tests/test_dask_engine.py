"""The Dask engine gives the local engine's study (issue 18): a LocalCluster of 2 one-thread workers on a
small planted case, the same stages through :func:`descluster.pipeline.fit_study` with each engine."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask.array")
pytest.importorskip("distributed")

from scipy.stats import spearmanr  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

import descluster  # noqa: E402
from descluster.config import RunConfig  # noqa: E402
from descluster.engine import current_engine, make_engine, use_engine  # noqa: E402
from descluster.engine.dask import DaskEngine, NpyBlocks, block_moments, merge_moments  # noqa: E402
from descluster.errors import ParameterError  # noqa: E402
from descluster.pipeline import fit_study  # noqa: E402
from descluster.preprocess import GramMoments  # noqa: E402


def _planted(n=3000, k=6, seed=0, kinds=(("a", 48), ("b", 20))):
    """k planted Gaussian groups in a 6-D latent space seen through one ReLU map per kind, plus 1 % far rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 6)) * 10
    groups = rng.integers(0, k, n)
    latent = centres[groups] + rng.normal(size=(n, 6))
    far = rng.choice(n, n // 100, replace=False)
    latent[far] += rng.normal(size=(far.size, 6)) * 25
    out = {}
    for name, d in kinds:
        W = rng.normal(size=(6, d))
        out[name] = (np.maximum(latent @ W, 0) + 0.05 * rng.normal(size=(n, d))).astype(np.float32)
    out["a"][:, 5] = 3.0  # a constant column: scaled to exactly 0 by both engines
    return out, groups


@pytest.fixture(scope="module")
def engine():
    eng = DaskEngine(n_workers=2, threads_per_worker=1, processes=False, block_rows=1000)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def studies(engine):
    X, groups = _planted()
    case = descluster.Case.from_arrays(X, paths=[f"cam/{i:05d}.jpg" for i in range(len(groups))])
    config = RunConfig.from_dict({}, k_min=2, k_max=8, algorithms=["kmeans"], preprocessings=["standard", "l2"],
                                 embedding="pca", mixtures=False, detectors=["knn", "lof"],
                                 cluster={"params": {"kmeans": {"init_sample": 600}}})
    local = fit_study(case, config, progress=False)
    dask = fit_study(case, config, progress=False, engine=engine)
    return local, dask, groups


def test_same_spaces(studies):
    local, dask, _ = studies
    assert sorted(local.spaces) == sorted(dask.spaces)
    for key, sp in local.spaces.items():
        other = dask.spaces[key]
        assert other.n_components == sp.n_components, key
        np.testing.assert_allclose(other.explained_variance_ratio, sp.explained_variance_ratio, rtol=0, atol=1e-6)
        # same axes up to sign: the projections agree column by column
        np.testing.assert_allclose(np.abs(other.X), np.abs(sp.X), rtol=0, atol=1e-3 * float(np.abs(sp.X).max()))


def test_same_choice_and_labels(studies):
    local, dask, _ = studies
    assert dask.recommended == local.recommended
    for key, ch in local.choices.items():
        other = dask.choices[key]
        assert other.k == ch.k, key
        assert adjusted_rand_score(ch.labels, other.labels) >= 0.99, key
    lt, dt = local.study, dask.study
    for col in ("calinski_harabasz", "davies_bouldin", "inertia"):
        np.testing.assert_allclose(dt[col].to_numpy(), lt[col].to_numpy(), rtol=1e-3)
    assert (dt["silhouette_sample_size"].to_numpy() == lt["silhouette_sample_size"].to_numpy()).all()


def test_same_outlier_ranks(studies):
    local, dask, _ = studies
    lo, do = local.outliers, dask.outliers
    assert list(lo["path"]) == list(do["path"])
    scores = [c for c in lo.columns if c.startswith(("knn_", "lof_")) and lo[c].dtype.kind == "f"]
    assert scores, list(lo.columns)
    for col in scores + ["score", "rank"]:  # each detector's scores, and the consensus ranking made of them
        assert spearmanr(lo[col], do[col], nan_policy="omit").statistic >= 0.99, col
    assert "Dask workers" in dask.outlier_rules["neighbours:a"]
    assert dask.meta["engine"].startswith("Dask scheduler")


def test_block_moments_merge_to_the_streamed_covariance():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(1000, 7)) * [1, 10, 100, 1e3, 1, 1, 1] + 1e4).astype(np.float32)
    parts = [block_moments(X[s:s + 130], s) for s in range(0, 1000, 130)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merge_moments(merged, p)
    X64 = X.astype(np.float64)
    assert merged["n"] == 1000
    np.testing.assert_allclose(merged["mean"], X64.mean(axis=0), rtol=1e-7)  # float32 gemm per block
    cov = np.cov(X64, rowvar=False)
    np.testing.assert_allclose(merged["scatter"] / 999, cov, rtol=0, atol=1e-4 * np.abs(cov).max())
    streamed = GramMoments.from_matrix(X).covariance()  # the local engine's single stream, same precision
    np.testing.assert_allclose(merged["scatter"] / 999, streamed, rtol=0, atol=1e-4 * np.abs(cov).max())
    np.testing.assert_array_equal(merged["lo"], X.min(axis=0))


def test_non_finite_value_is_named(engine):
    X = np.ones((2000, 4), np.float32)
    X[1234, 2] = np.nan
    with pytest.raises(ParameterError, match="row 1234, column 2"):
        engine.raw_moments(X)


def test_npy_blocks_read_by_path(tmp_path, engine):
    X = np.arange(3000 * 3, dtype=np.float32).reshape(3000, 3)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    Xd = engine.array(mm)
    assert Xd.numblocks == (3, 1)
    assert "x.npy" in repr(NpyBlocks.of(mm).__reduce__())
    np.testing.assert_array_equal(engine.client.compute(Xd, sync=True), X)


def test_broadcast_index_answers_other_queries(engine):
    from descluster.outliers.neighbours import ExactIndex

    rng = np.random.default_rng(5)
    X = rng.normal(size=(900, 6)).astype(np.float32)
    Q = rng.normal(size=(50, 6)).astype(np.float32)
    idx = engine.neighbour_index("exact").fit(X, n_neighbors=4)
    np.testing.assert_array_equal(idx.search(Q, 4)[1], ExactIndex().fit(X).search(Q, 4)[1])


def test_engine_choice():
    assert current_engine().name == "local"
    with pytest.raises(ParameterError, match="valid: local, dask"):
        make_engine("spark")
    with pytest.raises(ParameterError, match="--workers"):
        make_engine("dask", n_workers=0)
    with pytest.raises(ParameterError, match="engine"):
        descluster.Study(engine="spark")
    with use_engine(make_engine("local")) as eng:
        assert current_engine() is eng


def test_cli_refuses_bad_engine_options(tmp_path, capsys):
    from descluster.cli import main

    X, _ = _planted(n=40, kinds=(("a", 8),))
    (tmp_path / "case" / "descriptors").mkdir(parents=True)
    np.save(tmp_path / "case" / "descriptors" / "a.npy", X["a"])
    (tmp_path / "case" / "images_paths.csv").write_text("paths\n" + "\n".join(f"x/{i}.jpg" for i in range(40)) + "\n")
    code = main(["run", str(tmp_path / "case"), "--out", str(tmp_path / "out"), "--engine", "dask", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--workers" in err and "Traceback" not in err


# --------------------------------------------------------------------------- Zarr cases and k-means|| (issue 18)

def _study_config(**params):
    return RunConfig.from_dict({}, k_min=2, k_max=8, algorithms=["kmeans"], preprocessings=["standard"],
                               embedding="pca", mixtures=False, outliers=False,
                               cluster={"params": {"kmeans": {"init_sample": 600, **params}}})


def test_zarr_case_gives_the_npy_case_study(tmp_path, engine):
    """The Dask engine on a converted (.zarr) case = the default engine on the .npy case."""
    pytest.importorskip("zarr")
    import shutil

    from descluster.case import load_case
    from descluster.io.zarr_store import ZarrDescriptor, convert_case

    X, _ = _planted(kinds=(("a", 48),))
    npy = tmp_path / "npy"
    (npy / "descriptors").mkdir(parents=True)
    np.save(npy / "descriptors" / "a.npy", X["a"])
    (npy / "images_paths.csv").write_text("paths\n" + "".join(f"cam/{i:05d}.jpg\n" for i in range(len(X["a"]))))
    shutil.copytree(npy, tmp_path / "zarr")
    convert_case(tmp_path / "zarr", chunk_rows=500, show_progress=False)
    zcase = load_case(tmp_path / "zarr")
    assert isinstance(zcase.descriptors["a"], ZarrDescriptor)
    Xd = engine.array(zcase.descriptors["a"])
    assert Xd.chunks[0] == (1000, 1000, 1000) and "from-zarr" in Xd.name  # read by the workers, by block
    local = fit_study(load_case(npy), _study_config(), progress=False)
    dask = fit_study(zcase, _study_config(), progress=False, engine=engine)
    for key, sp in local.spaces.items():
        assert dask.spaces[key].n_components == sp.n_components, key
        np.testing.assert_allclose(dask.spaces[key].explained_variance_ratio, sp.explained_variance_ratio,
                                   rtol=0, atol=1e-6)
    for key, ch in local.choices.items():
        assert dask.choices[key].k == ch.k, key
        assert adjusted_rand_score(ch.labels, dask.choices[key].labels) >= 0.99, key


def _blobs(n=3000, k=6, p=10, seed=1):
    """k unit-variance Gaussian blobs centred at 25 times the first k unit vectors (all 35 apart)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return (25.0 * np.eye(k, p)[y] + rng.normal(size=(n, p))).astype(np.float32), y


def test_kmeans_parallel_seeding_is_block_independent():
    from descluster.cluster.seeding import kmeans_parallel, local_blocks, row_uniforms

    X, _ = _blobs()
    a = kmeans_parallel(local_blocks(X, 300), lambda i: X[i], len(X), 6, random_state=3)
    b = kmeans_parallel(local_blocks(X, 1000), lambda i: X[i], len(X), 6, random_state=3)
    assert a["rounds"] == 5 and 6 <= a["n_candidates"] <= 1 + 5 * 2 * 6 * 2  # about l = 2k per round
    np.testing.assert_allclose(a["centres"], b["centres"], rtol=0, atol=1e-9)
    u = row_uniforms(3, 0, np.arange(100_000))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u[500:600], row_uniforms(3, 0, np.arange(500, 600)))


def test_kmeans_parallel_picks_k_and_matches_the_local_engine(engine):
    X, y = _blobs()
    case = descluster.Case.from_arrays({"a": X}, paths=[f"cam/{i:05d}.jpg" for i in range(len(y))])
    config = _study_config(init="k-means||")
    local = fit_study(case, config, progress=False)
    dask = fit_study(case, config, progress=False, engine=engine)
    for key, ch in local.choices.items():
        assert ch.k == 6 and dask.choices[key].k == 6, key
        assert adjusted_rand_score(y, ch.labels) >= 0.99, key
        assert adjusted_rand_score(ch.labels, dask.choices[key].labels) >= 0.99, key


def test_kmeans_init_is_validated():
    from descluster.cluster.algorithms import KMeansAdapter

    X, _ = _blobs(n=300)
    with pytest.raises(ParameterError, match="init"):
        KMeansAdapter(3, init="random").fit(X)


@pytest.mark.parametrize("name", ["gmm", "birch", "ward", "hdbscan"])
def test_sample_fitted_algorithms_extend_per_block(engine, name):
    """Fitted on the client's sample (the local adapter's own rows), extended to all rows on the workers:
    the local sweep's table and labels."""
    from descluster.cluster.algorithms import make_algorithm
    from descluster.cluster.sweep import sweep
    from descluster.engine.dask import DaskSweepResult

    X, _ = _planted(kinds=(("a", 12),))
    X = X["a"]
    adapter = make_algorithm(name, random_state=0, max_fit_rows=1000)
    ks = [3, 6]
    local = sweep(X, adapter, ks=ks, random_state=0, stability_rows=300, silhouette_sample=800)
    dask = engine.sweep(X, adapter, ks, 0, 300, 800)
    assert isinstance(dask, DaskSweepResult) and dask.labels.shape[0] == 0  # no n-row labels held per k
    lt, dt = local.table, dask.table
    assert list(dt["k"]) == list(lt["k"]) and list(dt["n_clusters"]) == list(lt["n_clusters"])
    for col in ("calinski_harabasz", "davies_bouldin", "inertia", "noise_share", "bic"):
        np.testing.assert_allclose(dt[col].to_numpy(float), lt[col].to_numpy(float), rtol=1e-9, equal_nan=True)
    for col in ("min_cluster_size", "max_cluster_size"):  # same partition: same sizes, exactly
        assert dt[col].tolist() == lt[col].tolist()
    for col in ("silhouette", "stability"):  # same rows, float sums in another order (5e-10 seen in a fresh venv)
        np.testing.assert_allclose(dt[col].to_numpy(float), lt[col].to_numpy(float), rtol=0, atol=1e-7)
    for k in lt["k"]:
        np.testing.assert_array_equal(dask.labels_for(int(k)), local.labels_for(int(k)))
        if name == "hdbscan":
            np.testing.assert_allclose(dask.centroids[k], local.centroids[k], rtol=1e-6)


# --------------------------------------------------------------------------- process workers (issue 18)
# A LocalCluster of 2 process workers started here: the CLI with --scheduler, the Python API's
# Study(engine="dask") and a worker killed mid-sweep, each against the local engine.

PROC_FIELDS = dict(k_min=2, k_max=6, algorithms=["kmeans"], preprocessings=["standard"], embedding="pca",
                   mixtures=False, outliers={"detectors": ["knn", "lof"], "neighbour_index": "flat"},
                   cluster={"params": {"kmeans": {"init_sample": 600}}})


@pytest.fixture(scope="module")
def proc_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def npy_case(tmp_path_factory):
    """A 5,000-row case folder of two kinds (two default-size blocks each) and the local engine's study of it."""
    from descluster.case import load_case

    root = tmp_path_factory.mktemp("proc") / "case"
    X, _ = _planted(n=5000, kinds=(("a", 24), ("b", 12)))
    (root / "descriptors").mkdir(parents=True)
    for name, values in X.items():
        np.save(root / "descriptors" / f"{name}.npy", values)
    (root / "images_paths.csv").write_text("paths\n" + "".join(f"cam/{i:05d}.jpg\n" for i in range(5000)))
    local = fit_study(load_case(root), RunConfig.from_dict({}, **PROC_FIELDS), progress=False)
    return root, local


def _same_study(local, recommended, comparison, clusters, outliers):
    """A Dask-engine study's outputs against the local engine's: same choice, k, partition and outlier ranking."""
    assert recommended == local.recommended
    for row in comparison.itertuples():
        key = f"{row.descriptor}/{row.preprocessing}/{row.algorithm}"
        assert int(row.k) == local.choices[key].k, key
    assert list(clusters["path"]) == local.paths
    assert adjusted_rand_score(local.choices[local.recommended].labels, clusters["cluster"]) >= 0.99
    lo = local.outliers
    assert list(outliers["path"]) == list(lo["path"])
    for col in ("knn_a", "lof_a", "knn_b", "lof_b", "score", "rank"):
        assert spearmanr(lo[col], outliers[col]).statistic >= 0.99, col


def test_cli_uses_the_given_scheduler(proc_cluster, npy_case, tmp_path):
    """`descluster run --scheduler ADDRESS` runs on that cluster (its process workers do the tasks and search the
    broadcast faiss index), keeps the reduced spaces in OUT/.cache/blocks, and gives the local engine's study."""
    import json

    import pandas as pd
    from distributed import Client

    from descluster.cli import main

    case_dir, local = npy_case
    (tmp_path / "run.toml").write_text('[outliers]\nneighbour_index = "flat"\ndetectors = ["knn", "lof"]\n'
                                       '[cluster.params.kmeans]\ninit_sample = 600\n')
    address = proc_cluster.scheduler_address
    with Client(address) as watcher:
        def transitions(dask_scheduler):
            return dask_scheduler.transition_counter

        before = watcher.run_on_scheduler(transitions)
        argv = ["run", str(case_dir), "--out", str(tmp_path / "out"), "--scheduler", address,
                "--config", str(tmp_path / "run.toml"), "--k-min", "2", "--k-max", "6", "--algorithms", "kmeans",
                "--preprocessing", "standard", "--embedding", "pca", "--no-mixtures", "--no-pixel-checks"]
        code = main(argv)
        ran = watcher.run_on_scheduler(transitions) - before
    assert code == 0
    assert ran > 200  # the study's tasks went through this scheduler
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"].startswith(f"Dask scheduler {address}: 2 workers")
    for kind in ("a", "b"):
        rule = manifest["outlier_rules"][f"neighbours:{kind}"]
        assert "faiss IndexFlatL2" in rule and "searched per block on 2 Dask workers" in rule, rule
    _same_study(local, manifest["recommended"], pd.read_csv(out / "comparison.csv"), pd.read_csv(out / "clusters.csv"),
                pd.read_csv(out / "outliers.csv"))
    clusters = (out / "clusters.csv").read_bytes()
    # the reduced spaces were written by the workers, not gathered: one .npy per space, the local projection
    blocks = sorted((out / ".cache" / "blocks").glob("reduce-*.npy"))
    assert len(blocks) == 2
    spaces = {sp.X.shape[1]: sp for sp in local.spaces.values()}
    assert len(spaces) == 2, "the two kinds should keep different component counts"
    for path in blocks:
        Z = np.load(path, mmap_mode="r")
        sp = spaces[Z.shape[1]]
        assert Z.shape == sp.X.shape and Z.dtype == np.float32
        np.testing.assert_allclose(np.abs(Z), np.abs(sp.X), rtol=0, atol=1e-3 * float(np.abs(sp.X).max()))
    # a rerun resumes from the cache; a space whose file was removed is reduced again, to the same rows
    kept = np.array(np.load(blocks[0]))
    blocks[0].unlink()
    assert main(argv) == 0
    np.testing.assert_array_equal(np.load(blocks[0]), kept)
    assert (out / "clusters.csv").read_bytes() == clusters
    assert json.loads((out / "manifest.json").read_text())["cache"]["computed"] == 1


def test_study_api_with_the_dask_engine(npy_case):
    """`Study(engine="dask").fit` starts its own LocalCluster, runs there and gives the local engine's study."""
    case_dir, local = npy_case
    res = descluster.Study(engine="dask", progress=False, **PROC_FIELDS).fit(case_dir)
    assert res.manifest["engine"].startswith("Dask scheduler")
    assert "Dask workers" in res.manifest["outlier_rules"]["neighbours:a"]
    _same_study(local, res.recommended, res.comparison, res.clusters, res.outliers)


def test_worker_killed_mid_sweep_gives_the_same_sweep(proc_cluster, tmp_path):
    """A block read that kills its own worker process (the first time it runs once armed, mid-sweep): the scheduler
    reruns the lost tasks, the nanny restarts the worker, and the sweep is the one without the kill."""
    from descluster.cluster.algorithms import KMeansAdapter

    X, y = _blobs(n=3000)
    np.save(tmp_path / "x.npy", X)
    armed, fired = tmp_path / "armed", tmp_path / "fired"

    def read_block(C):  # runs on a worker; only the first task to claim the armed marker dies
        import os
        import signal

        try:
            os.rename(armed, fired)
        except FileNotFoundError:
            return C
        os.kill(os.getpid(), signal.SIGKILL)

    ks = [3, 4, 5, 6]
    with DaskEngine(scheduler=proc_cluster.scheduler_address, block_rows=500) as eng:
        Xd = eng.array(np.load(tmp_path / "x.npy", mmap_mode="r")).map_blocks(read_block, dtype=np.float32)

        def run(kill_after=None):
            def progress(done, total, k):
                if done == kill_after:
                    armed.touch()
            res = eng.sweep(Xd, KMeansAdapter(random_state=0, init_sample=600), ks, 0, 300, 800, progress)
            return res, {k: res.labels_for(k) for k in ks}

        plain, plain_labels = run()
        workers = set(eng.client.scheduler_info()["workers"])
        killed, killed_labels = run(kill_after=1)  # armed after k = 3: the k = 4 fit loses a worker
        assert fired.exists() and not armed.exists()
        eng.client.wait_for_workers(2, timeout=60)
        assert set(eng.client.scheduler_info()["workers"]) != workers  # one worker is a restarted process
    cols = [c for c in plain.table.columns if c != "fit_seconds"]
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(killed.table[cols], plain.table[cols], check_exact=False, rtol=1e-12)
    for k in ks:
        np.testing.assert_array_equal(killed_labels[k], plain_labels[k])
    assert adjusted_rand_score(y, plain_labels[6]) >= 0.99


def test_minibatch_sweep_on_the_client_is_said(engine, caplog):
    """Mini-batch k-means is not distributed: the sweep runs on the client, as the local one, and the log says so."""
    import logging

    from descluster.cluster.algorithms import make_algorithm
    from descluster.cluster.sweep import sweep

    X, _ = _blobs(n=1500)
    adapter = make_algorithm("minibatch_kmeans", random_state=0)
    with caplog.at_level(logging.INFO, logger="descluster"):
        res = engine.sweep(X, adapter, [4, 6], 0, None, 500)
    assert any(r.levelno == logging.WARNING and "minibatch_kmeans on 1,500 rows runs on the client" in r.getMessage()
               for r in caplog.records)
    local = sweep(X, adapter, ks=[4, 6], random_state=0, stability_rows=None, silhouette_sample=500)
    np.testing.assert_allclose(res.table["inertia"].to_numpy(), local.table["inertia"].to_numpy(), rtol=1e-12)


def test_tsne_places_the_other_rows_per_block_on_the_workers(proc_cluster, tmp_path):
    """Above max_points, the rows t-SNE did not embed are placed on the process workers, block by block, read
    from the space's file: the map the local engine draws."""
    from descluster.embed import TSNEEmbedding

    X, y = _blobs(n=1500)
    np.save(tmp_path / "space.npy", X)
    space = np.load(tmp_path / "space.npy", mmap_mode="r")

    def tsne():
        return TSNEEmbedding(max_points=400, n_iter=60, early_exaggeration_iter=30, random_state=0, n_jobs=1)

    local = tsne()
    Y_local = local.fit_transform(space, y)
    with DaskEngine(scheduler=proc_cluster.scheduler_address, block_rows=500) as eng, use_engine(eng):
        dask = tsne()
        Y_dask = dask.fit_transform(space, y)
    assert "per block on the dask workers" in dask.description_ and "dask" not in local.description_
    np.testing.assert_array_equal(dask.sample_, local.sample_)
    np.testing.assert_allclose(Y_dask, Y_local, rtol=0, atol=1e-5 * float(np.abs(Y_local).max()))
