"""Report and compare (issue 8) without a browser: page structure, content, audio inversion, bad input.

Run directories are written directly (SyntheticSet.save + config/log/results files) over two tiny
registered datasets, so no shared data is needed: ``report-tiny-vl`` (retrieval, captions, per-channel
norm) and ``report-tiny-av`` (sine-tone log-mels with a recorded front end, so playback can be checked).
The browser checks live in test_report_browser.py and reuse ``make_vl_run`` / ``make_av_run``.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from mmdistill.cli import main
from mmdistill.data import DATASETS
from mmdistill.data.audio import hop_length, logmel, logmel_batch
from mmdistill.data.paired import PairedDataset
from mmdistill.data.root import resolve_data_root
from mmdistill.report.audio import Frontend, logmel_to_wav, mel_to_magnitude
from mmdistill.report.build import build_report
from mmdistill.report.compare import compare_runs
from mmdistill.report.sections import SECTION_IDS, Options, nearest_captions, pick_rows
from mmdistill.synth import SyntheticSet

VL = "report-tiny-vl"
AV = "report-tiny-av"
FE = {"sr": 8000, "n_fft": 128, "hop": 64, "n_mels": 16, "frames": 16, "duration_s": 0.128}
TONES = (400.0, 1800.0)  # class 0 / class 1


def _vl_dataset() -> PairedDataset:
    g = torch.Generator().manual_seed(0)
    n_img = 8
    t2i = torch.arange(n_img).repeat_interleave(2)
    txt = torch.randn(2 * n_img, 6, generator=g)
    caps = [f"caption {i}" for i in range(2 * n_img)]
    caps[3] = "caption 2"  # a repeated caption string (datasets repeat keywords)
    return PairedDataset(VL, "train", "retrieval", {"image": torch.randn(n_img, 3, 8, 8, generator=g), "text": txt},
                         text_to_image=t2i, captions=caps, labels=torch.arange(n_img) % 2, class_names=["even", "odd"],
                         meta={"params": {}, "norm": {"image": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}})


def _tone_logmels(n_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = np.arange(int(FE["sr"] * FE["duration_s"])) / FE["sr"]
    waves, labels = [], []
    for c, f in enumerate(TONES):
        for k in range(n_per_class):
            waves.append((0.3 * np.sin(2 * np.pi * (f + 10 * k) * t)).astype(np.float32))
            labels.append(c)
    mel = logmel_batch(waves, FE["sr"], n_mels=FE["n_mels"], frames=FE["frames"], duration_s=FE["duration_s"], n_fft=FE["n_fft"])
    return mel, torch.tensor(labels)


def _av_dataset() -> PairedDataset:
    mel, lab = _tone_logmels(3)
    mean, std = float(mel.mean()), float(mel.std())
    vis = torch.randn(len(lab), 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return PairedDataset(AV, "train", "classification", {"audio": (mel - mean) / std, "visual": vis}, labels=lab,
                         class_names=["low", "high"],
                         meta={"params": {}, "audio_frontend": dict(FE),
                               "norm": {"audio": {"mean": mean, "std": std}, "visual": {"mean": 0.5, "std": 0.25}}})


class _TinyVL:
    @staticmethod
    def load(split: str = "train", root=None, **_: object) -> PairedDataset:
        return _vl_dataset()

    @staticmethod
    def info() -> dict:
        return {"name": VL}


class _TinyAV:
    @staticmethod
    def load(split: str = "train", root=None, **_: object) -> PairedDataset:
        return _av_dataset()

    @staticmethod
    def info() -> dict:
        return {"name": AV}


for _name, _cls in ((VL, _TinyVL), (AV, _TinyAV)):
    if _name not in DATASETS:
        DATASETS.register(_name)(_cls)


def _write_run(d: Path, syn: SyntheticSet, *, log: list[dict] | None, results: dict | None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    syn.save(d)
    budget = syn.meta["budget"]
    cfg = {"method": syn.meta["method"], "dataset": syn.meta["dataset"], budget["unit"]: budget["value"], "seed": 0, "data": {}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if log is not None:
        (d / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    if results is not None:
        (d / "results.json").write_text(json.dumps(results))
    return d


def _results(metric: str, mean: float, base: float, budget: dict) -> dict:
    return {"dataset": "x", "method": "m", "budget": budget, "protocol": {"arch": "convnet", "seeds": [0, 1], "selection": "last"},
            "metrics": {metric: {"mean": mean, "std": 0.5, "per_seed": [mean - 0.5, mean + 0.5]}},
            "random_subset_same_size": {"metrics": {metric: {"mean": base, "std": 0.2, "per_seed": [base]}}}}


def make_vl_run(tmp: Path, name: str = "lors", pairs: int = 6, r_mean: float = 30.0) -> Path:
    """A LoRS-like run: learned low-rank similarity, a log with losses and periodic evaluation, results."""
    ds = _vl_dataset()
    g = torch.Generator().manual_seed(pairs)
    text = torch.randn(pairs, 6, generator=g)
    text[0] = ds.tensors["text"][5] * 3.0  # same direction as real caption 5 -> its nearest caption, cosine 1
    extras = {"sim_a": torch.ones(pairs), "sim_L": torch.randn(pairs, 2, generator=g), "sim_R": torch.randn(pairs, 2, generator=g)}
    meta = {"method": name, "dataset": VL, "task": "retrieval", "budget": {"value": pairs, "unit": "pairs"}, "seed": 0,
            "floats_per_pair": 3 * 8 * 8 + 6, "class_names": ["even", "odd"],
            "similarity": {"kind": "lowrank", "alpha": 1.0, "rank": 2, "loss": "wbce", "form": "diag(a) + (alpha/rank) L R^T"}}
    syn = SyntheticSet({"image": torch.randn(pairs, 3, 8, 8, generator=g), "text": text}, labels=torch.arange(pairs) % 2,
                       extras=extras, meta=meta)
    log = [{"event": "start", "it": -1, "method": name, "eval": {"r_mean": 9.0, "ir@1": 0.5}}]
    for it in range(6):
        rec = {"it": it, "s_per_iter": 0.1, "loss": 2.0 / (it + 1), "grad_norm": 1.0 + it}
        if it in (2, 4):
            rec["eval"] = {"r_mean": 10.0 + it, "ir@1": 1.0 + it}
        log.append(rec)
    log.append({"event": "done", "it": 6})
    return _write_run(tmp / f"{name}-{pairs}", syn, log=log, results=_results("r_mean", r_mean, r_mean - 5, meta["budget"]))


def make_av_run(tmp: Path, name: str = "dm", ipc: int = 2, acc: float = 60.0, results: bool = True) -> Path:
    """A DM-like AV run whose audio rows are real tone log-mels (standardised like the dataset)."""
    ds = _av_dataset()
    idx = torch.tensor([0, 1, 3, 4][: 2 * ipc] if ipc <= 2 else list(range(6)))
    meta = {"method": name, "dataset": AV, "task": "classification", "budget": {"value": ipc, "unit": "ipc"}, "seed": 0,
            "floats_per_pair": 16 * 16 + 64, "class_names": ["low", "high"]}
    syn = SyntheticSet({"audio": ds.tensors["audio"][idx].clone(), "visual": ds.tensors["visual"][idx].clone()},
                       labels=ds.labels[idx].clone(), meta=meta)
    log = [{"event": "start", "it": -1}] + [{"it": i, "s_per_iter": 0.01, "loss": 1.0 - 0.1 * i} for i in range(5)]
    return _write_run(tmp / f"{name}-{ipc}", syn, log=log, results=_results("fused_acc", acc, acc - 10, meta["budget"]) if results else None)


def section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


# ----------------------------------------------------------------------------- tests


def test_vl_report_structure_and_content(tmp_path):
    run = make_vl_run(tmp_path)
    out = build_report(run)
    assert out == run / "report.html"
    html = out.read_text()
    vl_ids = [i for i in SECTION_IDS if i != "audio"]  # no audio in an image-text set: the section is omitted
    assert re.findall(r'<section id="([^"]+)"', html) == vl_ids
    # self-contained: every src is a data: URI, no external references
    assert all(s.startswith("data:") for s in re.findall(r'src="([^"]+)"', html))
    assert "http://" not in html and "https://" not in html
    assert "r_mean" in section(html, "metrics") and "+5.00" in section(html, "metrics")  # delta vs random subset
    assert section(html, "images").count("<img") == 1
    txt = section(html, "text")
    first = re.search(r"<tr><td>0</td>.*?</tr>", txt, re.S).group(0)
    assert re.search(r"<li>caption 5 <span class=\"note\">\(1\.000\)", first)
    sim = section(html, "similarity")
    assert "<img" in sim and "6 x 6" in sim
    cur = section(html, "curves")
    assert cur.count("<img") == 2 and "Periodic evaluation" in cur
    assert "<td>grad_norm</td>" in cur and "wall-clock seconds" in cur  # each loss-curve name is explained
    assert {p.name for p in (run / "plots").iterdir()} >= {"similarity.png", "curves_loss.png", "curves_eval.png", "images_image.png"}
    assert build_report(run, tmp_path / "again.html").read_text() == html  # deterministic


def test_av_report_audio_players_decode(tmp_path):
    run = make_av_run(tmp_path)
    html = build_report(run, opt=Options(max_audio=3, gl_iters=8)).read_text()
    aud = section(html, "audio")
    wavs = re.findall(r'<audio [^>]*src="data:audio/wav;base64,([^"]+)"', aud)
    assert len(wavs) == 3 and aud.count('class="card"') == 3
    wave, sr = sf.read(io.BytesIO(base64.b64decode(wavs[0])))
    assert sr == FE["sr"] and len(wave) == int(FE["sr"] * FE["duration_s"]) and np.abs(wave).max() > 0.5
    assert re.findall(r'<section id="([^"]+)"', html) == ["overview", "metrics", "images", "audio", "curves"]
    assert "#0 class low" in aud and "#2 class high" in aud  # round-robin over classes


def test_griffin_lim_recovers_the_tone():
    fe = Frontend(sr=8000, n_fft=256, hop=hop_length(8000, 64, 1.0), n_mels=64, frames=64, duration_s=1.0)
    t = np.arange(8000) / 8000
    wave = (0.4 * np.sin(2 * np.pi * 1000 * t) * (t < 0.5) + 0.4 * np.sin(2 * np.pi * 2500 * t) * (t >= 0.5)).astype(np.float32)
    lm = logmel(wave, 8000)[0].numpy()
    rec, sr = sf.read(io.BytesIO(logmel_to_wav(lm, fe, iters=16)))
    lm2 = logmel(rec.astype(np.float32), 8000)[0].numpy()
    assert (lm.argmax(0) == lm2.argmax(0)).mean() > 0.9  # same dominant band in >90 % of frames
    spec = np.abs(np.fft.rfft(rec[:4000]))
    assert abs(np.fft.rfftfreq(4000, 1 / 8000)[spec.argmax()] - 1000) < 60
    with pytest.raises(ValueError):
        mel_to_magnitude(lm[:10], fe)


def test_nearest_captions_and_row_picking():
    real = torch.eye(4)
    syn = torch.tensor([[0.0, 2.0, 0.1, 0.0], [1.0, 0.0, 0.0, 0.9]])
    idx, cos = nearest_captions(syn, real, 2)
    assert idx.tolist() == [[1, 2], [0, 3]] and cos[0, 0] > 0.99
    idx, _ = nearest_captions(syn, real, 2, captions=["a", "b", "b", "c"])  # "b" twice: skip the repeat
    assert idx[0].tolist() == [1, 0] or idx[0].tolist() == [1, 3]
    labels = np.array([0, 0, 0, 1, 1, 2])
    assert pick_rows(labels, 6, 3) == [0, 3, 5] and pick_rows(None, 6, 2) == [0, 1]


def test_missing_pieces_are_reported_not_raised(tmp_path, capsys):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "config.yaml").write_text("method: dm\ndataset: no-such-dataset\nipc: 1\n")
    assert main(["report", str(run), "--no-plots"]) == 0
    html = (run / "report.html").read_text()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html
    assert "synthetic.safetensors" in section(html, "images") and "No results" in section(html, "metrics")
    assert "log.jsonl missing" in section(html, "curves")
    assert "no-such-dataset" in section(html, "overview")
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_compare_table_and_page(tmp_path, capsys):
    runs = [make_av_run(tmp_path, "dm", ipc, acc) for ipc, acc in ((1, 40.0), (2, 55.0))]
    runs.append(make_av_run(tmp_path, "avdd", 2, 62.0))
    runs.append(make_av_run(tmp_path / "x", "noeval", 1, results=False))
    full = tmp_path / "full-av"  # as `mmdistill evaluate --real` writes it: results.json only, method "full"
    full.mkdir()
    (full / "results.json").write_text(json.dumps({**_results("fused_acc", 80.0, 0.0, {"value": 6, "unit": "pairs"}),
                                                   "method": "full", "random_subset_same_size": None}))
    runs.append(full)
    out = tmp_path / "cmp" / "compare.html"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fused_acc" in printed and "55.00 ± 0.50" in printed
    html = out.read_text()
    assert '<section id="compare-plot">' in html and '<section id="compare-table">' in html
    assert "results.json missing" in html
    rows = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("run,method,dataset")
    assert rows[5].split(",")[1] == "full" and rows[5].endswith(",")  # no problem noted for the full-data line
    assert rows[2].split(",")[4] == "4.0" and rows[2].split(",")[5] == "55.0"  # pair-equivalents, mean
    _, metric, _ = compare_runs([make_vl_run(tmp_path)], tmp_path / "vl.html")
    assert metric == "r_mean"
    assert main(["compare", str(runs[3]), "--out", str(tmp_path / "none.html")]) == 2
    assert main(["compare", str(tmp_path / "missing-dir")]) == 2


@pytest.mark.skipif(not (resolve_data_root() / "fsdd").is_dir(), reason="../shared/data not present")
def test_report_on_a_real_av_digits_run(tmp_path):
    run = tmp_path / "rnd"
    assert main(["distill", "--method", "random", "--dataset", "av-digits", "--ipc", "1", "--out", str(run), "--quiet"]) == 0
    assert main(["report", str(run), "--max-audio", "2", "--gl-iters", "4", "--max-images", "10"]) == 0
    html = (run / "report.html").read_text()
    aud = section(html, "audio")
    assert aud.count("data:audio/wav;base64,") == 2 and "8000 Hz" in aud
    assert "de-standardised with the dataset" in section(html, "images")


@pytest.mark.skipif(not (resolve_data_root() / "emoji-captions").is_dir(), reason="../shared/data not present")
def test_report_on_a_real_emoji_coreset(tmp_path):
    """A coreset's text vectors are real caption vectors: each one's nearest caption is itself (cosine 1)."""
    run = tmp_path / "emo"
    assert main(["distill", "--method", "random", "--dataset", "emoji", "--pairs", "6", "--out", str(run), "--quiet"]) == 0
    assert main(["report", str(run), "--max-text", "6", "--no-plots"]) == 0
    txt = section((run / "report.html").read_text(), "text")
    rows = re.findall(r"<tr>(.*?)</tr>", txt, re.S)[1:]
    assert len(rows) == 6 and "mean top-1 cosine 1.000" in txt
    for r in rows:
        selected = re.findall(r"<td>(.*?)</td>", r, re.S)[2]
        assert f"<li>{selected} <span class=\"note\">(1.000)" in r, r
