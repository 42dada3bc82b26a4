"""How every embedding is judged: metrics (:mod:`~lib.evaluation.metrics`), DTW recognition
(:mod:`~lib.evaluation.dtw`), benchmark protocols (:mod:`~lib.evaluation.protocols`), 3D pose probes
(:mod:`~lib.evaluation.probes`) and the baselines every paper is compared with
(:mod:`~lib.evaluation.baselines`)."""
