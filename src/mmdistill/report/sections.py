"""The sections of a run report, one function each: ``(RunData, Options, Figures) -> Section``.

Sections appear in the order of :data:`SECTION_IDS`. A section that does not apply to the run's set (audio for
an image-text set, text or a similarity matrix for an audio-visual one) is omitted (its builder returns None);
when the set itself is missing every section stays and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from . import figures as F
from .audio import Frontend, logmel_to_wav
from .html import Section, audio_tag, esc, fmt, img_tag, note, table
from .load import RunData

SECTION_IDS = ("overview", "metrics", "images", "audio", "text", "similarity", "curves")
IMAGE_KEYS = ("visual", "image")


@dataclass
class Options:
    """Report knobs: how many items to draw, Griffin-Lim rounds, nearest captions per text vector."""

    max_images: int = 40
    max_audio: int | None = None  # None: every row (in pages of ``audio_page`` rows)
    audio_page: int = 10
    max_text: int = 20
    neighbours: int = 3
    gl_iters: int = 32
    max_sim: int = 200


@dataclass
class Figures:
    """Collects every PNG a page shows (so they can also be saved under ``plots/``)."""

    pngs: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, png: bytes, alt: str) -> str:
        self.pngs[name] = png
        return img_tag(png, alt)


# ----------------------------------------------------------------------------- helpers


def display_set(rd: RunData) -> tuple[Any, str]:
    """The synthetic set as models see it (factorised sets decoded) and a note about decoding."""
    syn = rd.syn
    layout = dict(syn.meta.get("layout") or {}) if syn is not None else {}
    if syn is None or int(layout.get("factor", 1)) <= 1:
        return syn, ""
    from ..factor import decode_set

    dec = decode_set(syn)
    return dec, (f"Factorised set (factor {layout.get('factor')}, layout {layout}): {len(syn)} stored rows decoded to "
                 f"{len(dec)} pairs as evaluation does (mmdistill.factor.decode_set).")


def hard_labels(syn: Any) -> np.ndarray | None:
    if syn is None or syn.labels is None:
        return None
    lab = syn.labels
    if syn.soft_labels:
        lab = lab.argmax(dim=1)
    return lab.detach().cpu().numpy().astype(np.int64).reshape(-1)


def pick_rows(labels: np.ndarray | None, n: int, limit: int) -> list[int]:
    """Up to ``limit`` row indices: round-robin over classes when labelled (every class shows), else the first."""
    if labels is None or len(labels) != n:
        return list(range(min(n, limit)))
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels.tolist()):
        by_class.setdefault(int(c), []).append(i)
    out: list[int] = []
    depth = 0
    while len(out) < min(n, limit):
        added = False
        for c in sorted(by_class):
            if depth < len(by_class[c]) and len(out) < limit:
                out.append(by_class[c][depth])
                added = True
        if not added:
            break
        depth += 1
    return sorted(out, key=lambda i: (int(labels[i]), i))


def row_title(i: int, labels: np.ndarray | None, class_names: list[str] | None) -> str:
    if labels is None:
        return f"#{i}"
    c = int(labels[i])
    name = class_names[c] if class_names and 0 <= c < len(class_names) else str(c)
    name = name if len(name) <= 12 else name[:11] + "…"
    return f"#{i}\n{name}"


def _norm_for(rd: RunData, modality: str) -> dict[str, Any] | None:
    norm = rd.dataset_meta().get("norm")
    if isinstance(norm, dict) and isinstance(norm.get(modality), dict):
        return norm[modality]
    return None


def _missing_set(rd: RunData) -> str:
    return note(f"No synthetic set to show: {rd.syn_error}", "warn")


# ----------------------------------------------------------------------------- sections


def overview(rd: RunData, opt: Options, figs: Figures) -> Section:
    meta = rd.meta
    budget = rd.manifest.get("budget") or (rd.syn.budget() if rd.syn is not None else {})
    req = meta.get("budget") or {}
    if not req:
        unit = "ipc" if rd.config.get("ipc") is not None else "pairs" if rd.config.get("pairs") is not None else None
        req = {"value": rd.config[unit], "unit": unit} if unit else {}
    rows: list[tuple[str, Any]] = [
        ("run directory", str(rd.path)),
        ("method", rd.method),
        ("dataset", rd.dataset_name),
        ("task", meta.get("task", "?")),
        ("requested budget", f"{req.get('value')} {req.get('unit')}" if req else "?"),
        ("stored rows", budget.get("stored_rows", "?")),
        ("stored floats", budget.get("stored_floats", "?")),
        ("pair-equivalents", budget.get("pair_equivalents", "?")),
        ("seed", meta.get("seed", rd.config.get("seed", "?"))),
        ("code version", rd.manifest.get("code_version", "?")),
    ]
    if rd.syn is not None:
        shapes = ", ".join(f"{k} {tuple(t.shape)}" for k, t in sorted(rd.syn.tensors.items()))
        extras = ", ".join(f"{k} {tuple(t.shape)}" for k, t in sorted(rd.syn.extras.items())) or "none"
        labels = "none" if rd.syn.labels is None else ("soft " if rd.syn.soft_labels else "hard ") + str(tuple(rd.syn.labels.shape))
        rows += [("tensors", shapes), ("labels", labels), ("extras", extras)]
    body = table(["field", "value"], rows)
    msgs = [m for m in (rd.syn_error, rd.config_error, rd.dataset_error) if m]
    body += "".join(note(m, "warn") for m in msgs)
    if rd.config:
        body += f"<details><summary>config.yaml (resolved)</summary><pre>{esc(json.dumps(rd.config, indent=1, default=str))}</pre></details>"
    return Section("overview", "Run", body)


def _metric_rows(res: dict[str, Any], full: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    base = (res.get("random_subset_same_size") or {}).get("metrics") or {}
    ref = (full or {}).get("metrics") or {}
    rows = []
    for name, m in res["metrics"].items():
        if not isinstance(m, dict):
            continue
        b = base.get(name) or {}
        per_seed = ", ".join(fmt(float(v)) for v in m.get("per_seed", []))
        delta = m.get("mean") - b["mean"] if isinstance(m.get("mean"), (int, float)) and "mean" in b else None
        row: tuple[Any, ...] = (name, m.get("mean"), m.get("std"), per_seed,
                                f"{fmt(b['mean'])} ± {fmt(b.get('std', 0.0))}" if b else "-",
                                "-" if delta is None else f"{delta:+.2f}")
        if full is not None:
            f = ref.get(name) or {}
            kept = (100.0 * m["mean"] / f["mean"] if isinstance(f.get("mean"), (int, float)) and f["mean"]
                    and isinstance(m.get("mean"), (int, float)) else None)
            row += (f"{fmt(f['mean'])} ± {fmt(f.get('std', 0.0))}" if f else "-", "-" if kept is None else f"{kept:.1f}%")
        rows.append(row)
    return rows


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and len(json.dumps(v, default=str)) > 80:
            out += _flat(v, key + ".")
        else:
            out.append((key, v if isinstance(v, str) else json.dumps(v, default=str)))
    return out


def metrics(rd: RunData, opt: Options, figs: Figures) -> Section:
    if not rd.results:
        body = note("No results*.json in this run directory: evaluate it with `mmdistill evaluate RUN_DIR` "
                    "(and `--arch NAME` for cross-architecture results).", "warn")
    else:
        parts = []
        for fname, res in rd.results.items():
            arch = res.get("eval_arch") or "default"
            full = rd.reference.get(fname)
            parts.append(f"<h3>{esc(fname)} (evaluation architecture: {esc(arch)})</h3>")
            head = ["metric", "mean", "std", "per seed", "random subset, same size", "Δ vs random"]
            if full is not None:
                head += ["full training set", "% of full retained"]
            parts.append(table(head, _metric_rows(res, full), numeric=[False] + [True] * (len(head) - 1)))
            if full is not None:
                parts.append(note(f"Full training set: the same protocol trained on all {full.get('n_train_pairs', '')} "
                                  f"training pairs (cached in {rd.reference_dir}); % retained = set / full."))
            else:
                parts.append(note("Full-data reference not computed yet: `mmdistill evaluate --real --like "
                                  f"{rd.path}`" + (f" --arch {esc(res.get('eval_arch'))}" if fname != "results.json" else "")
                                  + " (cached, once per dataset and protocol) adds it and the % retained here."))
            proto = res.get("protocol") or {}
            parts.append(f"<details><summary>protocol ({len(proto)} fields)</summary>"
                         + table(["field", "value"], _flat(proto)) + "</details>")
        body = "\n".join(parts)
    body += "".join(note(f"{k}: {v}", "warn") for k, v in rd.results_errors.items())
    return Section("metrics", "Protocol and metrics", body)


def images(rd: RunData, opt: Options, figs: Figures) -> Section | None:
    syn, dec_note = display_set(rd)
    if syn is None:
        return Section("images", "Synthetic images", _missing_set(rd))
    key = next((k for k in IMAGE_KEYS if k in syn.tensors), None)
    if key is None or syn.tensors[key].dim() != 4:
        return None  # no image modality: the section does not apply
    x = syn.tensors[key].detach().float().cpu().numpy()
    labels = hard_labels(syn)
    rows = pick_rows(labels, len(x), opt.max_images)
    if not rows:
        return Section("images", "Synthetic images", note(f"{len(x)} '{key}' rows; none drawn (--max-images 0)."))
    norm = _norm_for(rd, key)
    disp = F.to_display(x[rows], norm)
    names = syn.meta.get("class_names")
    titles = [row_title(i, labels, names) for i in rows]
    body = figs.add(f"images_{key}", F.image_grid(disp, titles), f"synthetic {key} images")
    how = "de-standardised with the dataset's statistics" if norm else "scaled by the set's 1st/99th percentiles (dataset statistics unavailable)"
    body = note(f"{len(rows)} of {len(x)} '{key}' rows, {how}." + (" " + dec_note if dec_note else "")) + body
    return Section("images", "Synthetic images", body)


def audio(rd: RunData, opt: Options, figs: Figures) -> Section | None:
    title = "Synthetic audio (spectrograms + Griffin-Lim playback)"
    syn, dec_note = display_set(rd)
    if syn is None:
        return Section("audio", title, _missing_set(rd))
    if "audio" not in syn.tensors:
        return None  # no audio modality
    a = syn.tensors["audio"].detach().float().cpu().numpy()
    if a.ndim != 4:
        return Section("audio", title, note(f"Audio tensor has shape {a.shape}; expected (N, 1, n_mels, frames)."))
    labels = hard_labels(syn)
    rows = pick_rows(labels, len(a), len(a) if opt.max_audio is None else opt.max_audio)
    if not rows:
        return Section("audio", title, note(f"{len(a)} audio rows; none drawn (--max-audio 0)."))
    norm = _norm_for(rd, "audio")
    fe_meta = rd.dataset_meta().get("audio_frontend")
    notes = []
    fe: Frontend | None = None
    if isinstance(fe_meta, dict):
        try:
            fe = Frontend.from_meta(fe_meta)
        except (KeyError, TypeError, ValueError) as e:
            notes.append(f"The dataset's audio front end is incomplete ({e}); no playback.")
    else:
        why = rd.dataset_error or f"dataset {rd.dataset_name!r} records no log-mel front end (meta['audio_frontend'])"
        notes.append(f"No playback: {why}. Spectrograms only.")
    if fe is not None and a.shape[2] != fe.n_mels:
        notes.append(f"Audio has {a.shape[2]} mel bands but the front end has {fe.n_mels}; no playback.")
        fe = None
    if fe is not None and not (norm and "mean" in norm and "std" in norm):
        notes.append("Audio standardisation statistics unknown; playback assumes the stored values are log-mels.")
    mean = float(np.mean(norm["mean"])) if norm and "mean" in norm else 0.0
    std = float(np.mean(norm["std"])) if norm and "std" in norm else 1.0
    lm = a[rows, 0] * std + mean
    vmin, vmax = (float(v) for v in np.percentile(lm, [1, 99.5])) if lm.size else (None, None)
    names = syn.meta.get("class_names")
    cards = []
    for j, i in enumerate(rows):
        t = row_title(i, labels, names).replace("\n", " class ")
        card = figs.add(f"audio_{i}", F.spectrogram(lm[j], t, vmin, vmax), f"spectrogram {t}")
        if fe is not None:
            card += audio_tag(logmel_to_wav(lm[j], fe, iters=opt.gl_iters, seed=i), f"audio {t}")
        cards.append(f'<div class="card">{card}</div>')
    head = (f"{len(rows)} of {len(a)} audio rows (log-mel; y = mel band, x = frame)"
            + (f"; playback: mel pseudo-inverse + {opt.gl_iters} Griffin-Lim iterations at {fe.sr} Hz" if fe else "") + ".")
    body = note(head) + "".join(note(n, "warn") for n in notes) + (note(dec_note) if dec_note else "")
    page = max(1, opt.audio_page)
    if len(cards) <= page:
        body += f'<div class="cards">{"".join(cards)}</div>'
    else:  # paged: one collapsible block per page, the first one open
        for k in range(0, len(cards), page):
            body += (f'<details{" open" if k == 0 else ""}><summary>rows {k + 1}-{min(k + page, len(cards))} of '
                     f'{len(cards)}</summary><div class="cards">{"".join(cards[k:k + page])}</div></details>')
    return Section("audio", title, body)


def nearest_captions(syn_text: torch.Tensor, real_text: torch.Tensor, k: int,
                     captions: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine neighbours of each synthetic vector among the real ones: (indices, cosines), (N, k).

    With ``captions``, a caption string already listed for a row is skipped (datasets repeat short keywords
    across items), so the ``k`` neighbours are ``k`` different texts; rows may then hold fewer than ``k``
    (index -1, cosine NaN).
    """
    s = torch.nn.functional.normalize(syn_text.detach().double(), dim=1)
    r = torch.nn.functional.normalize(real_text.detach().double(), dim=1)
    sims = s @ r.T
    k = min(k, r.shape[0])
    pool = k if captions is None else min(r.shape[0], 8 * k)
    val, idx = torch.topk(sims, pool, dim=1)  # deterministic on CPU
    if captions is None:
        return idx.numpy(), val.numpy()
    out_i = np.full((len(s), k), -1, dtype=np.int64)
    out_v = np.full((len(s), k), np.nan)
    for row in range(len(s)):
        seen: set[str] = set()
        j = 0
        for c, v in zip(idx[row].tolist(), val[row].tolist()):
            if captions[c] in seen:
                continue
            seen.add(captions[c])
            out_i[row, j], out_v[row, j] = c, v
            j += 1
            if j == k:
                break
    return out_i, out_v


