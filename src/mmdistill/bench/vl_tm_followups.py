"""Issue-5 follow-up cells of the ``vl`` suite: controls that explain the trajectory-matching rows.

* ``tm-init``: the initialisation every trajectory-matching set of syn seed 0 starts from (the same 99 real
  pairs; ``iterations: 0``), evaluated under the same protocol. ``random`` rows average *other* random subsets,
  so a method's gain over its own start is ``method - tm-init``.
* ``lors-wbce`` / ``repblend-wbce``: the released scripts' WBCE inner loss (and evaluation against S with WBCE)
  at lr_sim 0.1, next to the shipped soft-InfoNCE configs (vl-distillation.md §3 lists both).
* ``lors-s-frozen``: S stays I (lr_sim 0): does learning S help at all at this scale?
* ``lors-w128`` / ``repblend-w128``: the speed comparison at an encoder-dominated size. In the quick config the
  ConvNet-3 w32 image encoder has ~20k parameters while the two projection heads have ~330k, so RepBlend's
  saving (no unrolled encoder, vl-distillation.md §4) is small there; at width 128 the encoder dominates, as
  NFNet does in the papers. Both cells use one small buffer per mode (1 expert, 2 epochs, 1 encoder epoch:
  speed does not depend on expert quality; prepared by :func:`prepare_speed_buffers` before any cell so no
  cell's clock includes them) and 10 iterations; compared on ``cpu_s_per_iter`` (CPU seconds of the
  distillation / iterations), which does not depend on what else runs on the box.
* ``lors-w128-s8`` / ``repblend-w128-s8``: the same speed pair at the papers' 8 student steps per iteration
  (vl-distillation.md §3 hyperparameter table; the quick config uses 5), same buffers and iterations, run in the
  same invocation as the width-128 pair. RepBlend's encoder pass grows with the number of *distinct* synthetic
  images its minibatches touch (~65 of 99 at 5 x 20, ~83 at 8 x 20), LoRS's with every student step (100 -> 160
  image passes with a double backward), so the ratio falls with more steps (cost model under the targets).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .suites import Cell

FOLLOWUPS: dict[str, tuple[str, dict[str, Any]]] = {
    "tm-init": ("lors", {"iterations": 0, "similarity": "none", "loss": "infonce"}),
    "lors-wbce": ("lors", {"loss": "wbce", "lr_sim": 0.1}),
    "repblend-wbce": ("repblend", {"loss": "wbce", "lr_sim": 0.1}),
    "lors-s-frozen": ("lors", {"lr_sim": 0.0}),
}
SPEED_WIDTH = 128
SPEED_ITERATIONS = 10
SPEED_PAPER_STEPS = 8  # the papers' syn_steps (vl-distillation.md §3); the quick configs use 5


def speed_experts(mode: str, base: dict[str, Any]) -> dict[str, Any]:
    net = {**(base.get("net") or {}), "width": SPEED_WIDTH}
    return {**base, "mode": mode, "net": net, "num_experts": 1, "epochs": 2, "encoder_epochs": 1}


def followup_cells(bufs: dict[str, tuple[dict[str, Any], Path]], ev: dict[str, Any]) -> list[Cell]:
    from .suites import Cell
    from .vl_suite import DATA, DATASET, SEEDS, method_params, syn_seeds_for

    cells = []
    for label, (m, over) in FOLLOWUPS.items():
        p = {**method_params(m), "buffer": str(bufs[m][1]), "experts": bufs[m][0], **over}
        cells.append(Cell("vl", DATASET, m, 100, "pairs", data=dict(DATA), eval=dict(ev), seeds=list(SEEDS), params=p,
                          syn_seeds=syn_seeds_for(label, 100), label=label))
    for m, (ex, path) in zip(("lors", "repblend"), speed_buffers(bufs)):
        # the config's lrs, without per-budget overrides: s/iter does not depend on the data lrs, and the speed pair
        # keeps one fixed config whatever the validation sweep ships at 100 pairs
        p = {**method_params(m), "buffer": str(path), "experts": ex, "iterations": SPEED_ITERATIONS,
             "max_start_epoch": 1, "lrs_by_budget": {}}
        cells.append(Cell("vl", DATASET, m, 100, "pairs", data=dict(DATA), eval=dict(ev), seeds=[0], params=p,
                          syn_seeds=[0], label=f"{m}-w{SPEED_WIDTH}"))
        cells.append(Cell("vl", DATASET, m, 100, "pairs", data=dict(DATA), eval=dict(ev), seeds=[0],
                          params={**p, "syn_steps": SPEED_PAPER_STEPS}, syn_seeds=[0],
                          label=f"{m}-w{SPEED_WIDTH}-s{SPEED_PAPER_STEPS}"))
    return cells


def expected_unique(n: int, minibatch: int, steps: int) -> float:
    """Expected number of distinct synthetic pairs drawn by ``steps`` minibatches of ``minibatch`` out of ``n``
    (each minibatch without replacement): the images RepBlend's frozen encoder sees per iteration."""
    return n * (1.0 - (1.0 - minibatch / n) ** steps)


