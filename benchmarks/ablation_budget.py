"""How the ablation's answer moves with the training budget: AUC per arm against epochs.

Reads the JSON files ``benchmarks/ablation.py`` wrote for several ``--epochs`` (each run of the script
is one budget) and draws, per arm, the AUC over all test pairs and over the pairs in one |yaw| bin,
with the std over seeds as error bars. Writes ``ablation_budget.png`` beside the first input.

    python benchmarks/ablation_budget.py benchmarks/results/ablation_e3.json \\
        benchmarks/results/ablation.json benchmarks/results/ablation_e20.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path



def load_budgets(paths: list[Path]) -> list[dict]:
    """The results sorted by their epochs (a budget given twice is an error: which one would count?)."""
    results = [json.loads(p.read_text()) for p in paths]
    epochs = [r["settings"]["epochs"] for r in results]
    if len(set(epochs)) != len(epochs):
        raise SystemExit(f"two results with the same number of epochs: {epochs}")
    return sorted(results, key=lambda r: r["settings"]["epochs"])


def plot_budget(results: list[dict], path: Path, yaw_bin: str = "30-45") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    arms = list(results[-1]["summary"])
    for ax, (title, pick) in zip(axes, (("all pairs", lambda s: s["auc"]),
                                        (f"pairs with larger |yaw| {yaw_bin} degrees",
                                         lambda s: s["yaw_auc"][yaw_bin]))):
        for i, arm in enumerate(arms):
            pts = [(r["settings"]["epochs"], pick(r["summary"][arm])) for r in results if arm in r["summary"]]
            pts = [(e, v) for e, v in pts if v["mean"] is not None]
            xs = [e + (i - 1) * 0.15 for e, _ in pts]       # a small offset keeps the error bars apart
            ax.errorbar(xs, [v["mean"] for _, v in pts], yerr=[v["std"] for _, v in pts], marker="o",
                        capsize=3, label=arm)
        ax.set_title(title)
        ax.set_xlabel("training epochs")
        ax.set_xticks([r["settings"]["epochs"] for r in results])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("verification AUC (LFW folds 6-10)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Input-channel ablation against training budget (mean +- std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, nargs="+", help="ablation JSON files, one per budget")
    p.add_argument("--yaw-bin", default="30-45")
    p.add_argument("--out", type=Path, help="default: ablation_budget.png beside the first input")
    args = p.parse_args(argv)
    out = args.out or args.results[0].with_name("ablation_budget.png")
    print(plot_budget(load_budgets(args.results), out, args.yaw_bin))


if __name__ == "__main__":
    main()
