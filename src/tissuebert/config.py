"""Configuration: one pydantic model per concern, YAML presets shipped in the package.

The same models drive the YAML files, the ``--set section.key=value`` overrides and the config
saved beside every output and inside every checkpoint. Validation happens here, in one place,
and every error names the offending key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tissuebert.errors import ConfigError

PRESETS = ("paper", "tiny")
VERSION_KEY = "tissuebert_version"  # heads every config.yaml a command writes


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """How training examples are drawn from the store."""

    min_cpgs: int = Field(1, ge=1, description="A read is an example for a window only if it has at least this many CpG calls inside the window.")
    cpg_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Fraction of CpG calls set to 'no call' (2) in training batches only.")
    val_reads_per_sample: int = Field(2000, ge=1, description="Reads per validation sample in the fixed, deterministic validation set (all reads if the sample has fewer).")
    in_memory: bool | None = Field(None, description="Load sample arrays into RAM (true), memory-map them (false), or decide from their size and free memory (null).")


class ModelConfig(_Section):
    """Shape of the TissueBERT encoder."""

    n_layers: int = Field(6, ge=1, description="Number of pre-norm transformer encoder layers.")
    hidden: int = Field(512, ge=8, description="Hidden size (embedding width) of every token.")
    n_heads: int = Field(8, ge=1, description="Attention heads per layer; must divide hidden.")
    ffn: int = Field(2048, ge=8, description="Width of the feed-forward block inside each layer.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on attention output, FFN output and the classification head.")
    head_hidden: int = Field(512, ge=1, description="Width of the hidden layer of the Linear-GELU-Dropout-Linear head.")
    pooling: Literal["cpg", "mean", "attention"] = Field("cpg", description="How token states become one read vector: mean over the tokens with a CpG call ('cpg'), over all tokens ('mean', the design's original choice: ~8 of 148 tokens carry a call, so it dilutes them), or a learned attention weighting ('attention'). docs/training.md has the ablation.")
    cpg_embedding_dim: int = Field(0, ge=0, description="Width of a learned vector per (panel CpG, call) added at every called CpG token (projected to model.hidden when narrower); 0 = none. Binds the model to its panel, as the panel hash already does.")
    cpg_logits: bool = Field(False, description="Add a learned logit vector per (panel CpG, call), summed over the read's calls, to the head's output: the logistic regression's features as a direct route, the encoder learns the rest.")
    joint_tokens: bool = Field(False, description="Also add a learned vector per (3-mer, call) pair to each token (an ablation of the design's sum of separate DNA and methylation embeddings; docs/training.md).")
    fragment_states: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(0, description="K >= 2 adds the fragment-state head: the read's evidence for each of K methylation states (a per-(panel CpG, call) emission table plus the encoder's per-token correction) mixed by a learned per-(window, tissue) state distribution (U / X / M fragments for K = 3); 0 = none; 'auto' = with train.state_source = split, fit the atlas at K = 2, 3, 5 and 8 before the model is built and keep the K whose fit deconvolves pseudo-mixtures of the validation reads best (the run's config.yaml and checkpoints hold the K chosen: docs/training.md, \"How many states\"). Binds the model to its panel.")
    state_emissions: Literal["shared", "tissue"] = Field("shared", description="Emission tables of the fragment-state head (model.fragment_states): 'shared' = a state methylates a CpG at one rate in every tissue (the tissue sets only how often the state occurs); 'tissue' = each tissue its own rate, fitted shrunk towards the shared one (train.state_tissue_prior), for tissues whose versions of a block differ within a state (cell subtypes). docs/training.md has the comparison.")
    cpg_counts: bool = Field(False, description="Add the count route: each tissue's log-likelihood of the read's calls from a running tally of the training reads' (panel CpG, call, tissue) counts (naive Bayes, shrunk towards the CpG's rate over all tissues), times a learned scale. The tally is a buffer saved with the weights. Binds the model to its panel.")
    count_prior: float = Field(8.0, gt=0.0, description="Prior strength of the count route, in reads: how far a (CpG, tissue) frequency is shrunk towards the CpG's rate over all tissues.")
    count_features: bool = Field(False, description="Also give each called CpG token the count route's evidence (log p(call | CpG, tissue), centred over the tissues) through a learned projection, so the encoder can learn how a read's CpGs go together (needs model.cpg_counts).")
    count_weights: bool = Field(False, description="Let the encoder weigh each called token's counted evidence (2 sigmoid of a zero-initialised projection of the token's final state: 1 = plain naive Bayes), so that calls that go together on one fragment can count less than their number (needs model.cpg_counts).")
    head_logits: bool = Field(True, description="Add the pooled head's own logits; false leaves the encoder acting only through the count route's per-call weights (needs model.count_weights; an ablation, docs/training.md).")
    call_head: bool = Field(False, description="Add a Linear from each token's final state to its methylation call (U / M), for the masked-call objective (train.mask_weight, train.pretrain_steps): hide a share of a read's calls and predict them from the rest of the read.")
    attention: Literal["auto", "sdpa", "math"] = Field("auto", description="Attention kernel: scaled_dot_product_attention ('sdpa'), explicit matmul-softmax-matmul ('math'), or 'auto' (SDPA on GPU and for CPU inference; math for CPU training, where it is faster with attention dropout).")

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.hidden % self.n_heads:
            raise ValueError(f"model.hidden ({self.hidden}) must be divisible by model.n_heads ({self.n_heads})")
        if self.fragment_states == 1:
            raise ValueError("model.fragment_states must be 0 (off) or >= 2 states")
        if self.state_emissions == "tissue" and not self.fragment_states:
            raise ValueError("model.state_emissions = tissue needs the fragment-state head: set model.fragment_states >= 2 "
                             "(or model.state_emissions = shared)")
        return self


class TrainConfig(_Section):
    """Optimisation, schedule, precision, checkpointing and logging."""

    epochs: int = Field(50, ge=1, description="Number of epochs.")
    steps_per_epoch: int | None = Field(None, ge=1, description="Optimizer steps per epoch; null = one pass over the training reads, capped at 5000.")
    batch_size: int = Field(128, ge=1, description="Reads per micro-batch (per rank).")
    accum_steps: int = Field(4, ge=1, description="Micro-batches accumulated per optimizer step.")
    max_lr: float = Field(4e-4, gt=0, description="Peak learning rate of the one-cycle schedule.")
    warmup_frac: float = Field(0.1, gt=0, lt=1, description="Fraction of all optimizer steps spent warming up.")
    panel_lr: float | None = Field(None, gt=0, description="Peak learning rate of the model's per-(panel CpG, call) tables; null = max(max_lr, 2 x panel windows / training reads), the rule the read-level logistic regression measured (train/optim.py).")
    div_factor: float = Field(25.0, gt=1, description="Initial LR = max_lr / div_factor.")
    final_div_factor: float = Field(400.0, gt=1, description="Final LR = initial LR / final_div_factor.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases, norms, embeddings).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    mask_prob: float = Field(0.15, gt=0, lt=1, description="Masked-call objective: share of a training read's calls hidden (set to 'no call') and predicted by model.call_head.")
    mask_weight: float = Field(0.0, ge=0, description="Weight of the masked-call loss beside the classification loss after train.pretrain_steps (0 = the classifier sees whole reads; > 0 needs model.call_head).")
    pretrain_steps: int = Field(0, ge=0, description="The first N optimizer steps train the masked-call loss only (masked-methylation pre-training on the training reads; > 0 needs model.call_head).")
    count_source: Literal["stream", "split"] = Field("split", description="What the count route (model.cpg_counts) counts: 'split' = every eligible read of the training split, counted before step 0 as an atlas is (each training read's own calls are left out of its evidence; docs/training.md); 'stream' = only the reads the training loop has drawn so far (each counted after its own forward pass).")
    state_source: Literal["learned", "split"] = Field("learned", description="Where the fragment-state head (model.fragment_states) starts: 'learned' = the evenly spaced states and uniform shares it is built with; 'split' = an atlas fitted by EM on every eligible training read before step 0 and kept fixed (its tables are not trained; the encoder's per-token correction is: data/state_atlas.py, docs/training.md).")
    state_tissue_prior: float | Literal["auto"] = Field("auto", description="With model.state_emissions = tissue and train.state_source = split: how many pseudo-calls shrink each tissue's emission rate towards the shared one (a number > 0), or 'auto' = fit shared emissions and per-tissue ones at 100 pseudo-calls and keep the fit that deconvolves pseudo-mixtures of the validation reads better (shared emissions when they win: docs/training.md).")
    grad_clip: float = Field(1.0, gt=0, description="Clip the global gradient norm to this value.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Compute precision: fp32, bf16 autocast, or fp16 autocast with a GradScaler.")
    seed: int = Field(42, description="Seed of every random stream (sampler, dropout, init).")
    deterministic: bool = Field(False, description="Use deterministic kernels (bit-identical reruns, slower on GPU).")
    checkpoint_every: int = Field(5, ge=1, description="Write epoch_NNNN.pt every this many epochs.")
    max_resumes: int = Field(5, ge=1, description="Refuse a resume once this many resumes in a row started from the same global step (the run never got further); --set on resume changes it.")
    max_nonfinite: int = Field(20, ge=1, description="Stop (with a checkpoint, exit 2) after this many skipped steps in a row, counted across epochs and resumes; --set on resume changes it.")
    max_skipped_frac: float = Field(0.1, ge=0, le=1, description="Also stop once more than max_nonfinite steps were skipped in total and they exceed this fraction of all steps run; --set on resume changes it.")
    spike_factor: float | None = Field(100.0, gt=1, description="Skip (and count) a step whose loss or pre-clip gradient norm exceeds this many times the running average of accepted steps (from the 10th on); null = skip non-finite steps only.")
    log_every: int = Field(100, ge=1, description="Write a steps.csv row every this many optimizer steps.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; null = torch's default.")


class EvalConfig(_Section):
    """Evaluation, prediction and deconvolution."""

    batch_size: int = Field(256, ge=1, description="Reads per inference batch.")
    ece_bins: int = Field(15, ge=2, description="Bins of the expected calibration error and reliability diagram.")
    em_max_iter: int = Field(1000, ge=1, description="Maximum EM iterations of the mixture deconvolution.")
    em_tol: float = Field(1e-8, gt=0, description="EM stops when no proportion changes by more than this.")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for the proportions' confidence intervals (0 = none).")
    ci_level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the bootstrap intervals.")


class Config(_Section):
    """The whole resolved configuration."""

    preset: str = Field("tiny", description="Name of the preset this config started from.")
    data: DataConfig = Field(default_factory=DataConfig, description="Training examples.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model shape.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training loop.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation and deconvolution.")

    @model_validator(mode="after")
    def _masking_needs_head(self) -> "Config":
        if self.train.state_source == "split" and not self.model.fragment_states:
            raise ValueError("train.state_source = split fits the fragment-state head: set model.fragment_states "
                             "(e.g. 3)")
        if self.model.fragment_states == "auto" and self.train.state_source != "split":
            raise ValueError("model.fragment_states = auto chooses K by fitting the fragment-state atlas to the training "
                             "split: set train.state_source = split, or give model.fragment_states a number (e.g. 3)")
        if self.train.state_tissue_prior != "auto" and not self.train.state_tissue_prior > 0:
            raise ValueError(f"train.state_tissue_prior must be 'auto' or a number of pseudo-calls > 0, got "
                             f"{self.train.state_tissue_prior}")
        if (self.train.mask_weight > 0 or self.train.pretrain_steps > 0) and not self.model.call_head:
            raise ValueError("train.mask_weight > 0 or train.pretrain_steps > 0 needs model.call_head = true "
                             "(the masked calls are predicted by it)")
        return self


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {problem}", path=source) from None
    if not isinstance(data, dict):
        raise ConfigError("a config file must hold a mapping of sections (data, model, train, eval)", path=source)
    return data


def preset_dict(name: str) -> dict[str, Any]:
    """The raw mapping of a shipped preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    text = resources.files("tissuebert.presets").joinpath(f"{name}.yaml").read_text()
    data = _read_yaml(text, f"preset {name}")
    data["preset"] = name
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r} must look like section.key=value, e.g. train.epochs=3")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set key {key!r} must be section.key, e.g. train.max_lr")
    value = yaml.safe_load(raw) if raw.strip() else None
    return parts, value


