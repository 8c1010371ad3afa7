"""model.fragment_states = auto: the number of states chosen by the validation mixture error before
the model is built (train/setup.py: resolve_fragment_states, train/atlas_choice.py: choose_states),
and carried as a number by everything after it (config.yaml, checkpoints, resume, --init-from)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.support.trainhelpers import FAST, sets
from tissuebert.config import load_config
from tissuebert.data.sampler import TrainSampler
from tissuebert.data.state_atlas import atlas_tissue_loglik, fit_state_atlas, split_reads
from tissuebert.errors import ConfigError
from tissuebert.model.tissuebert import build_model
from tissuebert.testing.synthetic import build_marker_store
from tissuebert.train.atlas_choice import STATE_CANDIDATES, choose_states, mixture_error
from tissuebert.train.setup import AUTO_FALLBACK_STATES, resolve_fragment_states

AUTO = ["model.fragment_states=auto", "train.state_source=split"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # windows whose tissues differ in methylation level: states matter, and how many is not obvious
    beta = np.array([[0.9, 0.2, 0.5, 0.1, 0.7], [0.1, 0.8, 0.5, 0.9, 0.3], [0.5, 0.5, 0.1, 0.6, 0.9]])  # (T, W)
    return build_marker_store(tmp_path_factory.mktemp("auto") / "s", tissues=("a", "b", "c"), n_windows=5,
                              reads_per_sample=80, beta=beta, seed=7)


def _config(*extra: str):
    return load_config("tiny", overrides=[*FAST, *AUTO, *extra])


def test_choose_states_keeps_the_smallest_mixture_error_over_every_k_and_emission(store):
    train, val = TrainSampler(store), TrainSampler(store, split="val")
    choice = choose_states(train, val, (2, 3, 4), emissions=(None, 100.0), iterations=10)
    assert set(choice.scores) == {(k, a) for k in (2, 3, 4) for a in (None, 100.0)}
    errors = {key: err for key, (err, _) in choice.scores.items()}
    assert errors[(choice.n_states, choice.prior)] == min(errors.values())
    # the fit handed back is the fit that was scored: refit and rescore it independently
    test = split_reads(val)
    shared = fit_state_atlas(train, choice.n_states, iterations=10, reads=split_reads(train))
    theta, pi = shared if choice.prior is None else fit_state_atlas(
        train, choice.n_states, iterations=5, tissue_prior=choice.prior, start=shared)
    np.testing.assert_array_equal(choice.theta, theta)
    np.testing.assert_array_equal(choice.pi, pi)
    assert choice.pi.shape == (store.panel.n_windows, 3, choice.n_states)
    assert mixture_error(atlas_tissue_loglik(theta, pi, test), test, 3) == pytest.approx(errors[(choice.n_states,
                                                                                                   choice.prior)])


def test_choose_states_scores_only_the_emissions_asked_for(store):
    train, val = TrainSampler(store), TrainSampler(store, split="val")
    shared_only = choose_states(train, val, (2, 3), emissions=(None,), iterations=5)
    assert set(shared_only.scores) == {(2, None), (3, None)} and shared_only.prior is None
    assert shared_only.theta.ndim == 2  # (CpGs, K): one table for every tissue
    tissue_only = choose_states(train, val, (2,), emissions=(30.0,), iterations=5)
    assert set(tissue_only.scores) == {(2, 30.0)} and tissue_only.prior == 30.0
    assert tissue_only.theta.shape == (int(store.panel.cpg_ptr[-1]), 3, 2)
    with pytest.raises(ValueError, match=">= 2"):
        choose_states(train, val, (1, 3))
    with pytest.raises(ValueError, match="emissions"):
        choose_states(train, val, (2,), emissions=())


def test_resolve_gives_the_config_the_chosen_k_and_leaves_a_number_alone(store):
    sampler = TrainSampler(store)
    config = _config()
    resolved, choice = resolve_fragment_states(config, sampler)
    assert config.model.fragment_states == "auto"  # the caller's config is not changed
    assert resolved.model.fragment_states == choice.n_states and choice.n_states in STATE_CANDIDATES
    assert {k for k, _ in choice.scores} == set(STATE_CANDIDATES)
    assert {a for _, a in choice.scores} == {None, 100.0}  # tiny: per-tissue emissions, prior auto
    expected = choose_states(sampler, TrainSampler(store, split="val"), STATE_CANDIDATES)
    assert (expected.n_states, expected.prior) == (choice.n_states, choice.prior)
    # shared emissions: only shared fits are candidates
    _, shared = resolve_fragment_states(_config("model.state_emissions=shared"), sampler)
    assert {a for _, a in shared.scores} == {None}
    fixed = load_config("tiny", overrides=["model.fragment_states=4"])
    assert resolve_fragment_states(fixed, sampler) == (fixed, None)


def test_resolve_without_validation_reads_falls_back_with_a_warning(tmp_path, caplog):
    no_val = build_marker_store(tmp_path / "s", tissues=("a", "b"), n_windows=4, reads_per_sample=30,
                                splits={"train": 2}, seed=1)
    with caplog.at_level(logging.WARNING, logger="tissuebert"):
        resolved, choice = resolve_fragment_states(_config(), TrainSampler(no_val))
    assert resolved.model.fragment_states == AUTO_FALLBACK_STATES == 3 and choice is None
    assert "validation reads" in caplog.text and "model.fragment_states" in caplog.text
    assert "3 states" in caplog.text


def test_auto_is_refused_where_it_cannot_be_resolved():
    with pytest.raises(ConfigError, match="train.state_source = split"):
        load_config("tiny", overrides=["model.fragment_states=auto", "train.state_source=learned"])
    with pytest.raises(ConfigError, match=r"model.fragment_states: .*'auto' \(got 'three'\)"):
        load_config("tiny", overrides=["model.fragment_states=three"])
    with pytest.raises(ValueError, match="resolved to a number of states when a training run starts"):
        build_model(_config().model, 3)


@pytest.mark.slow  # end to end: three short training runs
def test_a_run_carries_the_chosen_k_through_checkpoint_resume_and_init_from(store, tmp_path, caplog):
    from tissuebert.cli.app import main
    from tissuebert.config import load_config as load
    from tissuebert.constants import CKPT, RUN
    from tissuebert.inference.checkpoint import checkpoint_config, load_checkpoint

    run = tmp_path / "run"
    args = ["--store", str(store.root), "--preset", "tiny", *sets(*FAST, *AUTO, "train.epochs=1", "train.steps_per_epoch=3")]
    assert main(["train", "--out", str(run), *args]) == 0
    chosen = choose_states(TrainSampler(store), TrainSampler(store, split="val"), STATE_CANDIDATES)
    saved_yaml = load(None, run / RUN.CONFIG)
    state = load_checkpoint(run / RUN.CHECKPOINTS / "last.pt")
    assert saved_yaml.model.fragment_states == chosen.n_states
    assert checkpoint_config(state, run).model.fragment_states == chosen.n_states
    # the head holds the chosen fit: its prior table is log pi of that fit
    prior = state[CKPT.MODEL]["states.prior.weight"].double().numpy().reshape(chosen.pi.shape)
    np.testing.assert_allclose(prior, np.log(chosen.pi), rtol=1e-6, atol=1e-6)

    # resuming with the same command line ('auto' again) is not a config difference
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tissuebert"):
        assert main(["train", "--out", str(run), "--resume", "auto", *args]) == 0
    assert "ignoring differences" not in caplog.text and "model.fragment_states = auto" not in caplog.text

    # --init-from: the K of that checkpoint (4 is not a candidate, so auto alone could not give it)
    four, init = tmp_path / "four", tmp_path / "init"
    fixed = ["--store", str(store.root), "--preset", "tiny",
             *sets(*FAST, "model.fragment_states=4", "train.state_source=split", "train.epochs=1", "train.steps_per_epoch=3")]
    assert main(["train", "--out", str(four), *fixed]) == 0
    assert main(["train", "--out", str(init), "--init-from", str(four / RUN.CHECKPOINTS / "last.pt"), *args]) == 0
    assert load(None, init / RUN.CONFIG).model.fragment_states == 4



def test_prime_states_uses_the_choice_as_it_is_and_refuses_one_of_another_k(store):
    from tissuebert.train.setup import prime_states

    train, val = TrainSampler(store), TrainSampler(store, split="val")
    choice = choose_states(train, val, (2, 3), emissions=(None,), iterations=10)
    model = build_model(_config(f"model.fragment_states={choice.n_states}", "model.state_emissions=shared").model,
                        3, store.panel)
    prime_states(model, train, "split", "auto", choice=choice)
    prior = model.states.prior.weight.detach().double().numpy().reshape(choice.pi.shape)
    np.testing.assert_allclose(prior, np.log(choice.pi), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="the atlas chosen has"):
        prime_states(build_model(_config("model.fragment_states=5").model, 3, store.panel), train, "split",
                     "auto", choice=choice)  # candidates 2 and 3: never 5
