"""The data sets load from an installed wheel, not only from a source checkout."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_every_data_set(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stderr[-2000:]}")
    (whl,) = wheels.glob("sparselmm-0.1.0-*.whl")
    target = tmp_path / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(whl)],
        capture_output=True, text=True, timeout=600,
    )
    assert inst.returncode == 0, inst.stderr
    script = textwrap.dedent(
        """
        import sparselmm, sparselmm.datasets as D
        assert sparselmm.__file__.startswith(TARGET), sparselmm.__file__
        for name in D.names():
            df = D.load(name)
            assert len(df) > 0, name
            print(name, df.shape)
        print("timss", D.load_timss().shape)
        """
    ).replace("TARGET", repr(str(target)))
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "InstEval (73421, 7)" in run.stdout and "timss (7097, 7)" in run.stdout
    assert len([ln for ln in run.stdout.splitlines() if ln]) == 17
