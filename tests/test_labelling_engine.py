"""The labelling engine: decisions log, replay, undo, classes, splits, propagation, identities, exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from descluster.errors import LabellingError, UnsafePathError
from descluster.labelling import Session
from descluster.labelling.export import (export_image_folders, export_label_studio, export_labels_csv,
                                         labels_table)
from descluster.labelling.propagate import PROPAGATIONS, GraphLabelSpreading, choose_space, graph_operator
from descluster.labelling.questions import split_group, systematic_pps
from descluster.labelling.spaces import KnnGraph
from descluster.labelling.state import JUNK

N_ID, PER, KINDS = 60, 4, 4  # 60 objects x 4 images, 4 well-separated kinds


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real results folder: `run_study` on a small case whose paths encode object identities."""
    from descluster.case import load_case
    from descluster.config import RunConfig
    from descluster.pipeline import run_study

    root = tmp_path_factory.mktemp("lab")
    case = root / "case"
    (case / "descriptors").mkdir(parents=True)
    rng = np.random.default_rng(0)
    kind = np.repeat(np.arange(N_ID) % KINDS, PER)
    centres = rng.normal(size=(KINDS, 8)) * 6
    A = (centres[kind] + rng.normal(size=(kind.size, 8))).astype(np.float32)
    B = np.hstack([A[:, :2] * 0.3, rng.normal(size=(kind.size, 6))]).astype(np.float32)
    np.save(case / "descriptors" / "a.npy", A)
    np.save(case / "descriptors" / "b.npy", B)
    paths = [f"part/{i // PER:03d}/{i % PER}.png" for i in range(kind.size)]
    images = case / "images"
    for p in paths:
        (images / p).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (int(40 * kind[paths.index(p)]), 0, 0)).save(images / p)
    pd.DataFrame({"paths": paths}).to_csv(case / "images_paths.csv", index=False)
    truth = pd.DataFrame({"path": paths, "kind": [f"k{k}" for k in kind]})
    truth.to_csv(root / "truth.csv", index=False)
    out = root / "out"
    config = RunConfig.from_dict(dict(algorithms=("kmeans",), k_min=2, k_max=6, preprocessings=("standard", "l2"),
                       outliers=False, pixel_checks=False, embedding="pca"))
    import descluster.report.build

    with pytest.MonkeyPatch.context() as mp:  # the engine reads no report: skip building it
        mp.setattr(descluster.report.build, "build_report", lambda *a, **k: None)
        run_study(load_case(case, images=images), out, config, progress=False)
    return out, truth


@pytest.fixture
def session(results, tmp_path):
    s = Session(results[0], db=tmp_path / "labels.sqlite")
    yield s
    s.close()


def _answer_by_truth(s, truth, q, task="kind"):
    t = truth["kind"].to_numpy()[q.shown]
    values, counts = np.unique(t, return_counts=True)
    name = values[counts.argmax()]
    if counts.max() < 0.8 * len(t):
        return s.answer(q.id, split=True)
    for c in set(t):
        if c not in s.state(task).classes:
            s.add_class(task, c)
    return s.answer(q.id, label=name, marks={int(r): c for r, c in zip(q.shown, t) if c != name})


def test_replay_of_the_log_rebuilds_the_identical_state(results, session, tmp_path):
    out, truth = results
    session.add_task("kind", ["k0", "k1"])
    session.add_task("other")
    for _ in range(6):
        _answer_by_truth(session, truth, session.next_question("kind"))
    q = session.next_question("kind")
    session.skip(q.id)
    session.undo("kind")
    _answer_by_truth(session, truth, session.next_question("kind"))
    q = session.next_question("kind")
    json.dumps(q.to_dict())  # the app ships questions and progress as plain JSON
    json.dumps(session.progress("kind"))
    assert len(q.shown) <= 64 and set(q.shown) <= set(q.rows)
    live = {t: st.snapshot() for t, st in session._tasks.items()}
    live_labels = session.labels("kind")
    replayed = {t: st.snapshot() for t, st in session.replay().items()}
    assert replayed == live
    again = Session(out, db=tmp_path / "labels.sqlite")  # a second process reading the same file
    assert {t: st.snapshot() for t, st in again._tasks.items()} == live
    pd.testing.assert_frame_equal(again.labels("kind"), live_labels)
    assert again.next_question("kind").id == session.next_question("kind").id  # the open question is shared
    again.close()


