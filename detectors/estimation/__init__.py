"""Before the labels come: performance estimated from confidence (CBPE) and
multivariate drift, fitted on a labelled reference and applied to a window's samples.

* :mod:`detectors.estimation.calibration` -- isotonic calibration (pool adjacent violators).
* :mod:`detectors.estimation.cbpe` -- expected confusion matrix and metrics from calibrated scores.
* :mod:`detectors.estimation.multivariate` -- PCA reconstruction error and a domain classifier.
"""