# Calibration runs behind the emoji configs (NOT benchmark rows: one distilled set, syn seed 0, 100 pairs, 3 evaluation
# seeds, the suite's buffers and protocol; reproduce with `mmdistill distill --config configs/vl/<m>_emoji.yaml --set
# params.<field>=<value> --evaluate`). Numbers are r_mean.
TM_NOTES: list[str] = [
    "Calibration behind the trajectory-matching emoji configs (not benchmark rows; one set, syn seed 0, 100 pairs, "
    "3 evaluation seeds, 40 iterations unless noted):",
    "",
    "- The session-1 configs (lr_img 1, lr_txt 0.01, clip 1.0) left every set at its initialisation: 9.56 "
    "(= `tm-init`); MTT-VL 9.44 and LoRS 7.62 in the old rows. With gradients clipped to norm 1 per group, "
    "lr 1 moves 100 x 3 x 32 x 32 pixels by ~0.002 each per iteration.",
    "- Data lrs, identity targets (LoRS machinery with similarity none, loss infonce): lr_img/lr_txt 10/0.1 → 11.39, "
    "100/0.1 → 12.00, 10/1 → 13.84, 100/1 → 14.16, 100/3 → 11.77, 100/10 → 10.25, 1000/1 → 11.30; 100/1 at 120 "
    "iterations → 13.93. Text only (lr_img 0) → 13.73, pixels only (lr_txt 0) → 10.33: the gain is in the text vectors.",
    "- LoRS's inner loss and S (lr 100/1): WBCE with lr_sim 0.1 → 7.83 (8.76 when evaluated ignoring S), WBCE with "
    "S frozen → 10.52; soft InfoNCE against S: lr_sim 1 → 6.95, 0.1 → 12.04, 0.01 → 13.87. WBCE costs ~0.7 even at "
    "S = I (init evaluated with WBCE 8.90 vs InfoNCE 9.56): with no bias term σ(z/τ) of the InfoNCE-trained heads "
    "calls many negatives positive.",
    "- 200 iterations (shipped): RepBlend 16.62, LoRS 13.36; RepBlend with lr_txt 0.3 → 14.74.",
]


def speed_buffers(bufs: dict[str, tuple[dict[str, Any], Path]]) -> list[tuple[dict[str, Any], Path]]:
    from .vl_suite import buffer_path

    out = []
    for m in ("lors", "repblend"):
        ex = speed_experts("heads" if m == "repblend" else "full", bufs[m][0])
        out.append((ex, buffer_path(ex)))
    return out


def _budget_lrs_text(budget: int) -> str:
    """Which data lrs the trajectory-matching cells of ``budget`` use (configs' ``lrs_by_budget``, from the val sweep)."""
    from .vl_suite import METHODS, method_params

    per = {m: {int(k): v for k, v in (method_params(m).get("lrs_by_budget") or {}).items()}.get(budget) for m in METHODS}
    if not any(per.values()):
        return ("the 100-pair lrs, which the validation sweep below kept" if budget != 100 else "the 100-pair lrs")
    return "per-budget lrs from the validation sweep below: " + ", ".join(
        f"{m} {', '.join(f'{k} {v:g}' for k, v in o.items()) if o else 'the 100-pair lrs'}" for m, o in per.items())


def _row(rows: list[dict[str, Any]], method: str, metric: str) -> dict[str, Any] | None:
    from .vl_suite import _row as row

    return row(rows, method, metric)


