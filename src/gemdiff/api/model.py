"""The Python API: a GEMDiff model object built from AnnData, a DataFrame or files.

    model = GEMDiff.from_anndata(adata, label_key="phenotype", n_genes=16)
    model.fit(max_steps=3000)
    model.save("breast_model"); model = GEMDiff.load("breast_model")
    synth = model.sample(n_per_class=100)
    moved = model.perturb(new_adata, source="tumor", target="normal")

Training composes the same config tree as ``python -m gemdiff.train`` and runs the same code;
``gemdiff.sample`` and ``gemdiff.perturb`` are shells over :meth:`GEMDiff.sample` and
:meth:`GEMDiff.perturb`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gemdiff.common.devices import resolve_device
from gemdiff.common.errors import GemdiffError, InputError, OutputExistsError
from gemdiff.data.genesets import GeneSelection
from gemdiff.data.io import GEM, as_gem, gem_from_anndata, gem_from_dataframe, read_gemdiff

log = logging.getLogger("gemdiff")
MODEL_FILE = "model.ckpt"
HISTORY_FILE = "loss.tsv"
DATA_KEYS = ("genes", "n_genes", "gmt", "gene_set", "subset_size", "subset_index",
             "exclusive_subsets", "select_by", "input_scale", "nan_policy", "scaling",
             "constant_genes", "classes", "test_size", "train_fraction", "permute_labels",
             "batch_size", "allow_single_sample_classes")
SELECTION_KEYS = ("genes", "n_genes", "gene_set")  # one way of choosing genes at a time
SELECTION_FIELDS = ("genes", "gmt", "gene_set", "subset_size", "subset_index",
                    "exclusive_subsets", "n_genes", "select_by")


def _checked_data_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Data options as the config takes them, checked as the command line checks ``data.*``:
    gene and class lists may be any sequence of names (a list, a numpy array, a pandas Index)."""
    from gemdiff.data.options import check_data_options

    unknown = sorted(set(options) - set(DATA_KEYS))
    if unknown:
        raise GemdiffError(f"unknown data option {unknown[0]!r}; the options are "
                           f"{', '.join(DATA_KEYS)}")
    out = dict(options)
    for key in ("genes", "classes"):
        value = out.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            raise GemdiffError(f"option {key}={value!r}: give a list of names, e.g. [{value!r}]")
        try:
            out[key] = [str(v) for v in np.asarray(list(value), dtype=object).ravel()]
        except TypeError:
            raise GemdiffError(f"option {key}: give a list of names, not "
                               f"{type(value).__name__}") from None
    for key, value in out.items():  # numpy scalars (np.int64(16), np.str_) as plain values
        if isinstance(value, np.generic):
            out[key] = value.item()
    check_data_options(out)
    GeneSelection(**{k: out[k] for k in SELECTION_FIELDS if k in out})  # one way of choosing
    return out


def _describe(data) -> str:
    """Genes and classes with their train/test counts, for a model's repr."""
    summary = data.summary()
    genes = ", ".join(data.genes[:3]) + (", ..." if data.n_genes > 3 else "")
    classes = ", ".join(f"{c} ({summary['train'][c]} train, {summary['test'][c]} test)"
                        for c in data.classes)
    return (f"{data.n_genes} genes ({genes}), classes {classes}, "
            f"input_scale={data.preprocessor.input_scale}")


def _log_warnings(adata) -> None:
    for warning in adata.uns["metrics"].get("warnings", []):
        log.warning(warning)


