"""Bad-input table for issue 30: run with PYTHONPATH=<repo root>; prints clear / obscure / silent per case.

clear: an error whose one-line message matches the hint (names the quantity/file and what to do)
obscure: an error, but not naming it (or a traceback from deep inside, or late/wrong blame)
silent: no error (or code executed)
"""

import contextlib
import io
import os
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
from algorithms import DSRLNA, DSRLSAC, LagrangianSAC, ResidualActionSAC, ResidualActionWrapper  # noqa: E402
from lpds_envs import LatentSteeringWrapper, make_latent_vec_env  # noqa: E402
from lpds_envs.decoders import CallableDecoder  # noqa: E402
from lpds_envs.envs.multigoal import MultiGoalEnv  # noqa: E402
from lpds_envs.experiment import cli  # noqa: E402
from lpds_envs.experiment import runs as runs_module  # noqa: E402

results = []


def small():
    return {"learning_starts": 20, "batch_size": 16, "buffer_size": 200, "policy_kwargs": {"net_arch": [8]}, "seed": 0}


def dec(fn=None):
    return CallableDecoder(fn or (lambda o, w: torch.tanh(w)), latent_shape=(2, 2), action_shape=(2, 2))


def env(d=None, bound=2.5, inner=lambda e: e, **kw):
    return LatentSteeringWrapper(inner(gym.make("lpds/MultiGoal-v0")), d or dec(), latent_bound=bound, **kw)


class NaNReward(gym.Wrapper):
    def __init__(self, e, after=30, value=float("nan")):
        super().__init__(e)
        self.after, self.value, self.n = after, value, 0

    def step(self, a):
        o, r, te, tr, i = self.env.step(a)
        self.n += 1
        return o, self.value if self.n > self.after else r, te, tr, i


def case(name, hint):
    def deco(fn):
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                out = fn()
        except SystemExit as exc:  # CLI cases return their stderr via the exception's context
            out = ("exit", exc.code, getattr(exc, "stderr", ""))
        except BaseException as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            verdict = "clear" if re.search(hint, str(exc)) else "obscure"
            results.append((name, verdict, f"{type(exc).__name__}: {msg[:150]}"))
            return fn
        if isinstance(out, tuple) and out and out[0] == "cli":
            _, code, err = out
            ok = code not in (0, None) and err.count("\n") == 1 and re.search(hint, err) and "Traceback" not in err
            verdict = "clear" if ok else ("obscure" if code not in (0, None) else "silent")
            results.append((name, verdict, f"exit {code}: {err.strip()[:150]}"))
        else:
            results.append((name, "silent", repr(out)[:150]))
        return fn

    return deco


def cli_run(argv):
    err = io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stderr(err):
            cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # a traceback out of main
        return ("cli", 99, f"Traceback {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\nx\n")
    return ("cli", code, err.getvalue())


# --------------------------------------------------------------- learner arguments
for kw, hint in [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -5}, "batch_size"), ({"buffer_size": 0}, "buffer_size"),
    ({"learning_starts": -1}, "learning_starts"), ({"gamma": float("nan")}, "gamma"), ({"tau": 2.0}, "tau"),
    ({"alpha_lr": float("nan")}, "alpha_lr"), ({"alpha_lr": float("inf")}, "alpha_lr"),
    ({"alpha_init": float("nan")}, "alpha_init"), ({"delta": float("inf")}, "delta"), ({"delta": float("nan")}, "delta"),
]:  # fmt: skip

    @case(f"LagrangianSAC {kw}", hint)
    def _(kw=kw):
        m = LagrangianSAC("MlpPolicy", env(), **{**small(), **kw})
        m.learn(60)
        return ("alpha", m.alpha)


@case("DSRLNA batch_size=0", "batch_size")
def _():
    return DSRLNA("MlpPolicy", env(), **{**small(), "batch_size": 0}).learn(60)


@case("DSRLSAC batch_size=0", "batch_size")
def _():
    return DSRLSAC("MlpPolicy", env(), **{**small(), "batch_size": 0}).learn(60)


# --------------------------------------------------------------- wrapper arguments and values
for bound in ["2.5", b"2", [2.5]]:

    @case(f"latent_bound={bound!r}", r"latent_bound must be a number.*latent_bound=2\.5")
    def _(bound=bound):
        return env(bound=bound)


