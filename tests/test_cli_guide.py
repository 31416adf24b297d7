"""A CLI that guides: shipped configs by default (named), an estimated total time otherwise, help and
`mmdistill configs` that list them, progress lines, one input size per dataset, a readable `data info`,
honest `compare` and `report` pages, a README that only points into the repository."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from data_fixtures import make_av_root
from mmdistill.cli import main
from mmdistill.shipped import repo_root, shipped_config, shipped_configs
from test_runs_guard import FAST_EVAL, TINY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_av_root(tmp_path_factory.mktemp("guide"), takes=7)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))


def test_shipped_config_is_used_and_named(tmp_path, root, capsys):
    run = tmp_path / "rnd"
    assert main(["distill", "--method", "random", "--dataset", "av-digits", "--ipc", "1", "--out", str(run),
                 "--data-root", str(root), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "configs/coreset/random_av-digits.yaml" in err, err
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"] == {"n_mels": 32, "frames": 32} and cfg["ipc"] == 1  # the CLI budget beats the file's


def test_estimated_total_time_without_a_shipped_config(tmp_path, root, capsys):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("method: dm\ndataset: av-digits\nipc: 1\n")
    sets = [a for a in TINY if a.startswith("--set=")]
    assert main(["distill", "--config", str(cfg), *sets, "--set=params.iterations=8", "--out", str(tmp_path / "r"),
                 "--data-root", str(root)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"dm: [0-9.]+ s/iteration -> estimated total [0-9.]+ (s|min|h) for 8 iterations", err), err
    assert "using the shipped config" not in err


def test_distill_help_lists_methods_and_shipped_configs(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    out = capsys.readouterr().out
    assert "methods:" in out and re.search(r"\bdm\b", out) and "herding" in out and "mdm" in out
    assert "configs/av/dm_av-digits.yaml" in out and "configs/vl/mdm_emoji.yaml" in out


def test_configs_lists_budget_iterations_and_measured_time_from_the_benchmarks(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "repo"
    (fake / "configs" / "av").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "av" / "dm_av-digits.yaml", fake / "configs" / "av")
    monkeypatch.setenv("MMDISTILL_REPO", str(fake))
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"dm\s+av-digits\s+10 ipc\s+100\s+not measured\s+configs/av/dm_av-digits.yaml", out), out
    (fake / "benchmarks").mkdir()
    row = {"method": "dm", "dataset": "av-digits", "budget": 10, "budget_unit": "ipc", "eval_arch": "convnet",
           "wall_s": 321.0, "data_params": {"n_mels": 32, "frames": 32}}
    other = {**row, "wall_s": 9999.0, "data_params": {}}  # another input size: not this config's time
    (fake / "benchmarks" / "mine.json").write_text(json.dumps([row, other]))
    assert main(["configs", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["measured"] == "5.3 min (mine)" and r["iterations"] == 100 and r["budget"] == "10 ipc"


def test_every_av_digits_config_reads_the_same_input_size():
    sizes = {c.rel(): json.dumps(c.data, sort_keys=True) for c in shipped_configs(REPO) if c.dataset == "av-digits"}
    assert len(sizes) >= 6 and len(set(sizes.values())) == 1, sizes
    assert shipped_config("herding", "av-digits", REPO).data == shipped_config("dm", "av-digits", REPO).data


def test_data_info_prints_a_table_and_json_on_request(root, capsys):
    assert main(["data", "info", "av-digits", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^split\s+pairs\s+shapes", out, re.M) and re.search(r"^train\s+\d+\s+audio 1x64x64", out, re.M)
    assert not out.lstrip().startswith("{")
    assert main(["data", "info", "av-digits", "--data-root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["pairs"] > 0


def test_progress_lines_and_the_full_data_reference_in_the_report(tmp_path, root, capsys):
    run = tmp_path / "run"
    assert main(["distill", *TINY, "--ipc", "1", "--out", str(run), "--data-root", str(root)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), *FAST_EVAL, "--data-root", str(root)]) == 0
    err = capsys.readouterr().err
    assert "evaluation sweep: 1/2" in err and "seed0 done in" in err, err
    assert main(["report", str(run), "--no-plots", "--data-root", str(root)]) == 0
    html = (run / "report.html").read_text()
    assert "Full-data reference not computed yet" in html and f"evaluate --real --like {run}" in html
    # the reference the report asks for: same dataset, data parameters and protocol fields, cached
    assert main(["evaluate", "--real", "--like", str(run), "--data-root", str(root)]) == 0
    err = capsys.readouterr().err
    assert "full-data/av-digits-" in err and "/3" in err
    assert list((tmp_path / "cache" / "full-data").glob("av-digits-*/results.json"))
    assert main(["report", str(run), "--no-plots", "--data-root", str(root)]) == 0
    html = (run / "report.html").read_text()
    assert "% of full retained" in html and "full training set" in html
    assert re.search(r"<td[^>]*>\d+\.\d%</td>", html)


def test_report_shows_every_audio_row_in_pages(tmp_path):
    from mmdistill.report.build import build_report
    from mmdistill.report.sections import Options
    from test_report import make_av_run, section

    run = make_av_run(tmp_path, ipc=3)  # 6 audio rows
    aud = section(build_report(run, opt=Options(gl_iters=2, audio_page=4)).read_text(), "audio")
    assert aud.count('class="card"') == 6 and aud.count("<details") == 2 and "rows 5-6 of 6" in aud


def test_compare_warns_on_data_params_and_draws_one_budget_as_bars(tmp_path, capsys):
    from test_report import make_av_run

    a, b = make_av_run(tmp_path / "a", "dm", 2, 60.0), make_av_run(tmp_path / "b", "herding", 2, 50.0)
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    cfg["data"] = {"n_mels": 64, "frames": 64}
    (b / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "differ in data parameters" in err and "n_mels" in err
    html = out.read_text()
    assert "differ in data parameters" in html and "bar chart" in html.lower()


def test_readme_points_only_into_the_repository():
    text = (REPO / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)#]+)", text) if not t.startswith(("http://", "https://"))]
    assert all((REPO / t).exists() for t in links), [t for t in links if not (REPO / t).exists()]
    outside = [m for m in re.findall(r"\.\./shared/[\w./-]+", text) if not m.startswith("../shared/data")]
    assert outside == [], outside
    assert repo_root() == REPO


def test_repo_root_outside_the_source_tree(tmp_path, monkeypatch):
    """A wheel install (package not inside a checkout) finds configs/ from the current directory or a parent, and
    has no shipped configs elsewhere instead of reading a site-packages path."""
    from mmdistill import shipped

    monkeypatch.delenv("MMDISTILL_REPO", raising=False)
    fake_pkg = tmp_path / "site-packages" / "mmdistill" / "shipped.py"
    fake_pkg.parent.mkdir(parents=True)
    monkeypatch.setattr(shipped, "__file__", str(fake_pkg))
    clone = tmp_path / "clone"
    (clone / "configs" / "av").mkdir(parents=True)
    (clone / "benchmarks").mkdir()
    (clone / "sub").mkdir()
    monkeypatch.chdir(clone / "sub")
    assert shipped.repo_root() == clone.resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert shipped.repo_root() == elsewhere.resolve() and shipped.shipped_configs() == []
    monkeypatch.setenv("MMDISTILL_REPO", str(clone))
    assert shipped.repo_root() == clone