def check_followups(rows: list[dict[str, Any]]) -> list[str]:
    """Lines under the vl targets: gain over the shared init, loss/S controls, speed at width 128."""
    out = ["### Trajectory-matching controls (issue 5)", ""]
    init = _row(rows, "tm-init", "r_mean")
    if init:
        out.append(f"- Shared initialisation of the sets (99 real pairs per syn seed, no distillation): r_mean "
                   f"{init['mean']:.2f} ± {init['std']:.2f}. Gain of each method over its own start:")
        for m in ("mtt-vl", "tesla-vl", "lors", "repblend", "lors-wbce", "repblend-wbce", "lors-s-frozen"):
            r = _row(rows, m, "r_mean")
            if r:
                n = len(r.get("per_seed") or [])
                if n and n < len(init.get("per_seed") or []):  # one set (syn seed 0): compare with that set's init
                    base = sum(init["per_seed"][:n]) / n
                    out.append(f"  - {m} (syn seed 0 only): {r['mean']:.2f} ± {r['std']:.2f} ({r['mean'] - base:+.2f} over "
                               f"its init {base:.2f})")
                else:
                    out.append(f"  - {m}: {r['mean']:.2f} ± {r['std']:.2f} ({r['mean'] - init['mean']:+.2f})")
    from .vl_suite import _row as row

    for b in (200, 500):
        rnd = row(rows, "random", "r_mean", b)
        ms = {m: row(rows, m, "r_mean", b) for m in ("mtt-vl", "tesla-vl", "lors", "repblend", "mdm")}
        if rnd and all(ms.values()):
            out.append(f"- {b} pairs: random {rnd['mean']:.2f}; " + ", ".join(
                f"{m} {r['mean']:.2f} ({r['mean'] - rnd['mean']:+.2f})" for m, r in ms.items())
                + f" ({_budget_lrs_text(b)}).")
    # CPU seconds per iteration (wall s/iter of cells run at different times depends on the box's load)
    lo, rb = _row(rows, f"lors-w{SPEED_WIDTH}", "cpu_s_per_iter"), _row(rows, f"repblend-w{SPEED_WIDTH}", "cpu_s_per_iter")
    lo32, rb32 = _row(rows, "lors", "cpu_s_per_iter"), _row(rows, "repblend", "cpu_s_per_iter")
    if lo and rb:
        ratio = rb["mean"] / lo["mean"]
        out.append(f"- RepBlend s/iter <= 0.2 x LoRS s/iter with a width-{SPEED_WIDTH} encoder, quick config's 5 student "
                   f"steps (same config otherwise): **{'met' if ratio <= 0.2 else 'MISSED'}** ({rb['mean']:.3f} vs "
                   f"{lo['mean']:.3f} CPU s/iter, ratio {ratio:.3f}).")
        if lo32 and rb32:
            out.append(f"  - At the quick config's width 32 the ratio is {rb32['mean'] / lo32['mean']:.3f}: there the "
                       "projection heads (~330k parameters) outweigh the ConvNet encoder (~20k), so skipping the "
                       "encoder in the inner loop saves little; the papers' NFNet is the encoder-dominated case.")
    else:
        out.append(f"- RepBlend vs LoRS s/iter at width {SPEED_WIDTH}: missing rows")
    tag = f"w{SPEED_WIDTH}-s{SPEED_PAPER_STEPS}"
    lo8, rb8 = _row(rows, f"lors-{tag}", "cpu_s_per_iter"), _row(rows, f"repblend-{tag}", "cpu_s_per_iter")
    if lo8 and rb8:
        r8 = rb8["mean"] / lo8["mean"]
        out.append(f"- The same at the papers' {SPEED_PAPER_STEPS} student steps (width {SPEED_WIDTH}, `lors-{tag}` / "
                   f"`repblend-{tag}`, same buffers and invocation): **{'met' if r8 <= 0.2 else 'MISSED'}** "
                   f"({rb8['mean']:.3f} vs {lo8['mean']:.3f} CPU s/iter, ratio {r8:.3f}).")
    else:
        out.append(f"- RepBlend vs LoRS s/iter at width {SPEED_WIDTH}, {SPEED_PAPER_STEPS} student steps: missing rows")
    u5, u8 = expected_unique(99, 20, 5), expected_unique(99, 20, SPEED_PAPER_STEPS)
    out.append(f"  - Cost model: per iteration RepBlend runs forward + backward of the encoder once over the distinct "
               f"synthetic images its minibatches use (expected {u5:.0f} of 99 at 5 steps x 20, {u8:.0f} at "
               f"{SPEED_PAPER_STEPS} x 20), LoRS runs every student step over 20 images with a double backward "
               f"through the encoder (5 x 20 = 100 or {SPEED_PAPER_STEPS} x 20 = 160 image passes, each ~4-5x an "
               "encoder forward), so when the encoder dominates the ratio scales with distinct images / image "
               f"passes: {u5 / 100:.2f} at 5 steps, {u8 / 160:.2f} at {SPEED_PAPER_STEPS} (x{u8 / 160 / (u5 / 100):.2f}). "
               "RepBlend's own trajectory over the projection heads (and LoRS's head part) add a non-encoder share.")
    out += SPEED_NOTES
    from .vl_val_sweep import sweep_lines

    sweep = sweep_lines()
    return out + [""] + TM_NOTES + ([""] + sweep + [""] + VAL_NOTES if sweep else [])