def test_undo_restores_the_state_before_the_answer(results, session):
    _, truth = results
    session.add_task("kind", ["k0", "k1", "k2", "k3"])
    _answer_by_truth(session, truth, session.next_question("kind"))
    before = session.state("kind").snapshot()
    q = session.next_question("kind")
    res = _answer_by_truth(session, truth, q)
    assert session.state("kind").n_decisions == before["n_decisions"] + res["decisions"]
    undone = session.undo("kind")
    assert undone["entry"] == res["entry"]
    after = session.state("kind").snapshot()
    for key in ("label", "source", "n_decisions", "pending", "samples", "classes", "asked_clusters"):
        assert after[key] == before[key], key
    log = session.decisions("kind")
    assert log["undone"].sum() == 1 and (log["kind"] == "undo").sum() == 1  # the log only grows
    with pytest.raises(LabellingError, match="answered already|superseded|answered"):
        session.answer(q.id, label="k0")


def test_a_class_added_mid_session(results, session, tmp_path):
    _, truth = results
    session.add_task("kind", ["k0"])
    q = session.next_question("kind")
    with pytest.raises(LabellingError, match="no class 'k9'"):
        session.answer(q.id, label="k9")
    assert session.add_class("kind", "k9") == ["k0", "k9"]
    session.answer(q.id, label="k9", marks={q.shown[0]: "k0"})
    lab = session.labels("kind")
    assert set(lab.loc[q.shown[1:], "label"]) == {"k9"} and lab.at[q.shown[0], "label"] == "k0"
    assert session.prediction("kind").proba.shape == (len(lab), 2)
    table = pd.read_csv(export_labels_csv(session, tmp_path / "labels.csv"), keep_default_na=False)
    assert list(table.columns) == ["path", "kind", "kind_confidence", "kind_source"]
    assert set(table["kind"]) <= {"k0", "k9"} and (table.loc[q.shown, "kind_source"] == "given").all()


def test_split_returns_sub_groups_that_partition_the_group(results, session):
    session.add_task("kind", ["k0", "k1", "k2", "k3"])
    X = session.results.space(session.results.recommended)
    rows = np.arange(0, 240, 4)[:64]
    parts = split_group(np.asarray(X[rows]))
    assert len(parts) >= 2 and all(len(p) for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(rows.size))
    q = session.ask_group("kind", rows.tolist())
    res = session.answer(q.id, split=True)
    assert res["decisions"] == 1 and res["subgroups"] >= 2
    pending = session.state("kind").pending
    members = sorted(r for g in pending for r in g["rows"])
    assert members == sorted(rows.tolist())  # disjoint and complete
    nxt = session.next_question("kind")
    assert nxt.kind == "subgroup" and nxt.rows == pending[0]["rows"]
    session.answer(nxt.id, junk=True)
    assert JUNK in session.state("kind").classes
    assert (session.labels("kind").loc[nxt.rows, "label"] == JUNK).all()


def test_a_sub_group_split_again_goes_back_to_review_and_replays(results, session, tmp_path):
    from descluster.labelling.questions import DefaultPolicy

    session.add_task("kind", ["k0", "k1", "k2", "k3"])
    q = session.ask_group("kind", list(range(0, 240, 3))[:64])
    assert session.answer(q.id, split=True)["subgroups"] >= 2
    sub = session.next_question("kind")
    assert sub.kind == "subgroup" and sub.meta["depth"] == 1
    waiting = len(session.state("kind").pending)
    res = session.answer(sub.id, split=True)  # the default split_depth is 1: no sub-sub-groups
    assert res["decisions"] == 1 and res["subgroups"] == 0
    st = session.state("kind")
    assert len(st.pending) == waiting - 1 and not st.labelled[sub.rows].any()
    assert st.released[sub.rows].all() and st.released.sum() == len(sub.rows)
    with Session(results[0], db=session.db_path) as again:  # replay: the same queue
        assert again.state("kind").pending == st.pending
        assert np.array_equal(again.state("kind").released, st.released)
    # the same images asked together again and split twice more: one by one (no endless split-release)
    back = session.ask_group("kind", sub.rows)
    session.answer(back.id, split=True)
    part = session.next_question("kind")
    while set(part.rows) - set(sub.rows):  # sub-groups queued earlier come first: answer them
        _answer_by_truth(session, results[1], part)
        part = session.next_question("kind")
    assert len(part.rows) >= 2 and part.meta["depth"] == 1
    assert session.answer(part.id, split=True)["subgroups"] == len(part.rows)
    assert [len(g["rows"]) for g in session.state("kind").pending[-len(part.rows):]] == [1] * len(part.rows)
    deeper = Session(results[0], db=tmp_path / "deep.sqlite", policy=DefaultPolicy(split_depth=2))
    deeper.add_task("kind", ["k0", "k1", "k2", "k3"])
    q = deeper.ask_group("kind", list(range(0, 240, 3))[:64])
    deeper.answer(q.id, split=True)
    sub = deeper.next_question("kind")
    if len(sub.rows) >= 2:
        assert deeper.answer(sub.id, split=True)["subgroups"] >= 2
        assert {g["depth"] for g in deeper.state("kind").pending} == {1, 2}
    deeper.close()
    with pytest.raises(Exception, match="split_depth"):
        DefaultPolicy(split_depth=-1).split(q, np.zeros((4, 2), np.float32))