@case("NaN observation into the decoder", "observation.*decoder")
def _():
    e = env()
    e.reset(seed=0)
    e._obs = np.array([np.nan, 0.0], np.float32)
    return e.step(np.zeros(4, np.float32))[1]


@case("inf observation into the decoder (subspace)", "observation.*decoder")
def _():
    e = env(latent_subspace="chunk_constant")
    e.reset(seed=0)
    e._obs = np.array([np.inf, 0.0], np.float32)
    return e.step(np.zeros(e.action_space.shape, np.float32))[1]


@case("NaN decoder output (single env)", "decoder output")
def _():
    e = env(dec(lambda o, w: torch.full_like(w, float("nan"))))
    e.reset(seed=0)
    return e.step(np.zeros(4, np.float32))[1]


@case("NaN decoder output (vec env, sub-env 1)", r"decoder output.*env 1")
def _():
    def f(o, w):
        out = torch.tanh(w).clone()
        out[1] = float("nan")
        return out

    v = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=3, decoder=dec(f), latent_bound=2.5)
    v.reset()
    return v.step(np.zeros((3, 4), np.float32))[1]


@case("NaN decoder output (subspace)", "decoder output")
def _():
    e = env(dec(lambda o, w: torch.full_like(w, float("nan"))), latent_subspace="chunk_constant")
    e.reset(seed=0)
    return e.step(np.zeros(e.action_space.shape, np.float32))[1]


@case("NaN residual into ResidualActionWrapper", "residual")
def _():
    e = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), dec())
    e.reset(seed=0)
    return e.step(np.full(4, np.nan, np.float32))[1]


@case("NaN decoder output into ResidualActionWrapper", "decoder output")
def _():
    e = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), dec(lambda o, w: torch.full_like(w, float("nan"))))
    e.reset(seed=0)
    return e.step(np.zeros(4, np.float32))[1]


# --------------------------------------------------------------- training faults (must stop at the first NaN, naming it)
def stopped_early(model, total=300):
    model.learn(total)
    return ("finished", model.num_timesteps)


for name, make in [
    ("LagrangianSAC NaN reward", lambda: LagrangianSAC("MlpPolicy", env(inner=NaNReward), **small())),
    ("DSRLNA NaN reward", lambda: DSRLNA("MlpPolicy", env(inner=NaNReward), **small())),
    ("DSRLSAC NaN reward", lambda: DSRLSAC("MlpPolicy", env(inner=NaNReward), **small())),
    ("LagrangianSAC inf reward", lambda: LagrangianSAC(
        "MlpPolicy", env(inner=lambda e: NaNReward(e, value=float("inf"))), **small())),
    ("ResidualActionSAC NaN reward", lambda: ResidualActionSAC(
        "MlpPolicy", ResidualActionWrapper(NaNReward(gym.make("lpds/MultiGoal-v0")), dec()), **small())),
]:  # fmt: skip

    @case(name, r"is NaN or inf after gradient step \d+; likely cause: .*reward")
    def _(make=make):
        return stopped_early(make())


@case("DSRLNA NaN decoder output on training latents only", r"NaN or inf after gradient step.*decoder")
def _():
    d = dec(lambda o, w: torch.where(w.abs() > 2, float("nan"), torch.tanh(w)))
    return stopped_early(DSRLNA("MlpPolicy", env(d, bound=1.5), **small()))


# --------------------------------------------------------------- CLI
ENV = "LPDS-MultiGoal-v0"
TINY = ["learning_starts=40", "batch_size=32", "buffer_size=400", "policy_kwargs.net_arch=[16,16]"]
ROOT = Path(tempfile.mkdtemp())


def argv(out, steps=40, extra=(), sets=(), algo="lpds"):
    return ["train", "--algo", algo, "--env", ENV, "--steps", str(steps), "--out", str(out), "--eval-episodes", "2",
            "--no-progress", *extra, "--set", *TINY, *sets]  # fmt: skip