# What the validation sweep (vl_val_sweep.py, table above) decided; written after the sweep ran.
VAL_NOTES: list[str] = [
    "Decision (rule fixed before the runs: per method and budget the setting with the best val r_mean at 40 "
    "iterations; for LoRS and RepBlend, cheap enough, the top candidates were re-run at the shipped 200 iterations "
    "and that run decides):",
    "",
    "- 500 pairs: shipped as `lrs_by_budget: {500: {lr_txt: ...}}` in `configs/vl/<method>_emoji.yaml` - lr_txt 0.1 "
    "for LoRS and RepBlend (at 200 iterations lr_txt 0.3 was worse than 0.1 for both, although 0.3 led RepBlend at "
    "40), lr_txt 0.3 for MTT-VL and TESLA-VL (chosen at 40 iterations: higher than lr_txt 1 on each of the 3 "
    "evaluation seeds, by ~0.4-0.9, within one std; re-checked at the shipped 200 iterations in session 4: MTT-VL "
    "0.3 -> 21.09 vs 0.1 -> 20.88, TESLA-VL 0.3 -> 21.10 vs 0.1 -> 20.77, init 20.57, so 0.3 stays). The 500-pair "
    "test rows above were run after this choice.",
    "- 500-pair test rows before the change (lr_txt 1, one set, syn seed 0; commit 497ea87): mtt-vl 16.87, tesla-vl "
    "17.09, lors 16.23, repblend 16.34; with the per-budget lrs, the same syn seed 0 (commit 1221987): mtt-vl 17.55, "
    "tesla-vl 17.49, lors 18.03, repblend 18.15 (+0.4 to +1.8); the `500 pairs` line above averages three sets for "
    "mtt-vl, lors and repblend (tesla-vl: syn seed 0). Every method stays below random.",
    "- 500 pairs, what it does not fix: on val LoRS and RepBlend stay below the set's own initialisation at the "
    "shipped 200 iterations (LoRS 20.24, RepBlend 19.40 vs init 20.44) and MTT-VL / TESLA-VL end only ~0.5 above "
    "theirs (21.09 / 21.10 vs 20.57, within one std); every text-vector lr tried moves a 500-pair real init "
    "away from what retrieval needs, and the smaller lr only moves it less. Pixels matter too (LoRS lr_img 1000 "
    "-> 16.56).",
    "- 200 pairs: the 100-pair lrs stay. MTT-VL and TESLA-VL gain 1.2-1.4 over their init on val with lr_txt 1 and "
    "less with 0.3; LoRS's and RepBlend's points are within noise of each other and of the init.",
    "- The 100-pair calibration in the notes above (and the earlier choice of the 100-pair lrs) was scored on the "
    "test split; the val sweep is the first calibration here that does not touch test.",
    "- 100 pairs on val (session 3, the shipped 200 iterations, one set, syn seed 0; init 10.36): MTT-VL 18.11 "
    "(lr_txt 1) / 18.00 (0.3); RepBlend 14.15 / 15.45; LoRS 13.97 / 14.79. By the rule above LoRS and RepBlend "
    "move to lr_txt 0.3 at 100 pairs (+0.8 and +1.3, within about one std) and MTT-VL keeps 1. On val the "
    "full-batch MTT-VL (all 99 pairs in every student step) leads the minibatch-20 methods by 2.7-4.1, the opposite "
    "of the papers' RepBlend > LoRS > MTT-VL.",
    "- 100 pairs, shipped in session 4 (`lrs_by_budget: {100: {lr_txt: 0.3}}` for LoRS and RepBlend; the 100-pair "
    "rows above, the wbce / S-frozen controls and MDM's same-invocation LoRS timing were re-run with it). On test "
    "it did not help: LoRS 13.59 ± 1.09 -> 13.24 ± 0.64 and RepBlend 14.11 ± 2.14 -> 12.77 ± 1.74 (three sets x 3 "
    "seeds each; the lr_txt 1 rows are those of commit fdf764f). Val gains of +0.8 / +1.3 and test changes of "
    "-0.35 / -1.34 are each within about one std: at 99 pairs on emoji the data lr is inside the set-to-set noise. "
    "The val choice stays shipped - picking the lr that scores better on test would be selection on test.",
    "- What MTT-VL's lead on val is made of (session 4 controls, val, 100 pairs, 200 iterations, one set; rows "
    "with `minibatch` / `lr_sim` in the table): MTT-VL 18.11 with all 99 pairs in every student step vs 15.49 at "
    "minibatch 20; LoRS (lr_txt 0.3) 14.79 at minibatch 20, 16.08 with all pairs, 18.23 with all pairs and S "
    "frozen at I (lr_sim 0); RepBlend 15.45 at 20 vs 15.44 with all pairs. At equal minibatch 20 MTT-VL (15.49) "
    "and RepBlend (15.45) tie and LoRS is 0.7 lower; with all pairs LoRS without a learned S equals MTT-VL "
    "(18.23 vs 18.11; the same loss and trajectory matching, reverse-mode vs unrolled gradient). So the whole "
    "3.3-point lead of MTT-VL over LoRS on val is the larger student batch (+1.3 for LoRS) plus the learned "
    "similarity, which costs LoRS 2.2 here (test agrees in sign: `lors-s-frozen` 14.52 vs `lors` 13.24). Why S "
    "hurts here is not established: emoji also has several captions per image (name, name with keywords, each "
    "keyword), like Flickr30k/COCO's five, so many-to-many structure exists; S is learned from 200 iterations of "
    "20-pair minibatches at lr_sim 0.01, and larger lr_sim was worse (notes above). The shipped LoRS and RepBlend keep the papers' minibatch 20 and learned S: these are controls that "
    "explain the chain, not calibration points (a LoRS without its S, at full batch, is MTT-VL).",
]