def test_no_spot_check_of_a_class_a_uniform_batch_would_split():
    """A spot check of a class expected 60 % right would be answered "split" and measure nothing."""
    from descluster.labelling.estimate import Calibration
    from descluster.labelling.questions import DefaultPolicy, PolicyContext, pure_enough, tilt
    from descluster.labelling.state import TaskState

    n = 400
    st = TaskState("t", n, ["a", "b"])
    st.label[:4], st.source[:4] = [0, 0, 1, 1], 1
    pred = np.where(np.arange(n) < 300, 0, 1).astype(np.int32)  # 'a' is the larger class: checked first
    spread = np.random.default_rng(0).uniform(-0.4, 0.4, n)  # tilting towards the likelier-right can help
    for c_a, spot_expected in ((0.6, False), (0.99, True)):
        conf = np.where(pred == 0, np.clip(c_a + spread, 0, 1) if c_a < 0.9 else c_a, 0.99).astype(np.float32)
        assert (tilt(conf[pred == 0], pure_enough(64)) == 0.0) is spot_expected
        ctx = PolicyContext(state=st, proba=None, space="s", X=np.zeros((n, 2), np.float32), clusters=None,
                            identities=None, conflicts=[], rng=np.random.default_rng(0), cluster_text={},
                            pred=pred, conf=conf, calibration=Calibration(st, "s"), cores=None)
        q = DefaultPolicy().next(ctx)
        assert (q.kind, q.proposed) == ("spot" if spot_expected else "review", "a"), (c_a, q.kind, q.reason)
        assert spot_expected or "P(right)^" in q.reason  # the review of 'a' is tilted towards likelier-right


def test_balanced_class_weights_undo_the_prior_of_a_lopsided_labelled_set():
    """Two overlapping classes of equal size, labelled 60:6: unweighted, the boundary moves into the rare
    class; balanced weights (scikit-learn's n / (C n_c)) put it back near the middle."""
    from descluster.errors import ParameterError
    from descluster.labelling.propagate import LogisticPropagation

    rng = np.random.default_rng(5)
    truth = np.repeat([0, 1], 500)
    X = (rng.normal(size=(1000, 2)) + np.c_[truth * 2.0, np.zeros(1000)]).astype(np.float32)
    y = np.full(1000, -1)
    y[rng.choice(500, 60, replace=False)] = 0
    y[500 + rng.choice(500, 6, replace=False)] = 1
    plain = LogisticPropagation(class_weight=None).fit(X, y, n_classes=2)
    balanced = LogisticPropagation().fit(X, y, n_classes=2)
    share_plain, share_bal = (plain.transduction_ == 1).mean(), (balanced.transduction_ == 1).mean()
    assert share_plain < 0.35 and 0.4 < share_bal < 0.6, (share_plain, share_bal)
    assert (balanced.transduction_ == truth).mean() > (plain.transduction_ == truth).mean()
    with pytest.raises(ParameterError, match="class_weight"):
        LogisticPropagation(class_weight="sometimes").fit(X, y, n_classes=2)


def _two_blobs():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (60, 5)), rng.normal(25, 1, (60, 5))]).astype(np.float32)
    y = np.full(120, -1)
    y[3], y[100] = 0, 1
    truth = np.repeat([0, 1], 60)
    from descluster.outliers.neighbours import knn_search

    D, I = knn_search(X, 7, progress=False)
    return X, y, truth, KnnGraph(I.astype(np.int32), D, "exact")


