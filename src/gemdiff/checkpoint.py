"""Loading a trained model and everything needed to use it from one checkpoint file.

A gemdiff checkpoint is a Lightning checkpoint with an extra section (``"gemdiff"``) of plain
data: the denoiser's and the diffusion's arguments, the genes, the class names, the fitted
preprocessing, the train/test sample ids and the resolved config. It loads with
``torch.load(weights_only=True)``; nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gemdiff import constants as K
from gemdiff.data.preprocess import Preprocessor
from gemdiff.errors import InputError
from gemdiff.models import baselines
from gemdiff.models.denoiser import DenoiserConfig, TransformerDenoiser
from gemdiff.models.gaussian import GaussianDiffusion


@dataclass
class TrainedModel:
    """A trained generator, ready for sampling, with the data state it was fit on.

    ``kind`` is ``diffusion`` (GEMDiff: ``denoiser`` and ``diffusion`` are set) or a baseline
    (``gaussian``, ``wgan``: ``sampler`` draws samples with ``sampler.sample(labels, seed)``).
    """

    denoiser: TransformerDenoiser | None
    diffusion: GaussianDiffusion | None
    preprocessor: Preprocessor
    genes: list[str]
    classes: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = "diffusion"
    sampler: Any = None

    def eps_fn(self, guidance: float = 1.0):
        """The noise predictor as ``eps(x_t, t, y)``, with classifier-free guidance.

        ``guidance`` w gives eps_uncond + w (eps_cond - eps_uncond): 1 is the plain conditional
        model, larger values push samples further toward the class. Both predictions come from
        one batched forward pass. A calibrated model (the training default) has each
        prediction's mean error on the training data removed first
        (:meth:`~gemdiff.models.gaussian.GaussianDiffusion.calibrate`).
        """
        net, diffusion = self.denoiser, self.diffusion
        if diffusion.calibration is not None:
            raw = net

            def net(x, t, y):
                return raw(x, t, y) - diffusion.output_offset(t, y).to(x.dtype)

        if guidance == 1.0 or self.denoiser.class_emb is None:
            return net

        def guided(x, t, y):
            null = torch.full_like(y, self.denoiser.null_class)
            eps = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
            cond, uncond = eps.chunk(2)
            return uncond + guidance * (cond - uncond)

        return guided

    def data(self):
        """The data the model was trained on: same genes, split, classes and scaling."""
        from gemdiff.data.dataset import prepare_from_checkpoint

        return prepare_from_checkpoint(self.config["data"]["source"], self.genes, self.classes,
                                       self.preprocessor, self.meta["train_ids"],
                                       self.meta["test_ids"], self.meta.get("permuted_labels"))

    def class_index(self, name: str, source: str | None = None) -> int:
        """Index of a class by name; an unknown name is a user error listing the valid ones."""
        if name not in self.classes:
            raise InputError(source, f"has no class {name!r}; its classes are "
                                     f"{', '.join(self.classes)}")
        return self.classes.index(name)


def load_checkpoint(
    path: str | Path, ema: bool = True, map_location: str | torch.device = "cpu"
) -> TrainedModel:
    """Load a gemdiff checkpoint.

    Parameters
    ----------
    path
        A ``.ckpt`` written by ``gemdiff.train``.
    ema
        Use the EMA weights (the default, what sampling should use) rather than the raw ones.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found" if not path.exists() else "is not a file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or foreign file fails in many ways
        raise InputError(path, f"is not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or K.CKPT_SECTION not in ckpt:
        raise InputError(path, "is not a gemdiff checkpoint (no 'gemdiff' section)")
    meta = ckpt[K.CKPT_SECTION]
    kind = meta.get("kind", "diffusion")
    raw = not ema and "current_model_state" in ckpt
    state = ckpt.get("current_model_state" if raw else "state_dict", {})
    denoiser = diffusion = sampler = None
    if kind == "diffusion":
        denoiser = TransformerDenoiser(DenoiserConfig(**meta["denoiser"]))
        denoiser.load_state_dict(_prefixed(state, "denoiser."))
        denoiser.eval()
        diffusion = GaussianDiffusion(**meta["diffusion"])
    elif kind == "gaussian":
        sampler = baselines.GaussianGenerator.from_state(meta["gaussian"])
    elif kind == "wgan":
        generator = baselines.Generator(baselines.WGANConfig(**meta["wgan"]))
        generator.load_state_dict(_prefixed(state, "generator."))
        sampler = baselines.WGANSampler(generator)
    else:
        raise InputError(path, f"holds a model of unknown kind {kind!r}")
    return TrainedModel(
        denoiser=denoiser,
        diffusion=diffusion,
        preprocessor=Preprocessor.from_state_dict(meta["preprocessor"]),
        genes=list(meta["genes"]),
        classes=list(meta["classes"]),
        config=meta.get("config", {}),
        meta={k: v for k, v in meta.items()
              if k not in ("denoiser", "diffusion", "config", "gaussian", "wgan")},
        kind=kind,
        sampler=sampler,
    )


def calibrate_checkpoint(path: str | Path, x, y, rows: int = 640, levels: int = 41,
                         seed: int = 0, shrink: bool = True, progress: bool = False) -> None:
    """Measure a trained diffusion model's mean output error on its training data ``x``, ``y``
    (scaled units) with its EMA weights, and write it into the checkpoint at ``path``
    (atomically), where sampling and perturbation pick it up. See
    :meth:`~gemdiff.models.gaussian.GaussianDiffusion.calibrate`."""
    from gemdiff.callbacks import AtomicCheckpointIO

    path = Path(path)
    model = load_checkpoint(path)
    if model.kind != "diffusion":
        raise ValueError(f"{path} holds a {model.kind} model; only diffusion models calibrate")
    net = model.denoiser
    null = net.null_class if net.class_emb is not None else None
    model.diffusion.calibrate(net, x, y, len(model.classes), null, rows, levels, seed, shrink,
                              progress=progress)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt[K.CKPT_SECTION]["diffusion"] = model.diffusion.config()
    AtomicCheckpointIO().save_checkpoint(ckpt, path)


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
