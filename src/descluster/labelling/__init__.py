"""Labelling: from clusters to labels a team can trust, measured in human decisions.

``descluster.labelling`` holds two routes:

- :mod:`~descluster.labelling.names`: ``descluster label RESULTS --names names.csv``
  turns one name per cluster into ``labels.csv`` (the report's download button);
- the labelling engine: a :class:`~descluster.labelling.session.Session` beside a
  results folder (``OUT/labels.sqlite``) with tasks, questions, answers, undo,
  propagation with confidence, a per-task space, spot-check accuracy estimates,
  identity spreading and exports (:mod:`~descluster.labelling.export`), and the
  simulated annotator that measures its cost (:mod:`~descluster.labelling.simulate`).
"""

from .names import DISCARD_NAME, apply_names, read_names, resolve

__all__ = ["DISCARD_NAME", "apply_names", "read_names", "resolve", "Session", "Question", "simulate"]


def __getattr__(name):  # the engine is imported on first use (keeps `descluster label` light)
    if name == "Session":
        from .session import Session

        return Session
    if name == "Question":
        from .questions import Question

        return Question
    if name == "simulate":
        from .simulate import simulate

        return simulate
    raise AttributeError(f"module 'descluster.labelling' has no attribute {name!r}")
