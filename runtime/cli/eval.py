"""bm-eval: score predicted label maps against ground truth (CSV, JSON and PNG charts).

Exit codes: 0 all pairs scored, 1 some label files unreadable or mismatched in size
(each reported in one line) or no pairs at all, 2 usage error.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bonemarrow.runtime.cli.common import CONTEXT_SETTINGS, EXIT_FAILED, EXIT_OK, error, fail, note, quiet_option


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("pred_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("gt_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for eval.csv, eval.json and the charts.")
@click.option("--no-charts", is_flag=True, help="Skip the PNG charts (they need matplotlib).")
@quiet_option(help="Only errors.")
def main(pred_dir, gt_dir, outdir, no_charts, quiet):
    """Dice per class, bone density error and confusion matrix of PRED_DIR against GT_DIR.

    Pairs PRED_DIR/NAME_labels.png (or NAME.png) with GT_DIR/NAME.png (or NAME_labels.png).
    """
    from bonemarrow.runtime.atomic import write_text_atomic
    from bonemarrow.runtime.evaluation.folders import evaluate_folders, render_csv

    def say(line):
        if not quiet:
            click.echo(line, err=True)

    evaluation = evaluate_folders(pred_dir, gt_dir)
    for failure in evaluation.failures:
        error(failure["error"])
    if evaluation.unmatched_predictions:
        say(f"note: {len(evaluation.unmatched_predictions)} prediction(s) without ground truth: "
            + ", ".join(evaluation.unmatched_predictions[:5]) + (" ..." if len(evaluation.unmatched_predictions) > 5 else ""))
    if evaluation.unmatched_truth:
        say(f"note: {len(evaluation.unmatched_truth)} ground truth map(s) without prediction: "
            + ", ".join(evaluation.unmatched_truth[:5]) + (" ..." if len(evaluation.unmatched_truth) > 5 else ""))
    if not evaluation.images:
        fail(f"no readable prediction / ground truth pairs in {pred_dir} and {gt_dir}", EXIT_FAILED)
    outdir.mkdir(parents=True, exist_ok=True)
    summary = evaluation.summary()
    document = {
        "format_version": 1,
        "pred_dir": str(pred_dir),
        "gt_dir": str(gt_dir),
        "summary": summary,
        "images": evaluation.images,
        "failures": evaluation.failures,
        "unmatched_predictions": evaluation.unmatched_predictions,
        "unmatched_truth": evaluation.unmatched_truth,
    }
    write_text_atomic(outdir / "eval.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    write_text_atomic(outdir / "eval.csv", render_csv(evaluation))
    if not no_charts:
        from bonemarrow.runtime.evaluation.charts import write_charts

        try:
            write_charts(evaluation, outdir)
        except ImportError:
            note("charts skipped: matplotlib is missing (pip install 'bonemarrow-seg[eval]')")
    dice = ", ".join(f"{c} {v:.3f}" for c, v in summary["mean_dice"].items() if v is not None)
    density_error = summary["mean_relative_density_error"]
    say(f"{summary['images']} image(s): mean Dice {dice}; mean relative bone density error "
        + ("n/a" if density_error is None else f"{100 * density_error:.1f}%") + f" -> {outdir / 'eval.csv'}")
    sys.exit(EXIT_FAILED if evaluation.failures else EXIT_OK)


if __name__ == "__main__":
    main()