class GEMDiff:
    """A GEMDiff model of one gene expression matrix with labelled phenotypes.

    Build one from data (:meth:`from_anndata`, :meth:`from_dataframe`, :meth:`from_files`,
    :meth:`from_config`), train it (:meth:`fit`), keep it (:meth:`save`, :meth:`load`) and
    use it: :meth:`sample` draws synthetic expression per phenotype, :meth:`perturb` carries
    samples of one phenotype to another. Results are AnnData in the input's units.

    Data options (keyword arguments of the constructors) are the ``data.*`` keys of the
    config: ``n_genes``, ``genes``, ``gmt`` with ``gene_set`` (and ``subset_index``),
    ``input_scale`` (``auto``, ``log2`` or ``linear``), ``nan_policy``, ``scaling``, ``classes``,
    ``test_size``, ``train_fraction``, ``constant_genes``, ``batch_size``, ...
    """

    def __init__(self, matrix: GEM | None = None, test_matrix: GEM | None = None,
                 data: str = "memory", **data_options: Any):
        self._matrices = (matrix, test_matrix)
        self._data = data
        self._data_options = _checked_data_options(data_options)
        self._prepared = None  # the data as fit will see them, once asked for before training
        self._label_key: str | None = None  # the obs column of the labels (from_anndata)
        self._checkpoint: dict | None = None
        self._model = None  # the TrainedModel, once fitted or loaded
        self.history: pd.DataFrame | None = None  # the loss history of fit
        self.training: dict | None = None  # the training summary of fit

    # ---- data --------------------------------------------------------------------------

    @classmethod
    def from_anndata(cls, adata, label_key: str, layer: str | None = None, *,
                     test_adata=None, **data_options: Any) -> "GEMDiff":
        """From an AnnData (samples x genes; ``X`` or ``layers[layer]``, dense or sparse) with
        labels in ``obs[label_key]``; ``test_adata`` is a separate test split. Genes are
        selected before anything is densified."""
        test = None if test_adata is None else gem_from_anndata(test_adata, label_key, layer,
                                                                "test AnnData")
        model = cls(gem_from_anndata(adata, label_key, layer), test, **data_options)
        model._label_key = label_key  # new samples' labels are read from the same column
        return model

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, labels: pd.Series, *,
                       test_df: pd.DataFrame | None = None, test_labels: pd.Series | None = None,
                       **data_options: Any) -> "GEMDiff":
        """From a samples x genes DataFrame (index: sample ids) and its labels (a Series by
        sample id)."""
        test = None if test_df is None else gem_from_dataframe(test_df, test_labels,
                                                               "test DataFrame")
        return cls(gem_from_dataframe(df, labels), test, **data_options)

    @classmethod
    def from_files(cls, matrix: str | Path, labels: str | Path,
                   test_matrix: str | Path | None = None, test_labels: str | Path | None = None,
                   **data_options: Any) -> "GEMDiff":
        """From GEMDiff-format files: a samples x genes matrix and a ``sample<TAB>label`` file
        (and optionally a test pair)."""
        test = None if test_matrix is None else read_gemdiff(test_matrix, test_labels)
        return cls(read_gemdiff(matrix, labels), test, **data_options)

    @classmethod
    def from_config(cls, data: str = "synthetic", **data_options: Any) -> "GEMDiff":
        """From a dataset config of ``conf/data/`` (``synthetic``, ``breast``, ``kidney``,
        ...), read as ``gemdiff.train data=<data>`` reads it."""
        return cls(None, None, data, **data_options)

    # ---- training ----------------------------------------------------------------------

    def config(self, max_steps: int | None = None, overrides: Sequence[str] = (),
               seed: int = 0, output_dir: str | Path = ".", progress: bool = True):
        """The composed training config: ``conf/train.yaml`` with this model's data, then
        ``overrides`` (any ``key=value`` or ``group=option`` of ``gemdiff.train``)."""
        from omegaconf import open_dict

        from gemdiff.common.config import compose_config

        given = [o.split("=")[0].lstrip("+~") for o in overrides]
        defaults = [f"seed={seed}", f"trainer.enable_progress_bar={str(progress).lower()}"]
        if "logger" not in given:
            defaults.append("logger=none")
        if max_steps is not None:
            defaults.append(f"trainer.max_steps={int(max_steps)}")
        cfg = compose_config([f"data={self._data}", *defaults, *overrides], output_dir)
        with open_dict(cfg):
            if any(k in self._data_options for k in SELECTION_KEYS):
                for key in SELECTION_KEYS:  # the dataset config's own choice gives way
                    cfg.data[key] = None
            for key, value in self._data_options.items():
                cfg.data[key] = list(value) if isinstance(value, (tuple, list)) else value
            if self._matrices[0] is not None:
                gem = self._matrices[0]
                cfg.data.source.description = (f"{gem.source}: {len(gem.samples)} samples x "
                                               f"{len(gem.genes)} genes")
                if self._label_key is not None:
                    cfg.data.source.label_key = self._label_key
        return cfg

    def fit(self, max_steps: int | None = None, *, overrides: Sequence[str] = (),
            seed: int = 0, progress: bool = True, verbose: bool = False,
            output_dir: str | Path | None = None) -> "GEMDiff":
        """Train (GEMDiff by default; ``overrides=["model=gaussian"]`` fits a baseline).
        ``verbose`` shows what the training framework says (accelerator banners, the model
        table, tips), which is left out by default.

        Runs what ``python -m gemdiff.train`` runs, into ``output_dir`` (checkpoints, loss
        history), or into a temporary folder removed afterwards. Returns the model itself.
        """
        import hydra

        from gemdiff.training.checkpoint import read_checkpoint, trained_model
        from gemdiff.training.fit import prepare_run

        with tempfile.TemporaryDirectory(prefix="gemdiff-fit-") as tmp:
            out = Path(output_dir) if output_dir is not None else Path(tmp)
            asked = ["verbose=true"] if verbose else []
            cfg = self.config(max_steps, [*overrides, *asked], seed, out, progress)
            datamodule = None
            if self._matrices[0] is not None:
                # set after instantiation: Hydra would turn the GEM dataclasses into configs
                datamodule = hydra.utils.instantiate(cfg.data)
                datamodule.matrices = self._matrices
            result = prepare_run(cfg, datamodule).fit(out, progress)
            if result.checkpoint is None:
                raise GemdiffError(f"training wrote no checkpoint into {out}")
            self._checkpoint = read_checkpoint(result.checkpoint)
            self._model = trained_model(self._checkpoint, result.checkpoint)
            history = out / HISTORY_FILE
            self.history = pd.read_csv(history, sep="\t") if history.is_file() else None
            self.training = result.to_dict()
        return self

    # ---- keeping -----------------------------------------------------------------------

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the model into folder ``path`` (``model.ckpt``, with the data it was trained
        and tested on, and ``loss.tsv``): :meth:`load` needs nothing else."""
        from gemdiff.common.files import write_table
        from gemdiff.training.checkpoint import save_checkpoint

        self._trained()
        path = Path(path)
        if (path / MODEL_FILE).exists() and not overwrite:
            raise OutputExistsError(path, f"already holds a saved model ({MODEL_FILE}); pass "
                                          "overwrite=True to replace it")
        path.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self._checkpoint, path / MODEL_FILE)
        if self.history is not None:
            write_table(self.history, path / HISTORY_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GEMDiff":
        """A model saved by :meth:`save` (its folder), or a checkpoint of ``gemdiff.train``."""
        from gemdiff.training.checkpoint import read_checkpoint, trained_model

        path = Path(path)
        file = path / MODEL_FILE if path.is_dir() else path
        if path.is_dir() and not file.is_file():
            run = path / "checkpoints" / "last.ckpt"  # a gemdiff.train run folder
            hint = f"; its training checkpoint is {run}" if run.is_file() else ""
            raise InputError(path, f"holds no saved model ({MODEL_FILE}){hint}")
        model = cls()
        model._checkpoint = read_checkpoint(file)
        model._model = trained_model(model._checkpoint, file)
        history = file.parent / HISTORY_FILE
        if path.is_dir() and history.is_file():
            model.history = pd.read_csv(history, sep="\t")
        return model

    # ---- what it is --------------------------------------------------------------------

    def _trained(self):
        if self._model is None:
            raise GemdiffError("the model is not trained yet: call fit() or GEMDiff.load()")
        return self._model

    def _untrained_data(self):
        """The data as :meth:`fit` with its defaults will prepare them (genes, classes, split),
        read once and kept."""
        if self._prepared is None:
            import hydra

            cfg = self.config(progress=False)
            datamodule = hydra.utils.instantiate(cfg.data)
            if self._matrices[0] is not None:
                datamodule.matrices = self._matrices
            self._prepared = (datamodule.prepare(), cfg)
        return self._prepared

    @property
    def genes(self) -> list[str]:
        """The genes the model is (or, before :meth:`fit`, will be) trained on."""
        if self._model is None:
            return list(self._untrained_data()[0].genes)
        return list(self._trained().genes)

    @property
    def classes(self) -> list[str]:
        """The phenotypes, in the model's order (before :meth:`fit`, as it will see them)."""
        if self._model is None:
            return list(self._untrained_data()[0].classes)
        return list(self._trained().classes)

    @property
    def class_counts(self) -> dict[str, dict[str, int]]:
        """Samples per class in the training and test splits (``{"train": {...}, "test":
        {...}}``), before training as :meth:`fit` will split them with its default seed."""
        data = self._untrained_data()[0] if self._model is None else self._trained().data()
        summary = data.summary()
        return {"train": summary["train"], "test": summary["test"]}

    @property
    def kind(self) -> str:
        """The kind of generator: ``diffusion`` (GEMDiff), ``gaussian``, ``copula`` or ``wgan``."""
        return self._trained().kind

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved config the model was trained with (as ``gemdiff.train`` saw it); before
        :meth:`fit`, the config it will train with by default, ``data.input_scale`` as read."""
        if self._model is None:
            from omegaconf import OmegaConf, open_dict

            data, cfg = self._untrained_data()
            with open_dict(cfg):
                cfg.data.input_scale = data.preprocessor.input_scale
            out = OmegaConf.to_container(cfg, resolve=True)
            out["data"].pop("matrix", None), out["data"].pop("test_matrix", None)
            return out
        return dict(self._trained().config)

    @property
    def global_step(self) -> int:
        """Optimizer steps the model was trained for (0 for a closed-form baseline)."""
        self._trained()
        return int(self._checkpoint.get("global_step", 0))

    def __repr__(self) -> str:
        if self._model is None:
            try:
                data = self._untrained_data()[0]
            except GemdiffError as err:
                return f"GEMDiff(untrained, data={self._data!r}: {err})"
            return f"GEMDiff(untrained, {_describe(data)})"
        m = self._model
        return f"GEMDiff({m.kind}, {_describe(m.data())})"

    def reference(self):
        """The samples the model was trained and tested on, as AnnData in input units
        (``obs["split"]``: train or test)."""
        import anndata

        data = self._trained().data()
        x = np.concatenate([data.x_train, data.x_test])
        y = np.concatenate([data.y_train, data.y_test])
        obs = pd.DataFrame({"label": pd.Categorical([data.classes[i] for i in y],
                                                    categories=data.classes),
                            "split": ["train"] * len(data.y_train) + ["test"] * len(data.y_test)},
                           index=pd.Index(data.train_ids + data.test_ids, dtype=str))
        return anndata.AnnData(X=data.preprocessor.inverse_transform(x), obs=obs,
                               var=pd.DataFrame(index=pd.Index(data.genes, dtype=str)))

    def _provenance(self, command: str, **options: Any) -> dict[str, Any]:
        import gemdiff

        m = self._trained()
        return {"command": command, "gemdiff_version": gemdiff.__version__, "model": m.kind,
                "checkpoint": m.source, "n_genes": len(m.genes), "classes": list(m.classes),
                "input_scale": m.preprocessor.input_scale,
                **{k: v for k, v in options.items() if v is not None}}

    # ---- using -------------------------------------------------------------------------

    def sample(self, n_per_class: int | Mapping[str, int] | None = None, *,
               sampler: str = "ddpm", ddim_steps: int | None = None, guidance: float = 1.0,
               seed: int = 0, batch_size: int = 4096, metrics: bool = True, umap: bool = True,
               progress: bool = False, device: str = "auto", precision: str = "32"):
        """Synthetic expression per class (augmentation), as AnnData in input units.

        ``n_per_class``: samples of every class (or a number per class name); None draws the
        test split's class counts. ``sampler`` (``ddpm``, ``dpm2`` or ``ddim``; see
        :class:`~gemdiff.models.generators.SampleOptions`), ``ddim_steps`` (None: the
        sampler's default) and ``guidance`` concern diffusion models, which sample on
        ``device`` (``auto``: a CUDA GPU where there is one, else the CPU; ``cpu``, ``cuda``,
        ``cuda:N``) in ``precision`` (``32``, or ``bf16`` autocast of the network). With
        ``metrics``, ``uns["metrics"]`` scores the samples against the real test split; with
        ``umap``, ``obsm["X_umap"]`` embeds them with it.
        """
        from gemdiff.models.generators import SampleOptions
        from gemdiff.tools.results import synthetic_result
        from gemdiff.tools.sampling import labels_to_generate, sample_scaled

        model = self._trained()
        data = model.data()
        options = SampleOptions(sampler, ddim_steps, guidance, batch_size, progress, device,
                                precision)
        labels = labels_to_generate(model.classes, data.y_test, n_per_class)
        synth = sample_scaled(model, labels, seed, options)
        described = model.generator.describe_sampling(options)
        adata = synthetic_result(data, synth, labels, seed, metrics, umap,
                                 self._provenance("sample", seed=seed, **described),
                                 device=device)
        if metrics:
            adata.uns["metrics"] |= {"model": model.kind, **described}
            _log_warnings(adata)
        return adata

    def score(self, synthetic, seed: int = 0, device: str = "auto") -> dict[str, Any]:
        """The augmentation metrics of synthetic samples (an AnnData with ``obs["label"]``, in
        input units, such as :meth:`sample` returns) against the model's real data (the MMDs
        on ``device``)."""
        from gemdiff.tools.results import synthetic_result

        model = self._trained()
        data = model.data()
        gem = as_gem(synthetic, label_key="label")
        missing = [g for g in model.genes if g not in set(gem.genes)]
        if missing:
            raise InputError(gem.source, f"lacks {len(missing)} of the model's "
                                         f"{len(model.genes)} genes, e.g. {missing[0]!r}")
        y = np.array([model.class_index(c, gem.source) for c in gem.labels], dtype=np.int64)
        # in the units the model writes (for counts: already normalised, not normalised again)
        x = model.preprocessor.transform(gem.take_genes(model.genes).values, gem.source)
        return dict(synthetic_result(data, x, y, seed, umap=False, bounded=False,
                                     device=device).uns["metrics"])

    def perturb(self, samples=None, source: str | None = None, target: str | None = None, *,
                label_key: str | None = None, layer: str | None = None, labels=None,
                split: str = "test", map: str | Any = "bridge", ddim_steps: int = 25,
                t_end: int = 990, guidance: float = 1.0, cycle_samples: int | None = 64,
                solver: str = "dpm2", spacing: str = "logsnr",
                core_k: float = 1.0, seed: int = 0, beside: str | None = "entropic_ot",
                metrics: bool = True, umap: bool = True, trajectory: int = 0,
                progress: bool = False, device: str = "auto", precision: str = "32"):
        """Carry samples of phenotype ``source`` to ``target`` and score the genes that move.

        ``samples``: new samples (an AnnData, a samples x genes DataFrame or a file; genes
        matched by name) or None for the model's own ``split`` (test, train or all). Where
        the samples carry labels (``label_key`` of an AnnData, by default the model's own label
        column where it has one; ``labels`` of a DataFrame or a file) only those of ``source``
        are moved; else all of them, with a warning where the real data's classifier calls some
        ``target`` already. Samples the model was trained on are named in a warning and in
        ``uns["gemdiff"]["samples_seen_in_training"]``. ``map``: ``bridge``
        (GEMDiff's Algorithm 1: ``ddim_steps``, ``t_end``, ``guidance``, ``solver`` and
        ``spacing``, by default 25 second-order steps each way on levels even in log-SNR,
        which match the paper's 250 DDIM steps; its cycle check on
        ``cycle_samples`` of the samples, None for all), ``mean_shift`` or
        ``ot``. Returns AnnData: the moved samples in ``X``, the originals in
        ``layers["original"]``, per-gene scores in ``var`` (``core`` above mean + ``core_k``
        SD), metrics in ``uns``; ``trajectory`` records that many bridge states per direction.
        ``beside`` names a second map (default ``entropic_ot``, which carries held-out samples
        closer to the real target than the bridge on most data: docs/model.md) whose gene
        scores stand beside the first's in ``var`` (``score_<map>``, ``z_<map>``,
        ``core_<map>``), with their agreement in the metrics; None: the first map alone.
        The bridge and the metrics' MMDs run on ``device`` (``auto``: a CUDA GPU where there is
        one), the bridge's network in ``precision`` (``32`` or ``bf16``), as in :meth:`sample`.
        """
        from gemdiff.tools.results import perturbation_result

        model = self._trained()
        src, tgt = self._source_target(source, target)
        if beside not in (None, "none"):
            _perturbation_map(beside)  # a wrong name fails before the first map runs
        data = model.data()
        checks: dict[str, Any] = {}
        if samples is None:
            x, ids, x_target, target_ids, x_ref = _split_samples(data, split, src, tgt)
        else:
            x, ids, checks = self._new_samples(samples, src, tgt, label_key, layer, labels)
            x_target, x_ref = data.x_test[data.y_test == tgt], data.x_train[data.y_train == tgt]
            target_ids = [i for i, y in zip(data.test_ids, data.y_test, strict=True) if y == tgt]
        said = checks.pop("warnings", [])
        moving = _perturbation_map(map, ddim_steps=ddim_steps, t_end=t_end, guidance=guidance,
                                   cycle_samples=cycle_samples, solver=solver, spacing=spacing,
                                   device=device, precision=str(precision))
        res = moving.apply(model, x, src, tgt, record=trajectory, progress=progress)
        options = {"map": moving.name, "source": model.classes[src], "target": model.classes[tgt],
                   "split": split if samples is None else "given samples", "seed": seed,
                   **dataclasses.asdict(moving)}
        if "device" in options:  # the device it ran on, not "auto"
            options["device"] = str(resolve_device(options["device"]))
        adata = perturbation_result(data, res, ids, src, tgt, x_target, x_ref, core_k, seed,
                                    metrics, umap, self._provenance("perturb", **options),
                                    device=getattr(moving, "device", device),
                                    target_ids=target_ids)
        if beside not in (None, "none", moving.name):
            checks |= _scores_beside(adata, model, beside, x, src, tgt, core_k)
        adata.uns["gemdiff"] |= checks
        if metrics:
            adata.uns["metrics"] |= options | {"core_k": core_k} | checks
            adata.uns["metrics"]["warnings"] = [*said, *adata.uns["metrics"]["warnings"]]
            _log_warnings(adata)
        else:
            for warning in said:
                log.warning(warning)
        return adata

    def with_reference(self, result):
        """A result of :meth:`sample` or :meth:`perturb` (made with ``umap=True``) joined with
        the real samples it was embedded with, so that ``scanpy.pl.umap(joined,
        color=["label", "origin"])`` draws them together: the real samples first
        (``obs["origin"]`` ``real``), then the result's (``synthetic`` or ``perturbed``) and,
        for a perturbation, its samples before they moved (``original``; ids suffixed
        ``:original``). ``X`` in input units, ``obsm["X_umap"]`` for every row."""
        import anndata

        ref = result.uns.get("umap_reference")
        if ref is None or "ids" not in ref:
            raise GemdiffError("the result holds no embedding with its reference samples' ids: "
                               "make it with umap=True (results of an older gemdiff lack the ids)")
        real = self.reference()[list(ref["ids"])]
        moved = "original" in result.layers
        parts = [_rows(real.X, real.obs_names, real.obs["label"], "real", ref["X_umap"]),
                 _rows(result.X, result.obs_names, result.obs["label"],
                       "perturbed" if moved else "synthetic", result.obsm["X_umap"])]
        if moved:
            parts.append(_rows(result.layers["original"], result.obs_names + ":original",
                               result.obs["original_label"], "original",
                               result.obsm["X_umap_original"]))
        joined = anndata.concat(parts)
        joined.var_names = result.var_names
        for key in ("label", "origin"):
            joined.obs[key] = joined.obs[key].astype("category")
        return joined

    def _label_column(self) -> str | None:
        """The obs column the model's own labels came from (an AnnData, or ``data=h5ad``)."""
        source = self._trained().config.get("data", {}).get("source", {})
        return source.get("label_key") if source.get("format") in ("memory", "h5ad") else None

    def _source_target(self, source: str | None, target: str | None) -> tuple[int, int]:
        model = self._trained()
        if source is None:
            raise GemdiffError(f"give source=, the class to move (one of "
                               f"{', '.join(model.classes)})")
        src = model.class_index(source)
        if target is None:
            others = [c for c in model.classes if c != source]
            if len(others) != 1:
                raise GemdiffError(f"give target=, one of {', '.join(others)}")
            target = others[0]
        tgt = model.class_index(target)
        if src == tgt:
            raise GemdiffError(f"source and target are both {source!r}")
        return src, tgt

    def _new_samples(self, samples, src: int, tgt: int, label_key: str | None,
                     layer: str | None, labels) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        """The model's genes of new samples (those labelled ``source`` where they carry
        labels), scaled as the model's data, and what was checked about them: labels read
        from the model's own label column where an AnnData has it, the samples already called
        ``target`` where none are given, and samples the model was trained on."""
        model = self._trained()
        source, target = model.classes[src], model.classes[tgt]
        checks: dict[str, Any] = {"warnings": []}
        if label_key is None and labels is None:
            label_key = _model_labels_in(samples, self._label_column())
            if label_key is not None:
                log.info("labels of the samples: obs[%r], the model's label column", label_key)
                checks["samples_label_key"] = label_key
        gem = as_gem(samples, labels, label_key, layer)
        present = set(gem.genes)
        missing = [g for g in model.genes if g not in present]
        if missing:
            raise InputError(gem.source, f"lacks {len(missing)} of the model's "
                                         f"{len(model.genes)} genes, e.g. {missing[0]!r}")
        if gem.labels is not None:
            rows = np.flatnonzero(gem.labels == source)
            if not len(rows):
                raise InputError(gem.source, f"has no sample labelled {source!r} (its labels "
                                             f"are {', '.join(gem.classes)})")
            gem = gem.take_samples(rows)
        if not gem.samples:
            raise InputError(gem.source, "holds no samples")
        x = model.preprocessor.transform_gem(gem, model.genes)
        if gem.labels is None:
            checks |= _called_target(model.data(), x, target, tgt)
            n = checks["unlabelled_called_target"]
            if n:
                checks["warnings"].append(
                    f"the {len(x)} samples came without labels and were all moved as {source}, "
                    f"but a classifier of the real data calls {n} of them "
                    f"({checks['unlabelled_called_target_share']:.0%}) {target} already: give "
                    f"their labels (label_key= / samples_label_key=) to move only the {source} "
                    "samples")
        seen = sorted(set(gem.samples) & set(model.data().all_train_ids))
        if seen:
            checks["samples_seen_in_training"] = seen
            checks["warnings"].append(
                f"{len(seen)} of the {len(gem.samples)} samples ({', '.join(seen[:3])}"
                f"{', ...' if len(seen) > 3 else ''}) are samples the model was trained on: "
                "their moves and scores are not those of unseen samples")
        return x, list(gem.samples), checks


