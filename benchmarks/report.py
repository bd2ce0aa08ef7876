"""The bench's outputs: MACHINE.json (everything), MACHINE.md (the tables people read) and PNG charts."""
from __future__ import annotations

from pathlib import Path

from bonemarrow.benchmarks.stats import fmt
from bonemarrow.runtime.atomic import atomic_path
from bonemarrow.runtime.json_io import write_json_atomic


def write_json(report: dict, path: Path) -> Path:
    write_json_atomic(path, report, indent=1)
    return path


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def busy_warning(machine: dict) -> list[str]:
    """A warning line when other work was running: shared CPUs distort every figure (PyTorch's most)."""
    load = machine.get("load_average")
    if load and load[0] > 0.5 * machine["cpu_count"]:
        return [f"**Warning: the machine was busy (1-min load {load[0]:.1f} on {machine['cpu_count']} CPUs); "
                "figures are pessimistic and noisy. Rerun on a quiet machine before quoting them.**"]
    return []


def render_markdown(report: dict) -> str:
    m = report["machine"]
    peak = report.get("matmul_peak") or {}
    lines = [f"# bm-bench on {m['name']}", "",
             f"{m['cpu_model']}, {m['cpu_count']} CPUs, {m.get('memory_gib')} GiB RAM; "
             f"GPUs: {', '.join(g['name'] for g in m['gpus']) or 'none'}; "
             f"load average at start {m.get('load_average')}.",
             f"Matrix-multiply peak: {fmt(peak) if peak else '-'} GFLOP/s ({peak.get('method', '-')}).",
             *[f"GPU matmul peak {p}: {fmt(v)} GFLOP/s ({v['method']})."
               for p, v in (report.get("cuda_matmul_peaks") or {}).items()],
             *(busy_warning(m)),
             f"Run {report['created']}{' (--quick)' if report['quick'] else ''}; "
             f"figures are `median [q1-q3]` (or `[min-max]` under 4 runs) of {report['settings']['repeats']} "
             "run(s) after a warm-up.", ""]
    for preset, info in report.get("models", {}).items():
        onnx = ", ".join(f"{p} ({v['origin']})" for p, v in info["onnx"].items()) or "none"
        lines.append(f"- model {preset}: {info['source']} ({'trained' if info['trained'] else 'untrained: accuracy figures mean nothing'})"
                     f", tile {info['tile']}, ONNX: {onnx}")
    lines.append("")
    sections = report["sections"]
    if "tile" in sections:
        lines += ["## 1. Per tile", "", "| preset | backend | precision | device | batch | ms / tile | GFLOP/s | of peak |",
                  "|---|---|---|---|---|---|---|---|"]
        for preset, block in sections["tile"].items():
            for r in block["rows"]:
                if r["status"] != "ok":
                    lines.append(f"| {preset} | {r['backend']} | {r['precision']} | {r['device']} | - | "
                                 f"{r['status']}: {r.get('reason', '')} | - | - |")
                    continue
                lines.append(f"| {preset} | {r['backend']} | {r['precision']} | {r['device']} | {r['batch']} | "
                             f"{fmt(r['ms_per_tile'])} | {fmt(r['gflops'])} | {_pct(r['fraction_of_peak'])} |")
            lines.append(f"| {preset} | tile {block['tile']} px: {_num(block['gflop_per_tile'])} GFLOP per tile "
                         "(fp32-equivalent) | | | | | | |")
        lines.append("")
    if "whole" in sections:
        w = sections["whole"]
        img = w["image"]
        lines += [f"## 2. Whole image: original inference vs bm-run ({img['width']} x {img['height']}, "
                  f"{100 * img['tissue_fraction']:.0f} % tissue)", "",
                  "Speed-ups compare each row with the original inference on the same device.", "",
                  "| run | wall s | peak RSS MiB | decode s | model s | blending s | writing s | speed-up | "
                  "Dice bone / fat / other | density err | accuracy >= baseline |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in w["rows"].items():
            acc = r["accuracy"]
            dice = " / ".join(_num(acc["dice"][c]) for c in ("bone", "fat", "other"))
            speed = f"{r['speedup']['median']:.2f}x [{r['speedup']['min']:.2f}-{r['speedup']['max']:.2f}]" if "speedup" in r else "1x"
            lines.append(f"| {name} | {fmt(r['wall_s'])} | {fmt(r['peak_rss_mib'])} | "
                         + " | ".join(fmt(r["stages_s"][s]) for s in ("decode", "model", "blending", "writing"))
                         + f" | {speed} | {dice} ({acc['weights']}) | {_num(acc['density_error'])} | "
                         f"{r.get('accuracy_equal_or_better', '-')} |")
        for name, reason in (w.get("not_run") or {}).items():
            lines.append(f"| {name} | not run: {reason} | | | | | | | | | |")
        lines += ["", "bm-run's stages: decode and writing are timed on their own (in the pipeline they overlap "
                  "the model); blending = tiling, padding, Gaussian accumulation and argmax. "
                  "'tiler + pytorch' rows run bm-run's own tiling code and defaults over the PyTorch model.", ""]
    if "parity" in sections:
        lines += ["## 3. Whole-image parity through the tiler (vs PyTorch)", "",
                  "| preset | precision | label agreement | tissue label agreement | bone density PyTorch | ONNX | difference |",
                  "|---|---|---|---|---|---|---|"]
        for preset, block in sections["parity"].items():
            for precision, r in block["rows"].items():
                if "label_agreement" not in r:
                    lines.append(f"| {preset} | {precision} | {r.get('status')}: {r.get('reason')} | | | | |")
                    continue
                lines.append(f"| {preset} | {precision} | {_pct(r['label_agreement'])} | "
                             f"{_pct(r['tissue_label_agreement'])} | {_num(r['density_reference'], 4)} | "
                             f"{_num(r['density_candidate'], 4)} | {_num(r['density_difference'], 2)} |")
        lines.append("")
    if "scaling" in sections:
        s = sections["scaling"]
        lines += ["## 4. Scaling (bm-run segmenter, in-memory image)", "",
                  "| MP | size | wall s | s / MP | peak RSS MiB | working MiB | beyond labels MiB | tiles (skipped) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            lines.append(f"| {r['megapixels']:.2f} | {r['width']}x{r['height']} | {fmt(r['wall_s'])} | "
                         f"{fmt(r['seconds_per_megapixel'])} | {fmt(r['peak_rss_mib'])} | {fmt(r['working_mib'])} | "
                         f"{fmt(r['beyond_labels_mib'])} | {r['tiles_total']} ({r['tiles_skipped']}) |")
        fit = s["time_fit"]
        lines += ["", f"Time fit: {_num(fit['slope'])} s/MP, R^2 {_num(fit['r2'], 4)}; memory beyond the label map grew "
                  f"{_num(s['beyond_labels_memory_growth'])}x while pixels grew {_num(s['pixel_growth'])}x.", ""]
    for section, error in report.get("errors", {}).items():
        lines.append(f"**{section} failed:** {error}")
    return "\n".join(lines).rstrip() + "\n"


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def _errorbar(ax, xs, summaries, label, colour=None):
    meds = [s["median"] for s in summaries]
    lo = [m - s["q1"] for m, s in zip(meds, summaries)]
    hi = [s["q3"] - m for m, s in zip(meds, summaries)]
    ax.errorbar(xs, meds, yerr=[lo, hi], marker="o", capsize=3, label=label, color=colour)


def write_charts(report: dict, out: Path, machine: str) -> list[Path]:
    """One PNG per section that has figures: latency, whole image, scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sections = report["sections"]
    if "tile" in sections:
        fig, axes = plt.subplots(1, len(sections["tile"]), figsize=(6 * len(sections["tile"]), 4), squeeze=False)
        colours: dict[str, str] = {}  # one colour per backend across the presets' panels
        for ax, (preset, block) in zip(axes[0], sections["tile"].items()):
            groups: dict[str, list] = {}
            for r in block["rows"]:
                if r["status"] == "ok":
                    groups.setdefault(f"{r['backend']} {r['precision']} {r['device']}", []).append(r)
            for label, rows in groups.items():
                colour = colours.setdefault(label, f"C{len(colours) % 10}")
                _errorbar(ax, [r["batch"] for r in rows], [r["ms_per_tile"] for r in rows], label, colour)
            ax.set(title=f"{preset}: {block['tile']} px tiles", xlabel="batch size", ylabel="ms per tile (log)",
                   yscale="log")
            ax.set_xticks(sorted({r["batch"] for r in block["rows"] if r["status"] == "ok"}))
            ax.legend(fontsize=8)
        written.append(_save(fig, out / f"{machine}_tiles.png"))
        plt.close(fig)
    if "whole" in sections:
        rows = sections["whole"]["rows"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        names = list(rows)
        bottom = [0.0] * len(names)
        for stage in ("decode", "model", "blending", "writing"):
            values = [rows[n]["stages_s"][stage]["median"] for n in names]
            ax1.bar(names, values, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax1.scatter(names, [rows[n]["wall_s"]["median"] for n in names], color="k", zorder=3, label="wall")
        ax1.set(title="whole image: time by stage", ylabel="seconds")
        for ax in (ax1, ax2):
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax1.legend(fontsize=8)
        ax2.bar(names, [rows[n]["peak_rss_mib"]["median"] for n in names], color="tab:gray")
        ax2.set(title="peak RSS", ylabel="MiB")
        written.append(_save(fig, out / f"{machine}_whole.png"))
        plt.close(fig)
    if "scaling" in sections:
        rows = sections["scaling"]["rows"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        mps = [r["megapixels"] for r in rows]
        _errorbar(ax1, mps, [r["wall_s"] for r in rows], "wall")
        ax1.set(title="time vs image size", xlabel="megapixels", ylabel="seconds")
        _errorbar(ax2, mps, [r["peak_rss_mib"] for r in rows], "peak RSS")
        _errorbar(ax2, mps, [r["working_mib"] for r in rows], "above the image")
        _errorbar(ax2, mps, [r["beyond_labels_mib"] for r in rows], "above image + labels")
        ax2.set(title="memory vs image size", xlabel="megapixels", ylabel="MiB")
        ax2.legend(fontsize=8)
        written.append(_save(fig, out / f"{machine}_scaling.png"))
        plt.close(fig)
    return written


def rerender(json_path: Path) -> list[Path]:
    """MACHINE.md and the charts again from MACHINE.json (after a change to how reports look)."""
    import json

    from bonemarrow.runtime.atomic import write_text_atomic

    report = json.loads(Path(json_path).read_text(encoding="utf-8"))
    out, machine = Path(json_path).parent, Path(json_path).stem
    md = out / f"{machine}.md"
    write_text_atomic(md, render_markdown(report))
    return [md, *write_charts(report, out, machine)]


if __name__ == "__main__":  # python -m bonemarrow.benchmarks.report benchmarks/results/MACHINE.json ...
    import sys

    for name in sys.argv[1:]:
        for written in rerender(Path(name)):
            print(written)