for extra, sets, hint in [
    (["--eval-freq", "-5"], [], "--eval-freq"), (["--checkpoint-freq", "-1"], [], "--checkpoint-freq"),
    ([], ["batch_size=0"], "batch_size"), ([], ["alpha_lr=.nan"], "alpha_lr"), ([], ["delta=.inf"], "delta"),
    ([], ["env_kwargs.latent_bound='2.5'"], "latent_bound"),
]:  # fmt: skip

    @case(f"lpds train {' '.join(extra + sets)}", hint)
    def _(extra=extra, sets=sets):
        return cli_run(argv(ROOT / f"bad{len(results)}", extra=extra, sets=sets))


def interrupted(out):
    a = argv(out, steps=200, extra=["--eval-freq", "50", "--checkpoint-freq", "100"])
    orig = runs_module.TrainingRun.after_step

    def stop(self, *args):
        orig(self, *args)
        if self.raw >= 160:
            raise KeyboardInterrupt

    runs_module.TrainingRun.after_step = stop
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli_run(a)
    finally:
        runs_module.TrainingRun.after_step = orig
    return a, out / ENV / "lpds" / "seed_0"


for name, damage, hint in [
    ("truncated checkpoint/model.zip", lambda f: (f / "checkpoint/model.zip").write_bytes(
        (f / "checkpoint/model.zip").read_bytes()[:100]), r"model\.zip"),
    ("truncated checkpoint/replay_buffer.npz", lambda f: (f / "checkpoint/replay_buffer.npz").write_bytes(
        (f / "checkpoint/replay_buffer.npz").read_bytes()[:100]), r"replay_buffer\.npz"),
    ("broken config.yaml", lambda f: (f / "config.yaml").write_text("algo: [lpds\n"), r"config\.yaml"),
]:  # fmt: skip

    @case(f"resume with {name}", hint)
    def _(damage=damage, name=name):
        a, folder = interrupted(ROOT / f"damage{len(results)}")
        damage(folder)
        return cli_run(a)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@case("malicious checkpoint/state.pkl (old format or current)", r"state\.pkl")
def _():
    a, folder = interrupted(ROOT / "evil")
    marker = ROOT / "pwned"
    for f in (folder / "checkpoint").glob("state.*"):
        f.unlink()
    (folder / "checkpoint" / "state.pkl").write_bytes(pickle.dumps({"rng": Exploit(marker), "env": None, "run": {}}))
    out = cli_run(a)
    if marker.exists():
        return ("CODE EXECUTED", out)
    return out


@case("skipped re-run with smaller --steps leaves config.yaml", "NEVER")
def _():
    out = ROOT / "skip"
    cli_run(argv(out, steps=50, extra=["--eval-freq", "50"]))
    cfg = out / ENV / "lpds" / "seed_0" / "config.yaml"
    before = cfg.read_text()
    cli_run(argv(out, steps=40, extra=["--eval-freq", "50"]))
    if cfg.read_text() != before:
        return ("config.yaml rewritten",)
    raise RuntimeError("NEVER: kept")  # counted as clear below


@case("lpds train with NaN reward from 110 steps: checkpoint kept, one-line error", r"kept")
def _():
    out = ROOT / "nan"
    a = argv(out, steps=200, extra=["--eval-freq", "50", "--checkpoint-freq", "50"])
    state = {"on": False}
    orig_after, orig_step = runs_module.TrainingRun.after_step, MultiGoalEnv.step

    def watch(self, infos, raw):
        orig_after(self, infos, raw)
        state["on"] = state["on"] or raw >= 110

    def poisoned(self, action):
        o, r, te, tr, i = orig_step(self, action)
        return o, float("nan") if state["on"] else r, te, tr, i

    runs_module.TrainingRun.after_step, MultiGoalEnv.step = watch, poisoned
    try:
        res = cli_run(a)
    finally:
        runs_module.TrainingRun.after_step, MultiGoalEnv.step = orig_after, orig_step
    return res


shutil.rmtree(ROOT, ignore_errors=True)
counts = {"clear": 0, "obscure": 0, "silent": 0}
for name, verdict, detail in results:
    if "NEVER" in detail:
        verdict = "clear"
    counts[verdict] += 1
    print(f"{verdict:8s} {name:62s} {detail}")
print(f"\n{len(results)} inputs: {counts}")
