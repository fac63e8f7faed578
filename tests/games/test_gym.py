"""gymnasium adapters: API checks, the default partner's code, render, vector env vs single env."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import games
from games.gym import DISCRIMINATION_ID, RECONSTRUCTION_ID, LewisEnv, LewisVectorEnv

IDS = {"reconstruction": RECONSTRUCTION_ID, "discrimination": DISCRIMINATION_ID}
SMALL = dict(n_attributes=3, n_values=3, vocab_size=5, max_len=4, n_distractors=3)  # 27 objects
COMBOS = [(kind, role) for kind in IDS for role in ("speaker", "listener")]


def decode(message, n_attributes):
    """The compositional code read independently: position k holds attribute k as value + 1."""
    return np.array([int(s) - 1 for s in message[:n_attributes]])


def matching_action(kind, role, obs, n_attributes=4):
    """What an agent fluent in the compositional code plays."""
    if role == "speaker":
        return np.concatenate([obs + 1, np.zeros(1, np.int64)])  # K=4 symbols then EOS (max_len 5)
    decoded = decode(obs["message"], n_attributes)
    if kind == "reconstruction":
        return decoded
    (index,) = np.flatnonzero(np.all(obs["candidates"] == decoded, axis=-1))
    return index


@pytest.mark.parametrize("kind, role", COMBOS)
def test_check_env_passes_without_warnings(kind, role):
    env = gymnasium.make(IDS[kind], role=role, render_mode="ansi", **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("kind, role", COMBOS)
def test_default_partner_rewards_the_compositional_code(kind, role):
    env = gymnasium.make(IDS[kind], role=role)  # defaults K=4, V=4, vocab 10, max_len 5, 4 distractors
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert info == {}  # nothing about the target leaks before the move
        _, reward, terminated, truncated, info = env.step(matching_action(kind, role, obs))
        assert reward == 1.0 and info["success"] is True
        assert terminated is True and truncated is False


def test_default_partner_punishes_a_wrong_symbol():
    env = gymnasium.make(RECONSTRUCTION_ID, role="speaker")
    target, _ = env.reset(seed=0)
    message = np.concatenate([target + 1, [0]])
    message[0] = (target[0] + 1) % 4 + 1  # attribute 0 names another value
    _, reward, _, _, info = env.step(message)
    assert reward == 0.75 and info["success"] is False
    assert info["guess"][0] != target[0] and np.array_equal(info["guess"][1:], target[1:])


def test_listener_reward_counts_attributes_right():
    env = gymnasium.make(RECONSTRUCTION_ID, role="listener")
    obs, _ = env.reset(seed=1)
    guess = decode(obs["message"], 4)
    guess[:2] = (guess[:2] + 1) % 4
    _, reward, _, _, info = env.step(guess)
    assert reward == 0.5 and not info["success"]
    assert np.array_equal(info["target"][2:], guess[2:])


def test_listener_observation_hides_the_target():
    env = LewisEnv("reconstruction", role="listener")
    assert set(env.observation_space.spaces) == {"message"}
    env = LewisEnv("discrimination", role="listener")
    assert set(env.observation_space.spaces) == {"message", "candidates"}
    assert env.action_space == gymnasium.spaces.Discrete(5)


def test_custom_partner_is_called_with_numpy_arrays():
    calls = []

    def always_first(message, candidates):
        calls.append((type(message), message.shape, candidates.shape))
        return 0

    env = LewisEnv("discrimination", role="speaker", partner=always_first, **SMALL)
    for seed in range(6):
        env.reset(seed=seed)
        _, reward, _, _, info = env.step(np.array([1, 2, 3, 0]))
        assert reward == float(info["target_index"] == 0)
    assert calls[0] == (np.ndarray, (4,), (4, 3))


def test_reconstruction_partner_listener_is_not_shown_the_target():
    seen = []
    env = LewisEnv("reconstruction", role="speaker", partner=lambda m, c: seen.append(c.shape) or np.zeros(3), **SMALL)
    env.reset(seed=0)
    env.step(np.zeros(4, np.int64))
    assert seen == [(0, 3)]


def test_partner_with_a_wrong_shape_is_reported():
    env = LewisEnv("reconstruction", role="listener", partner=lambda target: np.zeros(2), **SMALL)
    with pytest.raises(Exception, match="partner returned shape"):
        env.reset(seed=0)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="vocab_size"):
        LewisEnv(vocab_size=4, n_values=4)  # the default code needs a symbol per value plus EOS
    with pytest.raises(ValueError, match="role"):
        LewisEnv(role="observer")
    with pytest.raises(ValueError, match="at least 5 objects"):
        LewisEnv("discrimination", n_objects=3)


def test_step_after_the_episode_needs_a_reset():
    env = LewisEnv(role="speaker")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(env.action_space.sample())


def test_seeded_reset_is_reproducible_and_the_seed_matters():
    env = LewisEnv("discrimination", role="listener", **SMALL)
    runs = []
    for seed in (3, 3, 4):
        first, _ = env.reset(seed=seed)
        second, _ = env.reset()
        runs.append(np.concatenate([first["candidates"].ravel(), second["candidates"].ravel()]))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_sampled_objects_and_probs_are_used():
    probs = np.zeros(10)
    probs[4] = 1.0
    env = LewisEnv(n_objects=10, object_seed=2, probs=probs, role="speaker")
    target, _ = env.reset(seed=0)
    assert np.array_equal(target, games.sample_objects(4, 4, 10, seed=2)[4])


# -- render --------------------------------------------------------------------------------------------


def test_ansi_render_shows_target_message_and_outcome():
    env = gymnasium.make(RECONSTRUCTION_ID, role="speaker", render_mode="ansi")
    target, _ = env.reset(seed=2)
    before = env.render()
    assert "target: " + " ".join(f"a{k}={v}" for k, v in enumerate(target)) in before
    env.step(np.concatenate([target + 1, [0]]))
    text = env.render()
    assert "message: " + " ".join(str(v + 1) for v in target) + " <eos>" in text
    assert "right" in text and "reward 1.00" in text


def test_ansi_render_for_a_discrimination_listener():
    env = LewisEnv("discrimination", role="listener", render_mode="ansi", **SMALL)
    obs, _ = env.reset(seed=0)
    before = env.render()
    assert "target: ?" in before  # a person playing the listener must not see it
    for c, candidate in enumerate(obs["candidates"]):
        assert f"{c}: " + " ".join(f"a{k}={v}" for k, v in enumerate(candidate)) in before
    _, _, _, _, info = env.step(0)
    after = env.render()
    assert "<- target" in after and "candidate 0" in after
    assert ("right" in after) == info["success"]


def test_render_without_a_mode_returns_none():
    env = LewisEnv()
    env.reset(seed=0)
    assert env.render() is None


# -- vector env ---------------------------------------------------------------------------------------


def env_slice(obs, i):
    """Env i's observation out of a batched one (an array or a dict of arrays)."""
    return {name: value[i] for name, value in obs.items()} if isinstance(obs, dict) else obs[i]


