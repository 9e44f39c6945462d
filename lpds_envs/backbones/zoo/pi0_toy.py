"""A tiny PI0 backbone for the pixel multi-goal toy: data, flow-matching BC through PI0's own loss, coverage card.

The task is :class:`~lpds_envs.envs.multigoal_pixels.MultiGoalPixelsEnv` (App. B's toy seen through a 64x64 camera,
plus the state and the instruction :data:`~lpds_envs.envs.multigoal_pixels.INSTRUCTION`). The data are App. B's
noisy expert run for a chunk: ``s_0 ~ U([-2, 2]^2)``, ``a_k = clip(clip(g*(s_k) - s_k, -1, 1) + N(0, sigma^2 I), -1, 1)``
towards the nearest goal ``g*(s_k)``, ``s_{k+1} = clip(s_k + 0.5 a_k, -2, 2)``. Training calls
``PI0ForConditionalGeneration.forward(..., noise=, timestep=, actions=)`` and minimises its flow-matching ``loss``;
noise and times (``Beta(1.5, 1)`` scaled as the config says) are drawn from a seeded generator, so a run is
reproducible and resumable. Inputs are built by :meth:`~lpds_envs.decoders.Pi0Decoder.model_inputs`, exactly as
at decoding time.

Regenerate the shipped checkpoint (about 30 min on one CPU thread; re-running resumes)::

    python -m lpds_envs.backbones.zoo.pi0_toy --out lpds_envs/backbones/checkpoints/multigoal-pi0
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpds_envs.backbones.zoo.cards import write_card as write_backbone_card
from lpds_envs.decoders.pi0 import Pi0Decoder
from lpds_envs.decoders.pi0_tiny import make_tiny_pi0
from lpds_envs.envs.multigoal import GOALS
from lpds_envs.envs.multigoal_pixels import INSTRUCTION, MultiGoalPixelsEnv
from lpds_envs.vector import make_latent_vec_env

STATE_NAME = "training_state.pt"
LOG_NAME = "train.log"
CAMERA_KEY, STATE_KEY = "image", "state"

#: architecture of the shipped tiny PI0 (see :func:`~lpds_envs.decoders.pi0_tiny.make_tiny_pi0`)
PI0_TOY_KWARGS = dict(
    image_size=64,
    patch_size=16,
    chunk_size=4,
    max_action_dim=4,
    max_state_dim=4,
    state_dim=2,
    action_dim=2,
    hidden_size=64,
    num_layers=2,
    num_inference_steps=10,
)


def multigoal_chunk_dataset(
    n: int = 200_000,
    chunk_size: int = 4,
    sigma: float = 0.1,
    seed: int = 0,
    origin_fraction: float = 0.0,
    tie_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """App. B's noisy expert over a chunk: states ``(n, 2)`` and action chunks ``(n, chunk_size, 2)``.

    :param origin_fraction: share of start states drawn from ``U([-0.25, 0.25]^2)`` instead of ``U([-2, 2]^2)``
        (0 = App. B exactly). The expert is unimodal at every state but the origin, so more data there teaches a
        sharper quadrant boundary, not a four-way choice: with 0.25 (12k steps) the PI0 went to one goal only.
    :param tie_fraction: share of start states put exactly at the origin, where all four goals are nearest and
        App. B's ``argmin`` is a tie; the expert breaks it uniformly at random (then keeps the chosen goal, which
        is the nearest from the next state on). This is the one state where the expert itself is four-modal, and
        the evaluation starts there. 0 keeps the App. B stream unchanged.
    """
    rng = np.random.default_rng(seed)
    s0 = rng.uniform(-2.0, 2.0, size=(n, 2)).astype(np.float32)
    if origin_fraction > 0:  # (no extra draws otherwise: the App. B stream stays the same)
        near = rng.random(n) < origin_fraction
        s0[near] = rng.uniform(-0.25, 0.25, size=(int(near.sum()), 2))
    tie, tie_goal = None, None
    if tie_fraction > 0:
        tie = rng.random(n) < tie_fraction
        s0[tie] = 0.0
        if tie.any():
            tie_goal = GOALS[rng.integers(0, len(GOALS), size=n)][tie]
    s = s0.copy()
    chunks = np.zeros((n, chunk_size, 2), np.float32)
    for k in range(chunk_size):
        nearest = GOALS[np.linalg.norm(s[:, None, :] - GOALS[None], axis=2).argmin(axis=1)]
        if tie_goal is not None:
            nearest[tie] = tie_goal
        a = np.clip(np.clip(nearest - s, -1.0, 1.0) + sigma * rng.standard_normal((n, 2)), -1.0, 1.0)
        chunks[:, k] = a
        s = np.clip(s + 0.5 * a, -2.0, 2.0).astype(np.float32)
    return s0, chunks


def multigoal_pixels_coverage(
    decoder: torch.nn.Module, n_rollouts: int = 1000, seed: int = 0, latent_fn: Any = None
) -> dict[str, Any]:
    """Goal fractions of ``n_rollouts`` pixel-toy episodes from the origin, one batched decode per latent step.

    :param decoder: a decoder of the pixel task's Dict observations
    :param n_rollouts: episodes (all run in parallel)
    :param seed: seeds the prior latents
    :param latent_fn: ``obs -> latents (n, latent_dim)``; default ``N(0, I)`` (the frozen backbone)
    """

    rng = np.random.default_rng(seed)
    latent_fn = latent_fn or (lambda obs: rng.standard_normal((n_rollouts, decoder.latent_dim)).astype(np.float32))
    venv = make_latent_vec_env(MultiGoalPixelsEnv, n_envs=n_rollouts, seed=seed, decoder=decoder)
    obs = venv.reset()
    returns, goals = np.zeros(n_rollouts), np.full(n_rollouts, -2)
    while (goals == -2).any():
        obs, rewards, dones, infos = venv.step(latent_fn(obs))
        live = goals == -2
        returns[live] += rewards[live]
        for i in np.flatnonzero(dones & live):
            goals[i] = infos[i]["goal"]
    venv.close()
    return {
        "n_rollouts": n_rollouts,
        "goal_fractions": [float(np.mean(goals == g)) for g in range(len(GOALS))],
        "no_goal": float(np.mean(goals < 0)),
        "mean_return": float(returns.mean()),
    }


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pi0_flow_bc_step(
    model: Any, inputs: dict[str, Any], actions: torch.Tensor, generator: torch.Generator,
    optimizer: torch.optim.Optimizer, scheduler: Any, ema: Any,
) -> float:  # fmt: skip
    """One flow-matching BC step of a transformers PI0 on ``actions`` (its own loss), with gradient clipping at 1,
    the scheduler step and the EMA update; returns the loss. Draws the noise, then the flow times: Beta(alpha, 1) by
    inverse CDF, scaled and offset as PI0's own sampler does."""
    cfg = model.config
    noise = torch.randn(actions.shape, generator=generator)
    u = torch.rand(actions.shape[0], generator=generator)
    timestep = u ** (1.0 / float(cfg.time_sampling_beta_alpha)) * cfg.time_sampling_scale + cfg.time_sampling_offset
    loss = model(**inputs, noise=noise, timestep=timestep, actions=actions).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    ema.update_parameters(model)
    return float(loss.item())


