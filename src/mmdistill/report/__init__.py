"""Run reports and comparisons.

* :func:`mmdistill.report.build.build_report` - one self-contained ``report.html`` per run directory
  (sections in :mod:`.sections`, page pieces in :mod:`.html`, figures in :mod:`.figures`, spectrogram
  playback in :mod:`.audio`, tolerant run loading in :mod:`.load`);
* :func:`mmdistill.report.compare.compare_runs` - a metric against budget for several runs + a table;
* :mod:`.browser` - headless-Chromium page inspection used by the tests.
"""