def text(rd: RunData, opt: Options, figs: Figures) -> Section | None:
    title = "Text vectors: nearest real captions"
    syn, _ = display_set(rd)
    if syn is None:
        return Section("text", title, _missing_set(rd))
    if "text" not in syn.tensors:
        return None  # no text modality
    ds = rd.dataset
    if ds is None or "text" not in getattr(ds, "tensors", {}) or not getattr(ds, "captions", None):
        why = rd.dataset_error or f"dataset {rd.dataset_name!r} has no caption strings"
        return Section("text", title, note(f"Cannot look up captions: {why}.", "warn"))
    st, real = syn.tensors["text"], ds.tensors["text"]
    if st.dim() != 2 or st.shape[1] != real.shape[1]:
        return Section("text", title, note(f"Synthetic text vectors {tuple(st.shape)} do not match the dataset's "
                                           f"caption vectors {tuple(real.shape)}.", "warn"))
    n = min(len(st), opt.max_text)
    if n == 0 or opt.neighbours == 0:
        return Section("text", title, note(f"{len(st)} synthetic text vectors; none looked up (--max-text/--neighbours 0)."))
    idx, cos = nearest_captions(st[:n], real, opt.neighbours, list(ds.captions))
    stored = syn.meta.get("captions") if isinstance(syn.meta.get("captions"), list) else None
    img_key = next((k for k in IMAGE_KEYS if k in syn.tensors and syn.tensors[k].dim() == 4), None)
    thumbs = None
    if img_key is not None:
        thumbs = F.to_display(syn.tensors[img_key][:n].detach().float().cpu().numpy(), _norm_for(rd, img_key))
    header = ["#"] + (["image"] if thumbs is not None else []) + (["selected caption"] if stored else []) + \
        [f"nearest real captions (cosine, of {len(real)})"]
    rows = []
    for i in range(n):
        r = [esc(i)]
        if thumbs is not None:
            r.append(img_tag(F.thumb_png(thumbs[i]), f"synthetic image {i}", "thumb"))
        if stored:
            r.append(esc(stored[i]) if i < len(stored) else "")
        r.append("<ol>" + "".join(f"<li>{esc(ds.captions[int(j)])} <span class=\"note\">({c:.3f})</span></li>"
                                  for j, c in zip(idx[i], cos[i]) if j >= 0) + "</ol>")
        rows.append(r)
    mean_top1 = float(np.mean(cos[:, 0])) if n else float("nan")
    body = note(f"{n} of {len(st)} synthetic text vectors; mean top-1 cosine {mean_top1:.3f} "
                f"(1.000 means the vector is a real caption, as in a coreset).")
    body += table(header, rows, raw=True)
    return Section("text", title, body)