def train_pi0_backbone(
    out_dir: str | os.PathLike,
    *,
    steps: int = 8_000,
    batch_size: int = 128,
    learning_rate: float = 3e-4,
    weight_decay: float = 1e-4,
    ema_decay: float = 0.999,
    n: int = 200_000,
    sigma: float = 0.1,
    origin_fraction: float = 0.0,
    tie_fraction: float = 0.0,
    seed: int = 0,
    checkpoint_every: int = 250,
    progress: bool = True,
) -> Any:
    """Train the tiny PI0 of the pixel toy by flow-matching BC and save it (model + processor + lpds config).

    :param out_dir: output folder (also holds the resumable ``training_state.pt`` and ``train.log``)
    :param steps: gradient steps
    :param batch_size: chunks per step
    :param learning_rate: AdamW learning rate, cosine-annealed to 1%
    :param weight_decay: AdamW weight decay
    :param ema_decay: decay of the weight EMA (the EMA weights are saved)
    :param n: dataset size
    :param sigma: expert noise
    :param origin_fraction: share of start states near the origin (see :func:`multigoal_chunk_dataset`)
    :param tie_fraction: share of start states exactly at the origin, goal tie broken at random (same)
    :param seed: seeds data, initialisation, batches, noise and times
    :param checkpoint_every: steps between resumable saves (and log lines)
    :param progress: tqdm progress bar
    :return: the frozen EMA :class:`~lpds_envs.decoders.Pi0Decoder`
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    states, chunks = multigoal_chunk_dataset(
        n, PI0_TOY_KWARGS["chunk_size"], sigma, seed, origin_fraction, tie_fraction
    )
    flat = chunks.reshape(-1, 2)
    stats = dict(
        state_mean=states.mean(0).tolist(),
        state_std=states.std(0).tolist(),
        actions_mean=flat.mean(0).tolist(),
        actions_std=flat.std(0).tolist(),
    )
    model, processor = make_tiny_pi0(**PI0_TOY_KWARGS, **stats, seed=seed)
    decoder_args = dict(instruction=INSTRUCTION, camera_keys=[CAMERA_KEY], state_key=STATE_KEY, action_dim=2)
    builder = Pi0Decoder(model, processor, **decoder_args)  # builds the model inputs exactly as decoding does
    model.requires_grad_(True).train()
    env = MultiGoalPixelsEnv(image_size=PI0_TOY_KWARGS["image_size"])
    cfg = model.config
    act_n = (torch.from_numpy(chunks) - builder.actions_mean) / builder.actions_std
    act_n = torch.nn.functional.pad(act_n, (0, cfg.max_action_dim - 2))

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=learning_rate * 0.01)
    generator = torch.Generator().manual_seed(seed)
    run_config = dict(
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        ema_decay=ema_decay,
        n=n,
        sigma=sigma,
        origin_fraction=origin_fraction,
        tie_fraction=tie_fraction,
        seed=seed,
        model=PI0_TOY_KWARGS,
    )
    start, losses, elapsed, running = 0, [], 0.0, None
    state_path, log_path = out / STATE_NAME, out / LOG_NAME
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state["run_config"] != json.loads(json.dumps(run_config)):
            raise ValueError(f"{state_path} belongs to a run with other settings; delete it or use another --out")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start, losses, elapsed = int(state["step"]), list(state["losses"]), float(state["elapsed"])
        running = float(state["running"])
    log = log_path.open("a")
    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} start at step {start}/{steps} {json.dumps(run_config)}\n")
    log.flush()

    if float(cfg.time_sampling_beta_beta) != 1.0:
        raise ValueError("the time sampler assumes Beta(alpha, 1)")
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="BC pi0", disable=not progress, mininterval=5.0)
    t0 = time.perf_counter()
    for step in bar:
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        obs = env.observe_batch(states[idx.numpy()])
        with torch.no_grad():
            inputs = builder.model_inputs({k: torch.from_numpy(v) for k, v in obs.items()})
        loss = pi0_flow_bc_step(model, inputs, act_n[idx], generator, optimizer, scheduler, ema)
        running = loss if running is None else 0.99 * running + 0.01 * loss
        if (step + 1) % 50 == 0:
            losses.append(running)
            bar.set_postfix(loss=f"{running:.4f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            now = time.perf_counter()
            elapsed, t0 = elapsed + now - t0, now
            _atomic_save(
                dict(
                    run_config=run_config,
                    model=model.state_dict(),
                    ema=ema.state_dict(),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    generator=generator.get_state(),
                    step=step + 1,
                    losses=losses,
                    running=running,
                    elapsed=elapsed,
                ),
                state_path,
            )
            log.write(f"{time.strftime('%H:%M:%S')} step {step + 1} loss {running:.4f} elapsed {elapsed:.0f}s\n")
            log.flush()
    log.close()

    model.load_state_dict(ema.module.state_dict())
    decoder = Pi0Decoder(model, processor, **decoder_args)
    decoder.save_pretrained(out)
    meta = {**run_config, "final_bc_loss": running, "train_seconds": elapsed}
    meta["loss_curve_every_50_steps"] = losses
    (out / "training.json").write_text(json.dumps(meta, indent=1))
    return decoder


def write_card(out: Path, decoder: Any, coverage: dict[str, Any], args: argparse.Namespace) -> str:
    meta = json.loads((out / "training.json").read_text())
    n_params = sum(p.numel() for p in decoder.parameters())
    size_kb = sum(f.stat().st_size for f in out.iterdir() if f.name != STATE_NAME and f.is_file()) / 1024
    fractions = ", ".join(f"{f:.3f}" for f in coverage["goal_fractions"])
    card = f"""# MultiGoal PI0 backbone (lpds pixel toy task)