def _check_known(data: dict[str, Any], source: str) -> None:
    """Name an unknown section or key before pydantic does, with the valid choices."""
    sections = {k: v for k, v in Config.model_fields.items() if k != "preset"}
    for sec, body in data.items():
        if sec == "preset":
            continue
        if sec not in sections:
            raise ConfigError(f"unknown config section {sec!r}; valid sections: {', '.join(sections)}", path=source)
        if not isinstance(body, dict):
            raise ConfigError(f"config section {sec!r} must be a mapping", path=source)
        model_cls = sections[sec].annotation
        for key in body:
            if key not in model_cls.model_fields:
                valid = ", ".join(model_cls.model_fields)
                raise ConfigError(f"unknown config key {sec}.{key}; valid keys of {sec}: {valid}", path=source)


def _validate(data: dict[str, Any], source: str) -> Config:
    data = {k: v for k, v in data.items() if k != VERSION_KEY}  # provenance written by dump_config
    _check_known(data, source)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        msg = err["msg"].removeprefix("Value error, ")
        if len(err["loc"]) < 2:  # a check across keys: the message names them
            raise ConfigError(msg, path=source) from None
        field = err["loc"][:2]
        # a key of several types (a number or 'auto') fails once per type, each with its tag in loc
        alternatives = [e["msg"] for e in errors if e["loc"][:2] == field]
        if len(err["loc"]) > 2 and len(alternatives) > 1:
            msg = " or ".join(dict.fromkeys(a.removeprefix("Input should be ") for a in alternatives))
            msg = f"Input should be {msg}"
        else:
            field = err["loc"]
        key = ".".join(str(p) for p in field)
        raise ConfigError(f"{key}: {msg} (got {err.get('input')!r})", path=source) from None