@pytest.mark.parametrize("name", list(PROPAGATIONS))
def test_propagation_labels_two_separated_blobs_from_one_point_each(name):
    X, y, truth, graph = _two_blobs()
    prop = PROPAGATIONS[name]().fit(X, y, graph=graph, n_classes=2)
    assert np.array_equal(prop.transduction_, truth)
    assert prop.proba_.shape == (120, 2) and np.all(prop.confidence_ > 0.5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_label_spreading_matches_scikit_learn_on_the_same_graph():
    from sklearn.semi_supervised import LabelSpreading

    X, y, truth, graph = _two_blobs()
    S = graph_operator(graph, 120, order=np.random.default_rng(0).permutation(120)).matrix_
    W = (S > 0).astype(np.float64)  # the symmetric connectivity S was normalised from
    ref = LabelSpreading(kernel=lambda a, b: W, alpha=0.2, max_iter=30, tol=0.0).fit(np.arange(120.0)[:, None], y)
    ours = GraphLabelSpreading(alpha=0.2, max_iter=30, tol=0.0).fit(None, y, graph=graph, n_classes=2)
    np.testing.assert_allclose(ours.proba_, ref.label_distributions_, atol=1e-5)


def test_space_choice_prefers_the_space_whose_neighbours_agree():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 40)
    good = rng.normal(size=(120, 4)) + np.eye(3, 4)[y] * 8
    noise = rng.normal(size=(120, 4))
    rows = np.arange(0, 120, 2)
    choice = choose_space({"noise": noise, "good": good}, rows, y[rows], current="noise")
    assert choice["key"] == "good" and choice["scores"]["good"] > 0.9 > choice["scores"]["noise"] + 0.3
    assert "good" in choice["reason"]


def test_systematic_pps_draws_m_units_with_the_stated_probabilities():
    rng = np.random.default_rng(3)
    w = np.array([10.0, 1, 1, 1, 1, 2, 2, 2])
    counts = np.zeros(w.size)
    for _ in range(4000):
        take, pi = systematic_pps(w, 3, rng)
        assert take.size == 3 and np.unique(take).size == 3
        counts[take] += 1
    assert pi[0] == 1.0 and np.isclose(pi.sum(), 3.0)
    np.testing.assert_allclose(counts / 4000, pi, atol=0.03)


def test_identity_spreading_and_conflicts(results, session):
    session.add_task("kind", ["k0", "k1", "k2", "k3"], identity=True)
    ids = session.results.identities
    first = np.flatnonzero(ids == ids[0])
    q = session.ask_group("kind", [int(first[0])])
    session.answer(q.id, label="k1")
    lab = session.labels("kind")
    assert (lab.loc[first[1:], "label"] == "k1").all() and (lab.loc[first[1:], "source"] == "identity").all()
    q = session.ask_group("kind", [int(first[1])])
    session.answer(q.id, label="k2")  # the same object answered differently: a conflict
    nxt = session.next_question("kind")
    assert nxt.kind == "identity" and sorted(nxt.rows) == sorted(first.tolist())
    session.answer(nxt.id, label="k2")
    assert session.next_question("kind").kind != "identity"


def test_group_naming_applies_to_members_not_shown(results, session):
    session.add_task("kind", ["k0", "k1"])
    rows = list(range(100, 140))
    q = session.ask_group("kind", rows, shown=rows[:8])
    session.answer(q.id, label="k1", marks={rows[0]: "k0"})
    lab = session.labels("kind")
    assert (lab.loc[rows[8:], "source"] == "group").all() and (lab.loc[rows[8:], "label"] == "k1").all()
    assert np.allclose(lab.loc[rows[8:], "confidence"], 7 / 8)
    assert lab.at[rows[0], "label"] == "k0" and lab.at[rows[0], "source"] == "given"


def test_answer_errors_name_the_problem(results, session):
    session.add_task("kind", ["k0"])
    with pytest.raises(LabellingError, match="exists already"):
        session.add_task("kind")
    with pytest.raises(LabellingError, match="no task 'nope'"):
        session.next_question("nope")
    q = session.next_question("kind")
    with pytest.raises(LabellingError, match="exactly one"):
        session.answer(q.id, label="k0", split=True)
    with pytest.raises(LabellingError, match="not shown"):
        session.answer(q.id, label="k0", marks={10**6: "k0"})
    session.answer(q.id, label="k0")
    with pytest.raises(LabellingError, match="answered already"):
        session.answer(q.id, label="k0")
    from descluster.labelling.store import DecisionLog

    DecisionLog(session.db_path + ".other", fingerprint={"n_samples": 3, "paths_sha256": "x"}).close()
    with pytest.raises(LabellingError, match="belongs to other images"):
        Session(results[0], db=session.db_path + ".other")


