"""tools/pretrain.py: the loss sees no zero padding, and a short run writes a prior that load_model opens."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from napari_selfsup_denoise.engine.model import load_model
from napari_selfsup_denoise.engine.model_file import read_metadata

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _pretrain():
    spec = importlib.util.spec_from_file_location("pretrain", TOOLS / "pretrain.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["pretrain"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_the_valid_margin_leaves_outputs_identical_to_a_whole_image_pass() -> None:
    pretrain = _pretrain()
    torch.manual_seed(0)
    net, _ = pretrain.build(2)
    net = net.double().eval()  # float64: outputs that see no padding agree to rounding (~1e-16)
    m = pretrain.valid_margin(net)
    big = torch.randn(1, 1, 160, 160, dtype=torch.float64)
    with torch.no_grad():
        whole = net(big)[:, :, 24:136, 32:144]
        part = net(big[:, :, 24:136, 32:144])  # a 112 x 112 crop on the pooling grid
    diff = (part - whole).abs()[:, :, :, m : 112 - m]
    assert float(diff[:, :, m : 112 - m].max()) < 1e-12
    # ten rows further out the crop's zero padding shows: the margin is needed
    assert float(diff[:, :, m - 10 : m - 6].max()) > 1e-9


@pytest.mark.slow
def test_a_short_run_writes_a_loadable_prior_and_resumes(tmp_path) -> None:
    out = tmp_path / "p.sdmodel"
    env = {**os.environ, "SELFSUP_DENOISE_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(TOOLS / "pretrain.py"), "--steps", "2", "--pool", "2", "--image", "128",
           "--crop", "112", "--batch", "1", "--out", str(out), "--log-every", "0"]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=120)
    prior = read_metadata(out)["summary"]["prior"]
    assert prior["steps"] == 2 and prior["seed"] == 0 and prior["generator_version"]
    assert {"git_commit", "wall_seconds", "device", "threads", "pretrain_args", "objective"} <= set(prior)
    model = load_model(out)
    assert (model.config.depth, model.config.base_channels, model.ndim, model.channels) == (2, 24, 2, 1)
    cmd[cmd.index("--steps") + 1] = "3"
    run = subprocess.run([*cmd, "--resume"], check=True, env=env, capture_output=True, text=True, timeout=120)
    assert "resumed at step 2" in run.stdout
    assert read_metadata(out)["summary"]["prior"]["steps"] == 3