def _scores_beside(adata, model, name: str, x: np.ndarray, src: int, tgt: int,
                   core_k: float) -> dict[str, Any]:
    """Gene scores of a second map on the same samples, as ``var`` columns suffixed with its
    name, and how they agree with the first map's (core genes shared, Spearman of scores)."""
    from scipy.stats import spearmanr

    from gemdiff.tools.gene_scores import gene_scores

    res = _perturbation_map(name).apply(model, x, src, tgt)
    scores = gene_scores(model.preprocessor, model.genes, res.x_source, res.x_moved,
                         core_k).set_index("gene").loc[list(adata.var_names)]
    for column in ("score", "z", "mean_change_log2", "core"):
        adata.var[f"{column}_{name}"] = scores[column].to_numpy()
    shared = int((adata.var["core"] & adata.var[f"core_{name}"]).sum())
    rho = spearmanr(adata.var["score"], adata.var[f"score_{name}"])[0]
    return {"beside": name, f"n_core_{name}": int(adata.var[f"core_{name}"].sum()),
            f"core_shared_{name}": shared,
            f"score_spearman_{name}": float(rho) if np.isfinite(rho) else None}


def _rows(x, ids, labels, origin: str, emb):
    """An AnnData of rows for :meth:`GEMDiff.with_reference`."""
    import anndata

    obs = pd.DataFrame({"label": np.asarray(labels, dtype=str), "origin": origin},
                       index=pd.Index(list(ids), dtype=str))
    return anndata.AnnData(X=np.asarray(x, dtype=np.float64), obs=obs,
                           obsm={"X_umap": np.asarray(emb, dtype=np.float64)})