def test_a_killed_process_loses_no_answered_decision(results, tmp_path):
    out, _ = results
    db = tmp_path / "kill.sqlite"
    code = (f"import os, signal\nfrom descluster.labelling import Session\n"
            f"s = Session({str(out)!r}, db={str(db)!r})\ns.add_task('kind', ['k0'])\n"
            f"q = s.next_question('kind')\ns.answer(q.id, label='k0')\nprint(q.id, flush=True)\n"
            f"os.kill(os.getpid(), signal.SIGKILL)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == -9
    qid = proc.stdout.split()[0]
    s = Session(out, db=db)
    log = s.decisions("kind")
    answered = [json.loads(p)["question"]["id"] for p in log.loc[log["kind"] == "answer", "payload"]]
    assert answered == [qid] and s.state("kind").n_decisions == 1
    s.close()


def test_exports_label_studio_and_image_folders(results, session, tmp_path):
    out, truth = results
    session.add_task("kind", ["k0", "k1", "k2", "k3"])
    for _ in range(3):
        _answer_by_truth(session, truth, session.next_question("kind"))
    table = labels_table(session)
    ls = json.loads(export_label_studio(session, tmp_path / "ls.json").read_text())
    assert len(ls) == len(table) and (tmp_path / "ls.xml").read_text().count("<Choice ") == 4
    for task, (_, row) in zip(ls, table.iterrows()):
        pred = task["predictions"][0]["result"][0]
        assert pred["value"]["choices"] == [row["kind"]] and pred["from_name"] == "kind"
        assert np.isclose(pred["score"], row["kind_confidence"]) and task["data"]["path"] == row["path"]
    dest = export_image_folders(session, tmp_path / "folders")
    files = sorted(p for p in dest.rglob("*.png"))
    assert len(files) == len(table)
    for f in files:
        assert f.is_symlink() and f.parent.name == table.set_index(table["path"].str.replace("/", "__"))\
            .loc[f.name, "kind"]
    zpath = export_image_folders(session, tmp_path / "classes.zip", mode="zip")
    import zipfile

    with zipfile.ZipFile(zpath) as zf:
        assert len(zf.namelist()) == len(table) and all(n.startswith("kind/") for n in zf.namelist())
    with pytest.raises(LabellingError, match="exists already"):
        export_image_folders(session, tmp_path / "folders")


def test_image_export_refuses_a_symlink_leaving_the_image_root(results, tmp_path):
    from descluster.labelling.export import _contained_file

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(secret)
    os.symlink(secret, root / "a" / "x.png")
    with pytest.raises(UnsafePathError, match="outside the image root"):
        _contained_file(root, "a/x.png")
    with pytest.raises(UnsafePathError):
        _contained_file(root, "../secret.png")


def test_cli_labels_export_and_status(results, tmp_path, capsys):
    from descluster.cli import main

    out, truth = results
    s = Session(out)  # the default database OUT/labels.sqlite
    s.close()
    assert main(["labels", "status", str(out)]) == 0
    assert "no task yet" in capsys.readouterr().out
    assert main(["labels", "export", str(out)]) == 2  # nothing to export: refused, nothing written
    assert "has no task yet, so nothing to export" in capsys.readouterr().err
    assert not (out / "labels.csv").exists()
    s = Session(out)
    s.add_task("kind", ["k0", "k1", "k2", "k3"])
    _answer_by_truth(s, truth, s.next_question("kind"))
    s.close()
    assert main(["labels", "status", str(out)]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert status["task"] == "kind" and status["decisions"] >= 1
    assert main(["labels", "export", str(out), "--csv", str(tmp_path / "l.csv"), "--label-studio",
                 str(tmp_path / "l.json")]) == 0
    assert (tmp_path / "l.csv").is_file() and (tmp_path / "l.json").is_file()
    named = "path,cluster,name\na.jpg,0,van\n"  # what `descluster label` wrote: never replaced by an export
    (out / "labels.csv").write_text(named)
    assert main(["labels", "export", str(out)]) == 2
    assert "holds the cluster names written by `descluster label`" in capsys.readouterr().err
    assert (out / "labels.csv").read_text() == named
    (out / "labels.csv").unlink()
    assert main(["labels", "export", str(out)]) == 0 and "kind" in (out / "labels.csv").read_text().splitlines()[0]
    (out / "labels.csv").unlink()
    assert main(["labels", "export", str(tmp_path / "nowhere")]) == 2
    assert "labels.sqlite does not exist" in capsys.readouterr().err
    (out / "labels.sqlite").unlink()


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_propagation_matches_scikit_learn_predict_proba(n_classes):
    from descluster.labelling.propagate import LogisticPropagation, isotropic_scale

    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 6)).astype(np.float32) * 3 + 1
    y = np.full(200, -1)
    y[:60] = np.arange(60) % n_classes
    prop = LogisticPropagation().fit(X, y, n_classes=n_classes)
    ref = prop.model_.predict_proba(isotropic_scale(X))
    np.testing.assert_allclose(prop.proba_, ref, atol=1e-5)


