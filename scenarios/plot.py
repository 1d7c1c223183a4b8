"""The scenario's picture: accuracy of each served version over time, the loop's moments marked."""

from __future__ import annotations

from pathlib import Path

from scenarios.timeline import ScenarioSummary

_MARKS = {
    "shift": ("tab:red", "-"),
    "detection": ("tab:orange", "--"),
    "retrain started": ("tab:purple", ":"),
    "retrain finished": ("tab:purple", "-."),
    "registered": ("tab:blue", ":"),
    "promoted": ("tab:green", "-"),
}


def plot_timeline(summary: ScenarioSummary, out: Path) -> Path:
    """Write the PNG: one line per model version (accuracy per window), vertical markers."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(11, 4.5))
    versions = sorted({v for r in summary.window_records for v in r.accuracy_by_version}, key=int)
    for version in versions:
        points = [
            ((r.start_s + r.end_s) / 2, r.accuracy_by_version[version])
            for r in summary.window_records
            if version in r.accuracy_by_version
        ]
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, marker="o", label=f"v{version}")
    for mark in summary.milestones:
        colour, style = _MARKS.get(mark.name, ("grey", ":"))
        axes.axvline(mark.at_s, color=colour, linestyle=style, label=mark.name)
    axes.set_xlabel("seconds since the scenario started (one window ≈ one hour)")
    axes.set_ylabel("accuracy on served traffic")
    axes.set_title(f"Drift recovery ({summary.shift} shift)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