A tiny PI0 (`transformers.PI0ForConditionalGeneration`, {n_params:,} parameters: 2-layer Gemma text model of width 64,
2-layer SigLIP on 64x64 images with 16x16 patches, 2-layer action expert) for `lpds/MultiGoalPixels-v0`, shipped as
the frozen backbone of `LPDS-MultiGoalPi0-v0`. Folder = what `model.save_pretrained` + `PI0Processor.save_pretrained`
write, plus `lpds_pi0.json` (instruction `"{INSTRUCTION}"`, camera `image`, state `state`, 2 action dims); load it with
`Pi0Decoder.from_pretrained(folder)`. {size_kb:.0f} KB.

- **Data**: {args.n:,} chunks of App. B's noisy expert (sigma {args.sigma}) over 4 steps from `s_0 ~ U([-2,2]^2)`
  ({args.origin_fraction:.0%} of them from `U([-0.25,0.25]^2)` instead, {args.tie_fraction:.0%} exactly at the
  origin, where all four goals are nearest and the expert breaks the tie uniformly at random), re-targeting the
  nearest goal at every step; images rendered from the states; regenerated by the command (seed {args.seed}).
- **Model**: chunk size 4, max action/state dim 4 (2 used), 10 Euler steps from t = 1 (noise) to t = 0;
  processor statistics = the data's mean/std of states and actions; word-level tokenizer trained locally.
