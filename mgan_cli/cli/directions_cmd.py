"""``mgan directions``: SeFa / GANSpace directions of a generator, as .npy plus a preview grid."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from mgan_cli.cli.common import OutputFolder, reports_errors, stderr_console
from mgan_cli.edit import directions as directions_lib
from mgan_cli.edit.frames import DEFAULT_STRENGTHS, parse_rows, parse_strengths, preview_grid
from mgan_cli.errors import ConfigurationError, DirectionCountError
from mgan_cli.utils.atomic import make_folder, write_atomic
from mgan_cli.utils.imageio import write_png
from mgan_cli.weights.importing import generator_identity
from mgan_cli.weights.loading import load_generator


@click.command("directions")
@click.argument("generator")
@click.option("--method", type=click.Choice(directions_lib.METHODS), default="sefa", show_default=True,
              help="sefa: closed-form factorisation of the weights acting on the code; pca: GANSpace.")
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True, help="How many directions.")
@click.option("--layer", type=click.IntRange(min=1),
              help="pca only: take the PCA of the features at this layer (needed for z-only generators).")
@click.option("--style-rows", help="sefa on StyleGANs only: factorise the affines of these w+ rows, e.g. 0-3.")
@click.option("--strengths", default=",".join(f"{s:g}" for s in DEFAULT_STRENGTHS), show_default=True,
              help="Columns of the preview grid.")
@click.option("--samples", type=click.IntRange(min=1, max=8), default=3, show_default=True,
              help="Seeded sample codes shown side by side in the preview.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples (and of PCA's codes).")
@click.option("-o", "--output", "output_dir", required=True, type=OutputFolder(),
              help="Folder for <method>.npy, <method>.json and <method>_preview.png.")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@reports_errors
def directions_command(generator: str, method: str, count: int, layer: int | None, style_rows: str | None,
                       strengths: str, samples: int, seed: int, output_dir: Path, overwrite: bool) -> None:
    """Compute semantic directions of GENERATOR (a registry or imported name).

    Writes OUT/<method>.npy ([K, D] float32, unit-norm orthogonal rows, most important first), OUT/<method>.json
    (generator, space, method, eigenvalues or variances) and OUT/<method>_preview.png (rows = directions,
    columns = strengths, one block per seeded sample). Use a direction with `mgan edit --direction
    OUT/<method>.npy:K`, or on the fly with `--direction sefa:K`.

    \b
    Examples:
      mgan directions dcgan64-digiface --method sefa -n 8 -o dirs/
      mgan directions dcgan64-digiface --method pca --layer 1 -o dirs/
      mgan directions stylegan-ffhq1024 --method sefa --style-rows 0-3 -o dirs/
    """
    model = load_generator(generator)
    columns = parse_strengths(strengths)
    rows = parse_rows(style_rows, "--style-rows") if style_rows else None
    if rows is not None and method != "sefa":
        raise ConfigurationError("--style-rows applies to --method sefa")
    files = [output_dir / f"{method}{suffix}" for suffix in (".npy", ".json", "_preview.png")]
    existing = [str(f) for f in files if f.exists()]
    if existing and not overwrite:
        raise ConfigurationError(f"{', '.join(existing)} already exist (use --overwrite to replace them)")
    with stderr_console.status(f"computing {count} {method} directions of {generator}"):
        try:
            found = directions_lib.compute(model, method, count, layer=layer, rows=rows, seed=seed)
        except DirectionCountError as exc:
            raise ConfigurationError(f"-n must be between 1 and {exc.available} (the latent size), "
                                     f"got {count}") from None
        grid = preview_grid(model, found.vectors, found.space, columns,
                            directions_lib.sample_codes(model, samples, seed + 1))
    make_folder(output_dir)
    vectors = found.vectors.numpy().astype(np.float32)
    write_atomic(files[0], lambda handle: np.save(handle, vectors))
    info = {"generator": generator, "generator_sha256": generator_identity(generator)[2], "method": method,
            "space": found.space, "layer": found.layer, "style_rows": style_rows, "count": count,
            "values": [round(float(v), 6) for v in found.values], "preview_strengths": list(columns),
            "preview_seed": seed + 1}
    write_atomic(files[1], json.dumps(info, indent=1) + "\n")
    write_png(grid, files[2])
    stderr_console.print(f"wrote {files[0]} ({count} × {found.vectors.shape[1]}, {found.space} space), "
                         f"{files[1].name} and {files[2].name}")