@pytest.mark.parametrize("kind, role", COMBOS)
def test_vector_env_equals_single_envs_on_the_same_episodes(kind, role):
    """Env i of `reset(seed=s)` plays what one LewisEnv plays after `reset(seed=s + i)`, episode after episode."""
    n, seed = 4, 11
    venv = LewisVectorEnv(num_envs=n, kind=kind, role=role, **SMALL)
    venv.action_space.seed(0)
    episodes = []  # (first obs, actions, rewards, info) per episode
    obs, _ = venv.reset(seed=seed)
    for _ in range(2):  # the second episode starts through NEXT_STEP autoreset
        assert obs in venv.observation_space
        actions = venv.action_space.sample()
        _, rewards, terminated, truncated, info = venv.step(actions)
        assert terminated.all() and not truncated.any()
        episodes.append((obs, actions, rewards, info))
        obs, rewards, terminated, _, info = venv.step(actions)  # only starts new episodes
        assert not rewards.any() and not terminated.any() and info == {}

    env = LewisEnv(kind, role=role, **SMALL)
    for i in range(n):
        for e, (obs, actions, rewards, info) in enumerate(episodes):
            single_obs, _ = env.reset(seed=seed + i) if e == 0 else env.reset()
            np.testing.assert_equal(env_slice(obs, i), single_obs)
            _, reward, terminated, _, single_info = env.step(actions[i])
            assert reward == rewards[i] and terminated
            for name, value in single_info.items():
                np.testing.assert_array_equal(info[name][i], value)
                assert info["_" + name][i]


