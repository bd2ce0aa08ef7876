"""bm-app: start the Streamlit page (app/streamlit_app.py) headless on a local port.

The page reads its model from $BONEMARROW_MODEL, so --model is handed over
through the environment (and --threads through $BONEMARROW_APP_THREADS); the
process is replaced by `streamlit run` (exec), so Ctrl-C and signals reach
Streamlit directly.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bonemarrow.app.analysis import THREADS_ENV
from bonemarrow.runtime.cli.common import CONTEXT_SETTINGS, fail, note, quiet_option, require, threads_option, warn
from bonemarrow.runtime.io.readers import MAX_PIXELS_ENV
from bonemarrow.runtime.model import ENV_VAR, default_model_path

APP_SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"

HELP = """Serve the web page: upload a scan, see its segmentation and tissue fractions.

Uploaded images are never stored: everything happens in memory.

\b
Exit codes: 2 usage error (a missing model file, or the `app` extra is missing);
otherwise the process becomes Streamlit's and ends with its status.
"""


def streamlit_command(port: int, address: str, max_upload_mb: int, quiet: bool = False) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, no file watching."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", address,
        "--server.maxUploadSize", str(max_upload_mb),
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.showWarningOnDirectExecution", "false",
        "--client.toolbarMode", "minimal",
        "--theme.base", "light",
        *(["--logger.level", "error"] if quiet else []),
    ]


@click.command(help=HELP, context_settings=CONTEXT_SETTINGS)
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"ONNX model (default: ${ENV_VAR}, else models_onnx/bonemarrow_compact.onnx).")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--address", default="localhost", show_default=True,
              help="Interface to listen on (0.0.0.0 to serve other machines).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help=f"Largest image accepted, in pixels (default: ${MAX_PIXELS_ENV}, else 250,000,000).")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=200, show_default=True,
              help="Largest upload accepted by the browser, in megabytes.")
@threads_option(help="CPU threads for the model [default: onnxruntime's choice, all cores].")
@quiet_option(help="No notes from bm-app, and only Streamlit's errors; errors are still printed.")
def main(model: Path | None, port: int, address: str, max_pixels: int | None, max_upload_mb: int,
         threads: int | None, quiet: bool) -> None:
    require("streamlit", "app", "bm-app")
    require("onnxruntime", "cpu", "bm-app")
    env = dict(os.environ)
    if model is not None:
        if not model.is_file():
            fail(f"--model {model}: no such file")
        env[ENV_VAR] = str(model.resolve())
    else:
        try:
            default_model_path()
        except FileNotFoundError as error:  # the page says so too; start anyway
            warn(str(error))
    if max_pixels is not None:
        env[MAX_PIXELS_ENV] = str(max_pixels)
    if threads is not None:
        env[THREADS_ENV] = str(threads)
    if not quiet:
        note(f"serving on http://{address}:{port} (Ctrl-C to stop)")
    command = streamlit_command(port, address, max_upload_mb, quiet)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
