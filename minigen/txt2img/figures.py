"""Figures of text-to-image runs: a grid of prompts and their samples."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PROMPTS = ("a small red circle on the left", "a large blue square at the top",
           "a green triangle left of a yellow circle", "a cyan square above a red circle",
           "a large red triangle on the right", "a small green square at the bottom")
"""Prompts of the checkpoint figure; the last two are held-out compositions (red triangle,
green square never appear in training)."""


def prompt_grid(pipeline, path, prompts=PROMPTS, per_prompt=4, guidance=3.0, seed=0,
                steps=50):
    """One row per prompt: ``per_prompt`` samples at ``guidance``, the prompt as the title."""
    images = pipeline.sample([p for p in prompts for _ in range(per_prompt)],
                             guidance=guidance, steps=steps, seed=seed)
    save_grid(images, [p for p in prompts for _ in range(per_prompt)], per_prompt, path,
              f"guidance w = {guidance}")


def save_grid(images, labels, columns, path, title=None):
    """Images (n, 3, H, W) in [-1, 1] in a grid of ``columns``, each row titled with the
    label of its first image."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            ax.imshow(np.clip((images[i].transpose(1, 2, 0) + 1) / 2, 0, 1))
        if i % columns == 0 and i < len(labels):
            ax.set_title(labels[i], fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
