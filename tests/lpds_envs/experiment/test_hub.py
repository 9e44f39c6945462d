"""Pushing runs and decoders to the Hugging Face Hub, offline: ``huggingface_hub``'s own client (``create_repo``,
``upload_folder`` -> preupload + commit, ``hf_hub_download``) talks over HTTP to a small local stub of the Hub API
on 127.0.0.1, which stores what was committed and serves it back."""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import constants

from lpds_envs.decoders import FlowDecoder, load_decoder
from lpds_envs.experiment import cli
from lpds_envs.experiment.config import UsageError
from lpds_envs.experiment.hub import agent_card, push_decoder, push_run

ENV = "LPDS-MultiGoal-v0"
ROOT = Path(__file__).resolve().parents[3]


class HubStub(ThreadingHTTPServer):
    """The Hub endpoints ``upload_folder`` and ``hf_hub_download`` use, over in-memory repos."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: list[dict] = []
        self.created: list[dict] = []
        self.unknown: list[str] = []
        self.validated: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: HubStub

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, status: int, payload: dict | list, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/api/validate-yaml":  # upload_folder checks a README's metadata before uploading
            return self._validate(json.loads(body)["content"])
        if self.path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            self.server.created.append({**req, "auth": self.headers.get("authorization")})
            self.server.repos.setdefault(repo_id, {})
            return self._json(200, {"url": f"{self.server.url}/{repo_id}", "name": repo_id})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)(\?.*)?", self.path)
        if m is None or m.group(1) not in self.server.repos:
            self.server.unknown.append(f"POST {self.path}")
            return self._json(404, {"error": "not found"})
        repo_id, kind = m.group(1), m.group(2)
        if kind == "preupload":  # every file as a regular git blob: its bytes travel inside the commit
            files = json.loads(body)["files"]
            return self._json(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        files = {
            item["value"]["path"]: base64.b64decode(item["value"]["content"]) for item in lines if item["key"] == "file"
        }
        self.server.repos[repo_id].update(files)
        oid = hashlib.sha1(json.dumps(sorted(files)).encode() + str(len(self.server.commits)).encode()).hexdigest()
        self.server.commits.append({"repo": repo_id, "summary": header["summary"], "files": sorted(files), "oid": oid})
        return self._json(200, {"commitUrl": f"{self.server.url}/{repo_id}/commit/{oid}", "commitOid": oid})

    def _validate(self, content: str) -> None:
        """The Hub's metadata check, in part: the front matter is a YAML mapping and a model index is well formed."""
        self.server.validated.append(content)
        if not content.startswith("---\n"):
            return self._json(200, {"warnings": [{"message": "empty or missing yaml metadata"}]})
        try:
            meta = yaml.safe_load(content.split("---\n")[1])
            assert isinstance(meta, dict), "metadata is not a mapping"
            for entry in meta.get("model-index", []):
                assert isinstance(entry["name"], str)
                for result in entry["results"]:
                    assert result["task"]["type"] and result["dataset"]["type"] and result["dataset"]["name"]
                    assert all(m["type"] and "value" in m for m in result["metrics"])
        except (yaml.YAMLError, AssertionError, KeyError, TypeError) as exc:
            return self._json(400, {"errors": [{"message": f"invalid metadata: {exc!r}"}]})
        return self._json(200, {"warnings": []})

    def _resolve(self, with_body: bool) -> None:
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
        repo = self.server.repos.get(m.group(1)) if m else None
        if repo is None or m.group(3) not in repo:
            if not self.path.startswith("/api/agent-harnesses"):  # the client's best-effort lookup, not ours
                self.server.unknown.append(f"GET {self.path}")
            return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        data = repo[m.group(3)]
        commit = self.server.commits[-1]["oid"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._resolve(False)

    def do_GET(self) -> None:
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/?]+)(\?.*)?", self.path)
        if m is not None and m.group(1) in self.server.repos:  # repo info (snapshot_download lists the files)
            files = sorted(self.server.repos[m.group(1)])
            sha = self.server.commits[-1]["oid"]
            return self._json(200, {"id": m.group(1), "sha": sha, "siblings": [{"rfilename": f} for f in files]})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/?]+)(\?.*)?", self.path)
        if m is not None and m.group(1) in self.server.repos:  # the file listing (paths, sizes, git blob ids)
            repo = self.server.repos[m.group(1)]
            entries = [
                {"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(b"blob %d\0" % len(d) + d).hexdigest()}
                for f, d in sorted(repo.items())
            ]
            return self._json(200, entries)
        self._resolve(True)


@pytest.fixture
def hub(monkeypatch):
    server = HubStub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", server.url)  # HfApi() and the mixin's push_to_hub use it
    monkeypatch.setenv("HF_TOKEN", "hf_stub_token")
    yield server
    server.shutdown()
    server.server_close()
    assert not server.unknown, f"requests the stub does not serve: {server.unknown}"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    tiny = ["learning_starts=40", "batch_size=32", "buffer_size=400", "policy_kwargs.net_arch=[16,16]"]
    cli.main(
        ["train", "--algo", "lpds", "--env", ENV, "--steps", "100", "--out", str(out), "--eval-freq", "50",
         "--eval-episodes", "2", "--no-progress", "--set", *tiny]
    )  # fmt: skip
    return out / ENV / "lpds" / "seed_0"


def _download(hub_url: str, repo_id: str, cache: Path, code: str) -> str:
    """Run ``code`` in a fresh interpreter whose Hub is the stub (``HF_ENDPOINT``, read at import, as users set it)."""
    env = {"HF_ENDPOINT": hub_url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_TELEMETRY": "1", "PATH": ""}
    env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")})
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # bit-identical only at this process's thread count
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_push_run_uploads_model_config_evaluations_and_card(hub, run, tmp_path):
    commit = push_run(run, "alice/lpds-multigoal")
    assert hub.created == [{"name": "lpds-multigoal", "organization": "alice", "auth": "Bearer hf_stub_token"}]
    assert hub.commits[-1]["files"] == ["README.md", "config.yaml", "evaluations.csv", "model.zip", "progress.csv"]
    assert hub.validated == [hub.repos["alice/lpds-multigoal"]["README.md"].decode()]  # the card's metadata was checked
    assert commit.commit_url.startswith(f"{hub.url}/alice/lpds-multigoal/commit/")
    files = hub.repos["alice/lpds-multigoal"]
    assert files["model.zip"] == (run / "model.zip").read_bytes()  # byte for byte through the commit payload
    card = files["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "lpds" and ENV in meta["tags"] and "reinforcement-learning" in meta["tags"]
    rows = (run / "evaluations.csv").read_text().splitlines()
    final = dict(zip(rows[0].split(","), rows[-1].split(",")))
    ret, std = float(final["mean_return"]), float(final["std_return"])
    results = meta["model-index"][0]["results"]
    assert results[0]["metrics"][0] == {"type": "mean_reward", "value": f"{ret:.2f} +/- {std:.2f}"}
    assert f"return **{ret:.2f} +- {std:.2f}**" in card and "KL budget delta = 0.05" in card
    assert "budget 100 raw env steps" in card and "LagrangianSAC" in card and "[More Information Needed]" not in card
    # the card's own snippet, run against the stub: download the repo, load the agent, act in the env
    snippet = re.search(r"```python\n(.+?)\n```", card, re.S).group(1)
    assert (
        'snapshot_download("alice/lpds-multigoal")' in snippet or "snapshot_download('alice/lpds-multigoal')" in snippet
    )
    out = _download(hub.url, "alice/lpds-multigoal", tmp_path / "cache", snippet + "\nprint('action', action.shape)")
    assert "action (2,)" in out


def test_agent_card_snippet_runs_on_the_local_folder(run):
    card = str(agent_card(run))
    snippet = re.search(r"```python\n(.+?)\n```", card, re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["action"].shape == (2,) and namespace["env"].action_space.contains(namespace["action"])
    assert f"lpds evaluate --model {run}" in card


def test_push_decoder_and_load_it_back_bit_identical(hub, tmp_path):
    torch.manual_seed(0)
    decoder = FlowDecoder(obs_dim=3, action_dim=2, chunk_size=4, hidden_dim=32, num_inference_steps=3)
    folder = tmp_path / "dec"
    decoder.save_pretrained(folder)
    (folder / "training_state.pt").write_bytes(b"resumable state, not for the Hub")
    push_decoder(folder, "bob/tiny-flow", commit_message="a decoder")
    assert hub.commits[-1]["summary"] == "a decoder"
    assert hub.commits[-1]["files"] == ["README.md", "config.json", "model.safetensors"]
    card = hub.repos["bob/tiny-flow"]["README.md"].decode()
    assert 'load_decoder("bob/tiny-flow")' in card and str(folder) not in card
    # download through huggingface_hub from the stub, then decode: the same chunks, bit for bit
    obs, w = torch.randn(5, 3), torch.randn(5, 4, 2)
    torch.save({"obs": obs, "w": w, "out": decoder(obs, w)}, tmp_path / "io.pt")
    code = (
        "import torch; from lpds_envs.decoders import load_decoder\n"
        f"io = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "dec = load_decoder('bob/tiny-flow')\n"
        "assert torch.equal(dec(io['obs'], io['w']), io['out'])\n"
        "print('bit-identical')"
    )
    assert "bit-identical" in _download(hub.url, "bob/tiny-flow", tmp_path / "cache", code)


def test_decoder_push_to_hub_mixin_writes_the_lpds_card(hub):
    decoder = FlowDecoder(obs_dim=2, action_dim=2, chunk_size=1, hidden_dim=16, num_inference_steps=2)
    decoder.push_to_hub("carol/flow", model_card_kwargs={"env_id": ENV})
    files = hub.repos["carol/flow"]
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    card = files["README.md"].decode()
    assert 'load_decoder("carol/flow")' in card and f'gym.make("{ENV}", decoder=decoder)' in card
    assert json.loads(files["config.json"])["decoder_type"] == "flow"


def test_push_cli_and_errors(hub, run, tmp_path, capsys):
    cli.main(["push", str(run), "--repo-id", "dave/agent", "--message", "from the cli"])
    assert "pushed" in capsys.readouterr().out and hub.commits[-1]["summary"] == "from the cli"
    with pytest.raises(SystemExit) as exc:
        cli.main(["push", str(tmp_path), "--repo-id", "dave/agent"])
    assert exc.value.code == 2 and "neither config.yaml" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(UsageError, match="not finished"):
        push_run(unfinished, "dave/agent")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"decoder_type": "flow", "obs_dim": "two"}')
    (bad / "model.safetensors").write_bytes(b"")
    with pytest.raises(UsageError, match="does not load"):
        push_decoder(bad, "dave/bad")


def test_local_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(1)
    decoder = FlowDecoder(obs_dim=4, action_dim=3, chunk_size=2, hidden_dim=32, num_inference_steps=4)
    decoder.save_pretrained(tmp_path)
    obs, w = torch.randn(8, 4), torch.randn(8, 2, 3)
    assert torch.equal(load_decoder(tmp_path)(obs, w), decoder(obs, w))
