"""The bm-app page: upload a scan, watch the tiles, see the segmentation and the tissue fractions.

Run by `bm-app` (or `streamlit run` on this file). The model comes from
$BONEMARROW_MODEL (bm-app --model sets it) or the runtime's bundled default and
is loaded once per model and provider for all visitors (st.cache_resource).
Uploads stay in memory: Streamlit keeps uploaded files in RAM, the scan is
decoded from those bytes, and the downloads are built as bytes.
"""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from bonemarrow.app.analysis import (MAX_OVERLAP, UPLOAD_TYPES, Analysis, analyse, app_threads, find_model, percent,
                                     upload_key)
from bonemarrow.runtime.contract import ModelContractError
from bonemarrow.runtime.io.readers import MAX_PIXELS_ENV, ImageReadError, max_pixels_default
from bonemarrow.runtime.model import LoadedModel, open_model
from bonemarrow.runtime.providers import PROVIDERS, InstallError, ProviderError
from bonemarrow.runtime.tiling import TilingConfig

PRIVACY_NOTE = ("Uploaded images are never stored: the scan is decoded and segmented in memory, "
                "nothing is written to disk, and the results are gone when you close the page.")


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def load_model(model_path: str, provider: str, threads: int | None = None) -> LoadedModel:
    """One onnxruntime session per (model, provider, threads), shared by every visitor and rerun."""
    return open_model(model_path, provider, threads)


def sidebar() -> tuple[float, str]:
    st.sidebar.header("Settings")
    overlap = st.sidebar.slider("Tile overlap", 0.0, MAX_OVERLAP, 0.25, 0.05, key="overlap",
                                help="Fraction of a tile shared with its neighbour; more overlap is "
                                     "smoother at tile borders and slower.")
    provider = st.sidebar.selectbox("Execution provider", PROVIDERS, key="provider",
                                    help="auto = CUDA when it really works, else the CPU; "
                                         "cuda fails instead of falling back.")
    return overlap, provider


def fraction_chart(analysis: Analysis) -> alt.Chart:
    rows = pd.DataFrame(analysis.fraction_rows())
    colours = alt.Scale(domain=list(rows["class"]), range=list(rows["color"]))
    return alt.Chart(rows, height=260).mark_arc(stroke="white").encode(
        theta=alt.Theta("pixels:Q"),
        color=alt.Color("class:N", scale=colours, sort=list(rows["class"]), title="Tissue class"),
        tooltip=["class", "pixels", alt.Tooltip("share_of_tissue:Q", format=".1%", title="share of tissue")],
    )


def show_results(analysis: Analysis) -> None:
    result = analysis.segmentation
    st.success(f"Segmented {analysis.name}: {result.width} x {result.height} pixels, "
               f"{result.tiles_total} tiles ({result.tiles_skipped} skipped as empty glass) "
               f"in {result.seconds:.1f} s.")
    for note in analysis.loaded.notes:
        st.caption(f"Note: {note}.")
    scan, colour, overlaid = analysis.previews()
    for column, picture, caption in zip(st.columns(3), (scan, colour, overlaid),
                                        ("Scan", "Labels: bone red, fat green, other tissue blue",
                                         "Overlay")):
        column.image(picture, caption=caption, width="stretch")

    fractions = analysis.fractions
    metrics = st.columns(3)
    metrics[0].metric("Bone density", percent(fractions["bone_density"]),
                      help="Bone pixels / tissue pixels (tissue = every class but background).")
    metrics[1].metric("Fat", percent(fractions["fat_fraction"]))
    metrics[2].metric("Other tissue", percent(fractions["other_fraction"]))

    if analysis.tissue_pixels == 0:
        st.warning("No tissue was found in this image, so there are no fractions to show.")
    else:
        chart, table = st.columns([1, 1])
        chart.altair_chart(fraction_chart(analysis), width="stretch")
        rows = pd.DataFrame(analysis.fraction_rows()).drop(columns="color")
        rows["share_of_tissue"] = [percent(v) for v in rows["share_of_tissue"]]
        table.dataframe(rows, hide_index=True, width="stretch",
                        column_config={"class": "Class", "pixels": "Pixels", "share_of_tissue": "Share of tissue"})
        table.caption(f"{analysis.tissue_pixels:,} tissue pixels; "
                      f"{int(result.counts[0]):,} background pixels.")

    downloads = st.columns(2)
    downloads[0].download_button("Download label map (PNG)", analysis.label_png(), analysis.label_file_name,
                                 mime="image/png", on_click="ignore", key="download_labels",
                                 help="8-bit palette PNG whose pixel values are the class indices.")
    downloads[1].download_button("Download results row (CSV)", analysis.results_csv(), analysis.csv_file_name,
                                 mime="text/csv", on_click="ignore", key="download_csv",
                                 help="The same columns as bm-run's results.csv.")


def main() -> None:
    st.set_page_config(page_title="Bone marrow segmentation", layout="wide")
    st.title("Bone marrow biopsy segmentation")
    st.caption("Upload an H&E scan: it is segmented into background, bone, fat and other tissue, and the bone "
               "density (bone / tissue) is measured.")
    st.info(PRIVACY_NOTE)
    overlap, provider = sidebar()

    model_path, why = find_model()
    if model_path is None:
        st.error(f"No model to run: {why}.")
        st.stop()
    try:
        model = load_model(str(model_path), provider, app_threads())
    except (ModelContractError, ProviderError, InstallError, ValueError) as error:
        st.error(f"The model cannot be used: {error}")
        st.stop()
    info = model.info
    st.sidebar.caption(f"Model: {model_path.name} ({info.precision}, tile {info.tile}, "
                       f"{', '.join(m['name'] for m in info.members)})")
    st.sidebar.caption(model.choice.describe())
    try:
        max_pixels = max_pixels_default()
    except ValueError:
        st.error(f"${MAX_PIXELS_ENV} must be an integer.")
        st.stop()
    st.sidebar.caption(f"Largest image accepted: {max_pixels:,} pixels.")

    upload = st.file_uploader("Scan (PNG, JPEG or TIFF)", type=list(UPLOAD_TYPES), key="upload")
    if upload is None:
        st.session_state.pop("analysis", None)
        return
    data = upload.getvalue()
    key = upload_key(data, model.sha256, model.provider, overlap)
    stored = st.session_state.get("analysis")
    if stored is None or stored[0] != key:
        st.session_state.pop("analysis", None)  # free the previous result before the next one
        bar = st.progress(0.0, text="Reading the scan...")

        def on_tiles(done: int, total: int) -> None:
            bar.progress(done / total if total else 1.0, text=f"Segmenting: {done} of {total} tiles")

        try:
            analysis = analyse(data, upload.name, model, TilingConfig(overlap=overlap), progress=on_tiles,
                               max_pixels=max_pixels)
        except ImageReadError as error:
            bar.empty()
            st.error(f"Cannot use this file: {error}")
            return
        bar.empty()
        st.session_state["analysis"] = (key, analysis)
    show_results(st.session_state["analysis"][1])


main()