def test_the_fitted_model_carries_each_task_classifier_to_new_images(results, tmp_path):
    """A labelling session's answers become a classifier in the saved model: assigning the study's own
    descriptors as a new case gives the planted kinds, and the model survives save/load."""
    import shutil

    from descluster import load_case
    from descluster.api import assign_case
    from descluster.model import FittedModel

    out, truth = results
    work = tmp_path / "out"
    shutil.copytree(out, work)
    s = Session(work)
    s.add_task("kind", ["k0", "k1"])
    s.add_task("empty")
    for _ in range(8):
        q = s.next_question("kind")
        if q is None:
            break
        _answer_by_truth(s, truth, q)
    answered = int(s.state("kind").labelled.sum())
    s.close()
    model = FittedModel.load(work).with_labelling(work)
    assert set(model.labelling) == {"kind"}  # the task without answers has no classifier
    lm = model.labelling["kind"]
    assert lm.n_labelled == answered and lm.space in model.spaces
    again = FittedModel.load(model.save(tmp_path / "model"))
    assert again == model
    manifest = json.loads((work / "manifest.json").read_text())
    a = assign_case(manifest["case"]["root"], work, tmp_path / "assigned")
    table = pd.read_csv(tmp_path / "assigned" / "assignments.csv")
    assert table["path"].tolist() == truth["path"].tolist()
    assert (table["label_kind"] == truth["kind"]).mean() >= 0.95
    assert table["label_kind_confidence"].between(0, 1).all()
    # the saved classifier labels as the one fitted from the session
    np.testing.assert_array_equal(a.table["label_kind"], again.assign(load_case(manifest["case"]["root"])).table["label_kind"])


def test_a_graph_being_built_does_not_hold_up_reading_a_space(results, tmp_path, monkeypatch):
    """The app warms the kNN graph in a background thread (minutes at 416k rows); a question needs only the
    space. While one thread is inside the graph's neighbour search, another reads every candidate space."""
    import shutil
    import threading

    import descluster.outliers.neighbours as nb
    from descluster.labelling.spaces import ResultsData

    out = tmp_path / "out"
    shutil.copytree(results[0], out)
    shutil.rmtree(out / ".cache" / "labelling", ignore_errors=True)
    data = ResultsData(out)
    inside, release = threading.Event(), threading.Event()
    real = nb.knn_search
    searches = []

    def slow_search(*args, **kwargs):
        searches.append(1)
        inside.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(nb, "knn_search", slow_search)
    key = data.recommended
    builder = threading.Thread(target=data.graph, args=(key,), daemon=True)
    builder.start()
    assert inside.wait(30)
    reader_done = threading.Event()
    shapes = {}

    def read():
        for k in data.candidates:
            shapes[k] = data.space(k).shape
        reader_done.set()

    threading.Thread(target=read, daemon=True).start()
    assert reader_done.wait(30), "reading a space waited for the graph being built"
    assert builder.is_alive() and all(s[0] == data.n_samples for s in shapes.values())
    release.set()
    builder.join(30)
    g = data.graph(key)  # the one built above, not a second search
    assert len(searches) == 1 and g.indices.shape[0] == data.n_samples


def test_session_accepts_the_propagation_names_without_scikit_learn_and_refuses_others(results, tmp_path):
    """Opening a session checks a propagation name against PROPAGATION_NAMES (no scikit-learn import, the
    app's first page); the list is the registry's, and an unknown name is refused at once."""
    from descluster.errors import ParameterError
    from descluster.labelling.session import PROPAGATION_NAMES

    assert set(PROPAGATION_NAMES) == set(PROPAGATIONS)
    with pytest.raises(ParameterError, match=r"is unknown; valid: smoothed"):
        Session(results[0], db=tmp_path / "a.sqlite", propagation="smoothd")
    code = ("import sys; import descluster.app.views; from descluster.labelling.session import Session; "
            f"Session({str(results[0])!r}, db={str(tmp_path / 'b.sqlite')!r}).close(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn')[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