def similarity(rd: RunData, opt: Options, figs: Figures) -> Section | None:
    title = "Learned similarity matrix (LoRS / RepBlend)"
    syn = rd.syn
    if syn is None:
        return Section("similarity", title, _missing_set(rd))
    if not any(k.startswith("sim_") for k in syn.extras):
        return None  # no learned similarity matrix: evaluation uses one-to-one pairs
    from ..losses.learned_similarity import Similarity

    meta = dict(syn.meta.get("similarity") or {})
    try:
        S = Similarity.from_extras(syn.extras, meta).matrix().detach().double().cpu().numpy()
    except Exception as e:  # noqa: BLE001 - any malformed factor set is reported, not raised
        return Section("similarity", title, note(f"Similarity extras present but unreadable: {e}", "warn"))
    n = S.shape[0]
    shown = S[: opt.max_sim, : opt.max_sim]
    diag = np.diag(S)
    off = S[~np.eye(n, dtype=bool)] if n > 1 else np.zeros(0)
    stats = [("size", f"{n} x {n}"), ("kind", meta.get("kind", "?")), ("form", meta.get("form", "?")),
             ("rank / alpha", f"{meta.get('rank', '-')} / {meta.get('alpha', '-')}"), ("loss", meta.get("loss", "?")),
             ("diagonal mean ± std", f"{diag.mean():.3f} ± {diag.std():.3f}"),
             ("off-diagonal mean ± std", f"{off.mean():.3f} ± {off.std():.3f}" if off.size else "-"),
             ("|S - I|_F / n", f"{np.linalg.norm(S - np.eye(n)) / n:.4f}")]
    cap = "" if n <= opt.max_sim else f" (top-left {opt.max_sim} x {opt.max_sim} of {n} x {n})"
    body = table(["field", "value"], stats) + figs.add("similarity", F.heatmap(shown, "S = learned image-text similarity" + cap),
                                                       "similarity heatmap")
    return Section("similarity", title, body)