def _model_labels_in(samples, key: str | None) -> str | None:
    """``key`` where ``samples`` (an AnnData or a ``.h5ad`` file) have that obs column."""
    if key is None:
        return None
    obs = getattr(samples, "obs", None)
    if isinstance(samples, (str, Path)) and str(samples).endswith(".h5ad"):
        import anndata

        try:
            backed = anndata.read_h5ad(samples, backed="r")  # the obs only; X stays on disk
        except Exception:  # not readable: the reader names the file and the problem
            return None
        obs = backed.obs
        backed.file.close()
    return key if obs is not None and key in obs.columns else None


def _called_target(data, x: np.ndarray, target: str, tgt: int) -> dict[str, Any]:
    """How many of the unlabelled samples ``x`` the paper's classifier of the real training
    data already calls ``target``."""
    from gemdiff.evaluation.metrics import fit_svm
    from gemdiff.tools.results import bounded_train

    called = fit_svm(*bounded_train(data)).predict(x) == tgt
    return {"unlabelled_called_target": int(called.sum()),
            "unlabelled_called_target_share": float(called.mean())}


def _split_samples(data, split: str, src: int, tgt: int):
    """Source samples of the model's own split, their ids, real target samples of the same
    split with their ids, and those of the other split (the baseline between two real
    samples)."""
    from gemdiff.tools.perturbation import split_samples

    x, y, ids, x_o, y_o = split_samples(data, split)
    rows = np.flatnonzero(y == src)
    if not len(rows):
        raise GemdiffError(f"the {split} split has no {data.classes[src]!r} samples")
    target = np.flatnonzero(y == tgt)
    return (x[rows], [ids[i] for i in rows], x[target], [ids[i] for i in target],
            x_o[y_o == tgt])


def _perturbation_map(how, **params: Any):
    """A map object, or the map of that name built with the parameters it takes."""
    from gemdiff.tools.perturbation import MAPS

    if not isinstance(how, str):
        return how
    if how not in MAPS:
        raise GemdiffError(f"map={how!r} is not one of {', '.join(MAPS)}")
    cls = MAPS[how]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in params.items() if k in names})