# Profile behind the speed lines (cProfile, one thread, steady-state iterations after one warm-up step, speed-pair
# buffers at width 128, 5 student steps; numbers in CPU s/iter on the quiet box).
SPEED_NOTES: list[str] = [
    "  - Profile of one iteration at width 128, 5 steps (cProfile, 1 thread, steady state after a warm-up step): "
    "LoRS 2.11 CPU s, all but ~0.01 in the reverse-mode trajectory (0.31 in the 10 forwards of encoder + heads over "
    "20 images, 1.75 in autograd: the graph-free step gradients, the create_graph gradients and the Hessian-vector "
    "products of the reverse pass); RepBlend 0.42 CPU s: frozen-encoder forward over the ~65 used images 0.15, its "
    "backward to the pixels 0.18, trajectory over the heads 0.09. Loading the two expert snapshots from safetensors, "
    "the flat-parameter bookkeeping (split / functional_call / clones) and the method's init each stay under ~0.01 s "
    "per iteration for both, so neither does avoidable work that changes the ratio. Encoding RepBlend's images in "
    "chunks of 16 saves ~20 % of its encoder pass (34 MB per activation at 65 images x 128 channels) but is not "
    "bitwise identical (a last chunk of one image takes another convolution path, features differ by ~1e-6; input "
    "gradients differ in the last bits), so it was not shipped.",
    "  - CPU s/iter still depends on the box's load (shared caches): the same width-128, 5-step pair measured "
    "0.689 vs 2.485 (ratio 0.277) at load average ~4.2 in commit 497ea87 and 0.465 vs 2.061 (0.225) at ~1.5-1.9 in "
    "this run; the rows here are the latest run, all four speed cells in one invocation.",
]