#: What the per-iteration series in ``log.jsonl`` mean (exact names first, then prefixes).
SERIES_MEANING = {
    "s_per_iter": "wall-clock seconds of the outer iteration",
    "loss": "the objective the synthetic set minimises (summed over classes for per-class methods)",
    "match_loss": "the matching objective (distribution or trajectory matching) the synthetic set minimises",
    "infonce": "contrastive InfoNCE term between synthetic images and texts",
    "gke_agr": "Gaussian-kernel embedding agreement term (MDM)",
    "gke_dis": "Gaussian-kernel embedding disagreement term (MDM)",
    "start_epoch": "expert epoch the matched trajectory segment starts at",
    "dm": "distribution-matching term: squared distance of real and synthetic mean embeddings",
    "icm": "implicit cross-matching term (AVDD)",
    "cgm": "cross-modal gap matching term (AVDD)",
    "da2": "squared audio mean-embedding gap, summed over classes",
    "dv2": "squared visual mean-embedding gap, summed over classes",
    "dadv": "inner product of the audio and visual mean-embedding gaps",
    "scaled_dm_part": "the distribution-matching part of the loss after scaling",
    "coupling_part": "the audio-visual coupling part of the loss (ICM minus CGM)",
    "l_private": "private (modality-specific) matching term (DAVDD)",
    "l_common": "common (shared) matching term (DAVDD)",
    "l_sample": "sample-level InfoNCE term (DAVDD)",
    "l_align": "cross-modal alignment term (DAVDD)",
    "l_dm": "plain distribution-matching term on fresh random nets (DAVDD)",
    "fresh": "1 when this iteration used fresh random nets instead of the bank",
    "bank_pair": "index of the pretrained net pair drawn from the bank",
    "infonce_skipped": "1 when the InfoNCE term was skipped (too few rows per class)",
}
SERIES_PREFIX = (("grad_norm_", "gradient norm of the synthetic {}"), ("syn_lr_", "learned synthetic learning rate ({})"),
                 ("grad_lr_", "gradient of the learned learning rate ({})"), ("loss_", "loss of the {} modality"))