def test_vector_env_same_step_plays_one_episode_per_call():
    n = 3
    venv = LewisVectorEnv(num_envs=n, kind="discrimination", role="speaker", autoreset_mode="SameStep", **SMALL)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    venv.action_space.seed(0)
    calls = [venv.reset(seed=0)[0]]  # obs after reset, then (actions, step results) per call
    for _ in range(3):
        actions = venv.action_space.sample()
        calls.append((actions, venv.step(actions)))

    env = LewisEnv("discrimination", role="speaker", **SMALL)
    for i in range(n):
        np.testing.assert_array_equal(calls[0][i], env.reset(seed=i)[0])
        for actions, (obs, rewards, terminated, _, info) in calls[1:]:
            assert terminated.all() and info["_final_obs"].all()
            final_obs, reward, _, _, single_info = env.step(actions[i])
            np.testing.assert_array_equal(info["final_obs"][i], final_obs)
            assert rewards[i] == reward and info["final_info"]["success"][i] == single_info["success"]
            np.testing.assert_array_equal(obs[i], env.reset()[0])


def test_vector_env_is_deterministic_in_the_seed():
    def first_steps(seed):
        venv = LewisVectorEnv(num_envs=5, kind="reconstruction", role="listener", **SMALL)
        venv.action_space.seed(1)
        obs, _ = venv.reset(seed=seed)
        _, rewards, _, _, info = venv.step(venv.action_space.sample())
        return obs["message"], rewards, info["target"]

    same, again, other = first_steps(3), first_steps(3), first_steps(4)
    for a, b in zip(same, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(same[2], other[2])


def test_vector_env_calls_a_batched_partner_once_per_step():
    calls = []

    def batched_speaker(targets):
        calls.append(targets.shape)
        return np.concatenate([targets + 1, np.zeros((len(targets), 1), np.int64)], axis=-1)

    venv = LewisVectorEnv(num_envs=6, kind="reconstruction", role="listener", partner=batched_speaker, **SMALL)
    obs, _ = venv.reset(seed=0)
    assert calls == [(6, 3)]
    _, rewards, _, _, info = venv.step(obs["message"][:, :3] - 1)  # decode the batched partner's code
    assert rewards.tolist() == [1.0] * 6 and info["success"].all()


def test_vector_env_shapes_and_render():
    venv = LewisVectorEnv(num_envs=8, kind="discrimination", role="listener", render_mode="ansi")
    obs, _ = venv.reset(seed=0)
    assert obs["message"].shape == (8, 5) and obs["candidates"].shape == (8, 5, 4)
    assert venv.action_space.shape == (8,)
    _, rewards, terminated, truncated, info = venv.step(np.zeros(8, np.int64))
    assert rewards.shape == terminated.shape == truncated.shape == (8,)
    assert info["target"].shape == (8, 4) and info["success"].dtype == bool
    frames = venv.render()
    assert len(frames) == 8 and all("<- target" in frame for frame in frames)


# -- registration ------------------------------------------------------------------------------------------


def test_registered_ids_make_and_make_vec():
    env = gymnasium.make(RECONSTRUCTION_ID, role="speaker")
    assert isinstance(env.unwrapped, LewisEnv) and env.spec.id == RECONSTRUCTION_ID
    assert env.observation_space == gymnasium.spaces.MultiDiscrete([4] * 4)
    assert env.action_space == gymnasium.spaces.MultiDiscrete([10] * 5)

    venv = gymnasium.make_vec(DISCRIMINATION_ID, num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(venv, LewisVectorEnv) and venv.num_envs == 8 and venv.kind == "discrimination"
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert venv.single_observation_space == gymnasium.spaces.MultiDiscrete([4] * 4)


def test_make_vec_sync_matches_the_vector_entry_point():
    """gymnasium's own SyncVectorEnv over LewisEnv and our jitted vector env play the same episodes."""
    kwargs = dict(num_envs=2, role="listener", **SMALL)
    ours = gymnasium.make_vec(DISCRIMINATION_ID, vectorization_mode="vector_entry_point", **kwargs)
    sync = gymnasium.make_vec(DISCRIMINATION_ID, vectorization_mode="sync", **kwargs)
    obs_ours, _ = ours.reset(seed=5)
    obs_sync, _ = sync.reset(seed=5)
    for _ in range(3):
        np.testing.assert_equal(obs_ours, obs_sync)
        actions = ours.action_space.sample()
        obs_ours, r_ours, t_ours, _, info_ours = ours.step(actions)
        obs_sync, r_sync, t_sync, _, info_sync = sync.step(actions)
        np.testing.assert_array_equal(r_ours, r_sync)
        np.testing.assert_array_equal(t_ours, t_sync)
        if t_ours.any():
            np.testing.assert_array_equal(info_ours["success"], info_sync["success"])