def load_config(preset: str | None = "tiny", config_file: str | Path | None = None,
                overrides: list[str] | None = None) -> Config:
    """Resolve a config: preset, then a YAML file, then ``section.key=value`` overrides."""
    data: dict[str, Any] = {}
    source = "config"
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError("config file not found", path=path)
        file_data = _read_yaml(path.read_text(), str(path))
        file_data.pop(VERSION_KEY, None)  # written by dump_config for provenance; not a setting
        base = file_data.get("preset", preset or "tiny")
        data = _merge(preset_dict(base), file_data)
        source = str(path)
    else:
        data = preset_dict(preset or "tiny")
    _check_known(data, source)
    for item in overrides or []:
        parts, value = _parse_override(item)
        _check_known({parts[0]: {parts[1]: value}}, "--set")
        data = _merge(data, {parts[0]: {parts[1]: value}})
        source = f"--set {item}"
    return _validate(data, source)


def config_from_dict(data: dict[str, Any], source: str = "checkpoint") -> Config:
    """Rebuild a Config saved with :func:`config_to_dict` (e.g. from a checkpoint)."""
    return _validate(data, source)


def config_to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically, headed by the package version that wrote it
    (``tissuebert_version``; :func:`load_config` ignores it)."""
    from tissuebert import __version__
    from tissuebert.atomic import atomic_write_text

    data = {VERSION_KEY: __version__, **config_to_dict(config)}
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