def explain_series(name: str, method: str = "") -> str:
    if name in SERIES_MEANING:
        return SERIES_MEANING[name]
    for pre, text in SERIES_PREFIX:
        if name.startswith(pre):
            return text.format(name[len(pre):])
    return f"a value {method or 'the method'}'s step() logs"


def curves(rd: RunData, opt: Options, figs: Figures) -> Section:
    title = "Loss and evaluation curves"
    if rd.log is None:
        return Section("curves", title, note(f"No curves: {rd.log_error}.", "warn"))
    steps = [r for r in rd.log if "event" not in r and isinstance(r.get("it"), int) and r["it"] >= 0]
    events = [(r.get("event"), r.get("it")) for r in rd.log if "event" in r]
    body = ""
    if not steps:
        body += note(f"No iterations logged: method {rd.method} has no outer iterations (e.g. a coreset selection) "
                     "or the run stopped before its first one.")
    else:
        loss: dict[str, tuple[list[float], list[float]]] = {}
        ev: dict[str, tuple[list[float], list[float]]] = {}
        for r in steps:
            for k, v in r.items():
                if k != "it" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    loss.setdefault(k, ([], []))
                    loss[k][0].append(r["it"])
                    loss[k][1].append(float(v))
        # periodic evaluations, x = iterations done: the start event's (0), the steps' (it + 1), the done event's
        for r in rd.log:
            x = 0 if r.get("event") == "start" else (r.get("it") if r.get("event") == "done" else
                                                       (r["it"] + 1 if "event" not in r and isinstance(r.get("it"), int) else None))
            for k, v in (r.get("eval") or {}).items() if isinstance(r.get("eval"), dict) and isinstance(x, int) else []:
                if isinstance(v, (int, float)):
                    ev.setdefault(k, ([], []))
                    ev[k][0].append(x)
                    ev[k][1].append(float(v))
        body += note(f"{len(steps)} logged iterations; {len(loss)} per-iteration series.")
        if loss:
            body += "<h3>Per-iteration values</h3>" + figs.add("curves_loss", F.curves(loss, "iteration"), "loss curves")
            body += table(["series", "meaning"], [(k, explain_series(k, rd.method)) for k in loss])
        if ev:
            body += "<h3>Periodic evaluation</h3>" + figs.add("curves_eval", F.curves(ev, "iteration"), "evaluation curves")
            last = {k: v[1][-1] for k, v in ev.items()}
            body += table(["metric", "last periodic value"], sorted(last.items()), numeric=[False, True])
        else:
            body += note("No periodic evaluation in the log (run.eval_every = 0).")
    if events:
        body += "<details><summary>log events</summary>" + table(["event", "it"], events) + "</details>"
    return Section("curves", title, body)


BUILDERS: tuple[Callable[[RunData, Options, Figures], Section | None], ...] = (overview, metrics, images, audio, text, similarity, curves)
