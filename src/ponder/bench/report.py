"""Turning records into a report: accuracy with bootstrap intervals, tokens, time, calls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ponder.bench.runner import Record

if TYPE_CHECKING:  # matplotlib is imported only when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox


@dataclass(frozen=True, slots=True)
class Summary:
    system: str
    questions: int
    accuracy: float
    ci_low: float
    ci_high: float
    prompt_tokens: float
    completion_tokens: float
    total_tokens: float
    seconds: float
    calls: float
    errors: int
    usage_complete: bool
    cost: float | None = None  # mean cost per question, where a price table is given


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens."""

    prompt: float
    completion: float

    def of(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


def load_prices(path: Path) -> dict[str, Price]:
    """A JSON price table: {"system or *": {"prompt": $/1M, "completion": $/1M}}."""
    raw = json.loads(path.read_text())
    return {name: Price(float(p["prompt"]), float(p["completion"])) for name, p in raw.items()}


def bootstrap_ci(
    outcomes: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-question scores in [0, 1] (fixed seed: reproducible)."""
    if not outcomes:
        return 0.0, 0.0
    values = np.asarray(outcomes, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def summarize(
    records: Sequence[Record],
    order: Sequence[str] | None = None,
    prices: dict[str, Price] | None = None,
) -> list[Summary]:
    systems = list(order) if order else list(dict.fromkeys(r.system for r in records))
    out = []
    for system in systems:
        rows = [r for r in records if r.system == system]
        if not rows:
            continue
        # Replicates (orderings of a sample bank) are averaged per question first, so the
        # interval is over questions, not over correlated replays of the same question.
        per_question: dict[str, list[float]] = {}
        for r in rows:
            per_question.setdefault(r.example_id, []).append(float(r.correct))
        correct = [float(np.mean(v)) for v in per_question.values()]
        low, high = bootstrap_ci(correct)
        out.append(
            Summary(
                system=system,
                questions=len(per_question),
                accuracy=float(np.mean(correct)),
                ci_low=low,
                ci_high=high,
                prompt_tokens=float(np.mean([r.prompt_tokens for r in rows])),
                completion_tokens=float(np.mean([r.completion_tokens for r in rows])),
                total_tokens=float(np.mean([r.total_tokens for r in rows])),
                seconds=float(np.mean([r.seconds for r in rows])),
                calls=float(np.mean([r.calls for r in rows])),
                errors=sum(r.error is not None for r in rows),
                usage_complete=all(r.usage_complete for r in rows),
                cost=_cost(rows, system, prices),
            )
        )
    return out


def _cost(rows: Sequence[Record], system: str, prices: dict[str, Price] | None) -> float | None:
    price = (prices or {}).get(system) or (prices or {}).get("*")
    if price is None:
        return None
    return float(np.mean([price.of(r.prompt_tokens, r.completion_tokens) for r in rows]))


def markdown_table(summaries: Sequence[Summary]) -> str:
    with_cost = any(s.cost is not None for s in summaries)
    head = "| system | questions | accuracy | 95% CI | prompt tok | completion tok | total tok | s/question | calls | errors |"
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    lines = [head + (" $/question |" if with_cost else ""), rule + (" --- |" if with_cost else "")]
    for s in summaries:
        flag = "" if s.usage_complete else " (under-reported)"
        row = (
            f"| {s.system} | {s.questions} | {s.accuracy:.1%} | {s.ci_low:.1%}–{s.ci_high:.1%} | "
            f"{s.prompt_tokens:.0f} | {s.completion_tokens:.0f} | {s.total_tokens:.0f}{flag} | "
            f"{s.seconds:.1f} | {s.calls:.1f} | {s.errors} |"
        )
        if with_cost:
            row += f" {s.cost:.6f} |" if s.cost is not None else " - |"
        lines.append(row)
    return "\n".join(lines)


def finished_by_all(records: Sequence[Record], systems: Sequence[str]) -> set[str]:
    """The questions that every one of ``systems`` has a record for."""
    finished = [{r.example_id for r in records if r.system == s} for s in systems]
    return set.intersection(*finished) if finished else set()


def markdown_text(
    records: Sequence[Record],
    summaries: Sequence[Summary],
    order: Sequence[str] | None = None,
    prices: dict[str, Price] | None = None,
) -> str:
    """The table, the Pareto frontier, and, when systems finished different questions (a run
    still going, or errors), the same table over the questions every system finished, since
    only that comparison is paired."""
    parts = [markdown_table(summaries)]
    front = pareto_front(summaries)
    if front:
        parts.append(
            "Pareto frontier (accuracy against mean total tokens): "
            + ", ".join(s.system for s in front)
        )
    if len({s.questions for s in summaries}) > 1:
        common = finished_by_all(records, [s.system for s in summaries])
        paired = summarize([r for r in records if r.example_id in common], order, prices)
        parts.append(
            f"On the {len(common)} question(s) every system finished:\n\n" + markdown_table(paired)
        )
    return "\n\n".join(parts)


def pareto_front(summaries: Sequence[Summary]) -> list[Summary]:
    """Systems no other system beats on both accuracy and mean total tokens."""
    front = []
    for s in summaries:
        dominated = any(
            o.accuracy >= s.accuracy
            and o.total_tokens <= s.total_tokens
            and (o.accuracy > s.accuracy or o.total_tokens < s.total_tokens)
            for o in summaries
        )
        if not dominated:
            front.append(s)
    return sorted(front, key=lambda s: s.total_tokens)


# Where a label may sit relative to its point, in points, tried in this order.
LABEL_OFFSETS = ((5, 5), (5, -12), (5, 16), (5, -23), (-5, 5), (-5, -12), (-5, 16), (-5, -23))


def _label(ax: Axes, text: str, point: tuple[float, float], offset: tuple[int, int]) -> Annotation:
    return ax.annotate(
        text,
        point,
        textcoords="offset points",
        xytext=offset,
        ha="left" if offset[0] > 0 else "right",
        fontsize=8,
        # A faint leader line ties each label to its point when neighbours crowd it.
        arrowprops={"arrowstyle": "-", "linewidth": 0.5, "alpha": 0.5, "shrinkA": 0},
    )


def place_labels(fig: Figure, ax: Axes, summaries: Sequence[Summary]) -> None:
    """Label each point at the first offset whose text box stays inside the axes and overlaps
    no marker and no label placed before; where none does, at the one that overlaps least.

    Rows at the same point (cot and auto minimal, say) share one label. The layout is fixed
    first, since a label's box on screen depends on it."""
    from matplotlib.transforms import Bbox

    points: dict[tuple[int, float], list[str]] = {}
    for s in summaries:
        marker = "" if s.usage_complete else " *"
        points.setdefault((round(s.total_tokens), round(s.accuracy * 100, 1)), []).append(
            s.system + marker
        )
    fig.tight_layout()
    fig.canvas.draw()
    inside = ax.get_window_extent()
    # Labels keep clear of every point's marker too, so none reads as a neighbour's.
    placed: list[Bbox] = []
    for tokens, accuracy in points:
        x, y = ax.transData.transform((tokens, accuracy))
        placed.append(Bbox.from_extents(x - 4, y - 4, x + 4, y + 4))
    for point, names in sorted(points.items()):
        text = " = ".join(names)
        tried: list[tuple[int, int, Bbox]] = []
        for offset in LABEL_OFFSETS:
            label = _label(ax, text, point, offset)
            box = label.get_window_extent()
            label.remove()
            clashes = sum(box.overlaps(other) for other in placed)
            if not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
                clashes += 1
            tried.append((clashes, len(tried), box))
            if clashes == 0:
                break
        _, best, box = min(tried, key=lambda t: (t[0], t[1]))
        _label(ax, text, point, LABEL_OFFSETS[best])
        placed.append(box)


def plot_accuracy_vs_tokens(summaries: Sequence[Summary], path: Path, title: str = "") -> Path:
    """Accuracy (with its 95% interval) against mean total tokens per question, log x-axis,
    with the Pareto frontier drawn through the systems it contains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for s in summaries:
        ax.errorbar(
            s.total_tokens,
            s.accuracy * 100,
            yerr=[[max(s.accuracy - s.ci_low, 0) * 100], [max(s.ci_high - s.accuracy, 0) * 100]],
            fmt="o",
            capsize=3,
            alpha=0.85,
        )
    # One strategy at several settings (self-consistency at n=4/8/16, auto at each effort)
    # is drawn as a curve: what buying more of it returns.
    series: dict[str, list[Summary]] = {}
    for s in summaries:
        series.setdefault(s.system.split(";")[0], []).append(s)
    for name, members in series.items():
        if len(members) > 1:
            members = sorted(members, key=lambda m: m.total_tokens)
            ax.plot(
                [m.total_tokens for m in members],
                [m.accuracy * 100 for m in members],
                "-",
                linewidth=1,
                alpha=0.6,
                label=f"{name} (settings joined)",
            )
    front = pareto_front(summaries)
    if len(front) > 1:
        ax.plot(
            [s.total_tokens for s in front],
            [s.accuracy * 100 for s in front],
            "--",
            color="gray",
            label="Pareto frontier",
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("mean total tokens per question (log scale)")
    ax.set_ylabel("accuracy (%) with 95% bootstrap interval")
    ax.set_title(title or "Accuracy against tokens")
    ax.grid(True, which="both", alpha=0.3)
    place_labels(fig, ax, summaries)
    if any(not s.usage_complete for s in summaries):
        fig.text(0.01, 0.01, "* usage under-reported by the system", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    records: Sequence[Record],
    run_dir: Path,
    order: Sequence[str] | None = None,
    title: str = "",
    prices: dict[str, Price] | None = None,
) -> str:
    """report.md, records.json, summary.json and accuracy_vs_tokens.png in the run directory."""
    summaries = summarize(records, order, prices)
    table = markdown_text(records, summaries, order, prices)
    (run_dir / "report.md").write_text(table + "\n")
    (run_dir / "records.json").write_text(
        json.dumps([asdict(r) | {"total_tokens": r.total_tokens} for r in records], indent=1)
    )
    (run_dir / "summary.json").write_text(json.dumps([asdict(s) for s in summaries], indent=1))
    if summaries:
        plot_accuracy_vs_tokens(summaries, run_dir / "accuracy_vs_tokens.png", title)
    return table