- **Training**: PI0's own flow-matching loss (`forward(noise=, timestep=, actions=).loss`, times Beta(1.5, 1)),
  {meta["steps"]:,} AdamW steps, batch {meta["batch_size"]}, lr {meta["learning_rate"]} cosine, EMA {meta["ema_decay"]};
  final loss (EMA-smoothed) {meta["final_bc_loss"]:.4f}; {meta["train_seconds"] / 60:.0f} min on one CPU thread.
- **Command**: `python -m lpds_envs.backbones.zoo.pi0_toy --out {args.out} --steps {meta["steps"]} --n {args.n} --origin-fraction {args.origin_fraction} --tie-fraction {args.tie_fraction} --lr {args.lr} --seed {args.seed}`
- **Coverage from the origin**, {coverage["n_rollouts"]} rollouts of 20 steps (5 chunks) with latents from the prior
  N(0, I): goal fractions (bottom-left, top-right, top-left, bottom-right) = [{fractions}],
  no goal = {coverage["no_goal"]:.3f}, mean return {coverage["mean_return"]:.2f}.
- **Note on the modes**: App. B's expert is unimodal at every state except where goals tie, and the evaluation
  starts exactly at such a state, the origin. Without tie data (`--tie-fraction 0`, App. B verbatim) the spread
  over goals from the origin only comes from how smoothly the model blurs the quadrant boundary; the first shipped
  PI0 trained that way (it also sees the exact state) reached two goals (0.04/0.43/0.00/0.53), and more
  near-origin data only sharpened it (`--origin-fraction 0.25`: [0, 1, 0, 0]). Exact-origin starts with the tie
  broken at random make the data themselves four-modal at the start state.
"""
    write_backbone_card(out, card)
    return card


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the tiny PI0 backbone of the pixel MultiGoal toy.")
    parser.add_argument("--out", required=True, help="output folder (model, processor, lpds_pi0.json, card)")
    parser.add_argument("--steps", type=int, default=8_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n", type=int, default=200_000, help="dataset size (chunks)")
    parser.add_argument("--sigma", type=float, default=0.1, help="expert noise (paper: 0.1)")
    parser.add_argument("--origin-fraction", type=float, default=0.0, help="share of start states near the origin")
    parser.add_argument(
        "--tie-fraction",
        type=float,
        default=0.0,
        help="share of start states exactly at the origin (goal tie broken uniformly at random)",
    )
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (cosine-annealed to 1%%)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rollouts", type=int, default=1000, help="rollouts for the coverage card")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between resumable saves")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    decoder = train_pi0_backbone(
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        n=args.n,
        sigma=args.sigma,
        origin_fraction=args.origin_fraction,
        tie_fraction=args.tie_fraction,
        learning_rate=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    coverage = multigoal_pixels_coverage(decoder, n_rollouts=args.rollouts, seed=args.seed)
    (Path(args.out) / "coverage.json").write_text(json.dumps({**coverage, "seed": args.seed}, indent=1))
    print(write_card(Path(args.out), decoder, coverage, args))


if __name__ == "__main__":
    main()
