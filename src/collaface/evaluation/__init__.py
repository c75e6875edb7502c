"""Evaluation (``collaface evaluate``): the paper's Tables 1-3 for any models, with baselines,
CIs and a report.

One face from disk to a number: the dataset gives the face with the hole of one mask condition
(a pure function of (seed, index)); each model completes it, known pixels are pasted back
(``contracts.composite``) and the uint8 result is scored against the original (``metrics``). The
same faces and masks go through three classical baselines: OpenCV's Telea and Navier-Stokes
inpainting and a mirror fill. With ``with_realism`` (the CLI's default), the hole patches of
originals and completions also go through the realism measures of ``collaface.realism`` (C2ST
and SWD), per condition and method.

Mask conditions
---------------
* ``O1``..``O6``: the paper's occlusions (Table 1), rectangles placed from the 5 landmarks.
* ``block``, ``pattern``, ``noise``: the paper's training masks (64x64 block at 128 px, 25%
  random pattern, 80% noise), with the paper's parameters whatever the model was trained with.
* ``freeform-0-10`` .. ``freeform-40-50``: free-form brush masks by hole area (LaMa's bins);
  every bin draws from the same per-face random stream, with its own area range.

Modules, each importing only modules named before it: ``conditions`` (the mask
conditions and their datasets), ``paper`` (the paper's published numbers and table layout),
``baselines`` (the classical inpainting baselines), ``scoring`` (models loaded, faces completed
and scored: :func:`~collaface.evaluation.scoring.evaluate`), ``statistics`` (means, bootstrap CIs,
verdicts), ``figures`` (bar charts and image sheets), ``reports`` (JSON, CSV, Markdown) and
``cli`` (``collaface evaluate``).

Outputs of :func:`~collaface.evaluation.reports.write_report` in the report folder:
``report.json`` (every number, config, model and data hashes, seed), ``report.csv`` (one row
per number), ``report.md`` (the tables beside the paper's published rows) and figures
``bars_<metric>.png``, ``qualitative.png`` and ``median_crops.png``.
"""
