"""Figures a researcher can paste into a paper (issue 13): the defects a reviewer found in the rendered
figures must not come back.  Each test renders a figure with :func:`proofs.figures.render_figure` and
inspects the matplotlib objects: legends, colours, markers, text, limits."""
import re

import numpy as np
import pytest

from proofs import figures as F
from proofs.report.png import overview_series
from theory.registry import approximation_label

METHODS = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal", "ekfac")


def _multiclass(logy=True):
    """Like digits.multiclass: 7 approximations x train/test, measured and predicted, one diverged run."""
    curves = []
    for i, name in enumerate(METHODS):
        measured = {"train": [2.3, 1.0 - 0.1 * i, 0.8, 0.7], "test": [2.3, 1.2, 1.1, 1.0 + 0.01 * i]}
        if name == "diagonal":
            measured = {"train": [2.3, 2.0, 4000.0, float("nan")], "test": [2.3, 2.1, 4100.0, float("nan")]}
        predicted = {"train": [2.3, 0.9 - 0.1 * i, 0.75, 0.65], "test": [2.3, 1.15, 1.05, 0.95]}
        curves += F.loss_curves(name, [0, 1, 2, 3], measured, predicted, width=2048)
    return F.figure_series("loss_curves", curves, ylabel="cross_entropy loss", logy=logy,
                           title="digits, 10 classes, cross_entropy: loss per step (width 2048)")


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _lines(fig):
    return [line for ax in fig.axes for line in ax.get_lines()]


def _measured_colour(fig, approximation, split="train"):
    label = f"{approximation_label(approximation)} {split} M=2048"
    return next(line.get_color() for line in _lines(fig) if line.get_label() == label)


def test_many_methods_give_a_short_legend_outside_the_axes():
    fig = F.render_figure(_multiclass())
    texts = _legend_texts(fig)
    # one entry per method (train and test panels share it) plus the style keys, not 28 entries
    assert len(texts) <= len(METHODS) + 5, texts
    renderer = _renderer(fig)
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        for other in fig.axes:  # a legend never covers a panel's data area
            assert not box.overlaps(other.get_window_extent(renderer)), (texts, other.get_title())


def test_each_method_has_its_own_fixed_colour_and_predictions_share_it():
    fig = F.render_figure(_multiclass())
    colours = {m: _measured_colour(fig, m) for m in METHODS}
    assert len(set(colours.values())) == len(METHODS), colours  # no colour reused for two methods
    for m in METHODS:
        assert colours[m] == F.METHOD_COLOURS[m]  # the same colour in every figure
        assert _measured_colour(fig, m, "test") == colours[m]
        predicted = next(line for line in _lines(fig)
                         if line.get_label() == f"{approximation_label(m)} train predicted")
        assert predicted.get_color() == colours[m] and predicted.get_linestyle() == "--"


def test_train_and_test_are_side_by_side_panels():
    fig = F.render_figure(_multiclass())
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["train", "test"]


def test_diverged_points_are_marked_at_the_top_with_a_word():
    fig = F.render_figure(_multiclass())
    marks = [line for line in _lines(fig) if line.get_marker() == F.DIVERGED_MARK and len(line.get_xdata())]
    assert len(marks) == 2 and all(list(m.get_xdata()) == [3.0] for m in marks)  # train and test at step 3
    assert all(m.get_color() == F.METHOD_COLOURS["diagonal"] for m in marks)
    words = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert words.count("diverged") == 2
    assert any(t.startswith("diverged") for t in _legend_texts(fig))
    assert "diverged" in F.caption_of(_multiclass(), "x")
    # on a linear axis (accuracy) too
    acc = F.render_figure(_multiclass(logy=False))
    assert [m for m in _lines(acc) if m.get_marker() == F.DIVERGED_MARK and len(m.get_xdata())]


INTERNAL = re.compile(r"(?<![\w-])(block_diagonal|block_tridiagonal|kfac|cross_entropy|unit_wise|ekfac|mse)(?![\w-])"
                      r"|\[forster\]|\bof exact\b(?! NGD)")


def _text(fig):
    return F.figure_text(fig)


@pytest.mark.parametrize("series", [
    _multiclass(),
    F.sweep_series("test-output error of kfac vs analytic predictor", [128, 256, 512], [0.7, 0.5, 0.35]),
    F.sweep_series("one-step linearisation error of exact", [128, 256, 512], [0.2, 0.14, 0.1]),
    F.figure_series("width_sweep", [F.sweep_curve("error of block_tridiagonal [forster]", [1, 2, 4], [1, .7, .5])],
                    ylabel="error of block_diagonal", title="mse and cross_entropy"),
])
def test_no_internal_id_is_printed(series):
    fig = F.render_figure(series, title="claim title with kfac and block_diagonal")
    found = [t for t in _text(fig) if INTERNAL.search(t)]
    assert not found, found


def test_width_sweep_of_an_evidence_quantity_is_labelled_by_its_approximation():
    from numerics.measure import WidthSweep

    s = F.width_sweep_series(WidthSweep("test-output error of block_tridiagonal vs analytic predictor",
                                        [128, 256, 512], [0.6, 0.4, 0.3], None))
    assert s["curves"][0]["label"] == "block tri-diagonal"
    assert s["ylabel"] == "test-output error vs analytic predictor"
    assert s["curves"][0]["approximation"] == "block_tridiagonal"


RAW_TEX = re.compile(r"[A-Za-z][_^]\{|\bTheta_|\bp_\{|\^\{-1\}")


def test_titles_are_wrapped_never_cut_and_have_no_raw_tex():
    title = ("Cross-entropy NGD at eta = c/alpha moves p by the per-sample Newton step (first order: "
             "p_{t+1} - y = (1 - c)(p_t - y)); real training deviates by O(M^-1/2) and the block tri-diagonal "
             "test kernel sum_l c_l Theta_l(x',X) Theta_l^{-1} is null-space corrected")
    fig = F.render_figure(F.sweep_series("deviation", [1024, 2048, 4096], [0.02, 0.01, 0.005]), title=title)
    heading = fig.axes[0].get_title()
    assert "…" not in heading and "..." not in heading
    assert heading.count("$") % 2 == 0 and "$p_{t+1}$" in heading and r"$\Theta_l^{-1}$" in heading
    assert "null-space corrected" in heading  # nothing cut off the end
    outside_math = re.sub(r"\$[^$]*\$", "", heading)
    assert not RAW_TEX.search(outside_math), outside_math
    for line in heading.split("\n"):  # no line breaks inside a formula
        assert line.count("$") % 2 == 0, line
    assert max(len(re.sub(r"\$[^$]*\$", "x", line)) for line in heading.split("\n")) <= 80


def test_long_y_labels_are_wrapped_to_fit_the_axes():
    fig = F.render_figure(F.sweep_series("test-output error of block_tridiagonal vs the analytic predictor at L = 5",
                                         [128, 256, 512], [0.6, 0.4, 0.3]))
    renderer = _renderer(fig)
    ax = fig.axes[0]
    assert ax.yaxis.label.get_window_extent(renderer).height <= ax.get_window_extent(renderer).height


def test_points_below_the_old_floor_are_inside_the_axes():
    """overview train: block-diagonal at 4e-13 next to diagonal Fisher at 1e7 was clipped."""
    s = F.figure_series("loss_curves", F.loss_curves("block_diagonal", [0, 1, 2, 3], {"train": [1, 1e-4, 1e-8, 4e-13]},
                                                     {"train": [1, 0, 0, 0]})
                        + F.loss_curves("diagonal", [0, 1, 2, 3], {"train": [1, 1e3, 1e5, 1e7]}))
    ax = F.render_figure(s).axes[0]
    lo, hi = ax.get_ylim()
    assert lo < 4e-13 and hi > 1e7


def test_a_zero_prediction_in_a_width_sweep_is_drawn_at_the_floor():
    s = F.figure_series("width_sweep", [
        F.sweep_curve("relu: median L1/L0", [256, 512, 1024], [7.0, 3.0, 0.8]),
        F.sweep_curve("isotropic prediction: 0 after one step", [256, 512, 1024], [0.0] * 3, role="predicted")],
        autofit=False)
    fig = F.render_figure(s)
    ax = fig.axes[0]
    marks = [line for line in ax.get_lines() if line.get_marker() == F.ZERO_MARK and len(line.get_xdata())]
    assert len(marks) == 1 and np.allclose(marks[0].get_ydata(), ax.get_ylim()[0])
    assert any("predicted 0" in t for t in _legend_texts(fig))


def test_widths_of_one_run_get_different_markers_and_their_predictions_follow():
    curves = []
    for c in ("0.001", "0.01"):
        for m in (2048, 4096):
            label = f"relu, damped c = {c}, M={m} (median)"
            curves += [{"label": label, "x": [0, 1], "y": [1.0, 0.01], "split": "train"},
                       {"label": label + " predicted", "x": [0, 1], "y": [1.0, 0.001], "split": "train",
                        "role": "predicted"}]
    fig = F.render_figure(F.figure_series("loss_curves", curves))
    lines = {line.get_label(): line for line in _lines(fig)}
    a, b = lines["relu, damped c = 0.001, M=2048 (median)"], lines["relu, damped c = 0.001, M=4096 (median)"]
    assert a.get_color() == b.get_color() and a.get_marker() != b.get_marker()
    assert lines["relu, damped c = 0.001, M=4096 (median) predicted"].get_marker() == b.get_marker()
    assert lines["relu, damped c = 0.01, M=2048 (median)"].get_color() != a.get_color()


def test_coinciding_curves_stay_visible_and_say_so():
    s = F.figure_series("spectrum", [F.spectrum_curve([2.0, 2.0, 2.0], approximation=m) for m in
                                     ("exact", "block_diagonal", "kfac")]
                        + [F.spectrum_curve([3.0, 1.0, 0.5], approximation="diagonal")], normalise=True)
    fig = F.render_figure(s)
    drawn = [line for line in _lines(fig) if "coincide" in line.get_label()]
    assert len(drawn) == 3
    assert len({line.get_markersize() for line in drawn}) == 3  # nested: the lower ones are bigger
    assert all(line.get_markerfacecolor() == "none" for line in drawn)
    # a prediction hidden under its measured curve: the measured one is drawn as markers on the dashes
    same = F.figure_series("loss_curves", F.loss_curves("exact", [0, 1, 2], {"train": [1.0, 0.3, 0.1]},
                                                        {"train": [1.0, 0.3, 0.1]}, width=64))
    fig = F.render_figure(same)
    measured = next(line for line in _lines(fig) if line.get_label() == "exact NGD train M=64")
    assert measured.get_linestyle() == "None"
    assert any("measured = predicted" in t for t in _legend_texts(fig))


def test_two_predictions_of_one_curve_share_its_colour_with_different_dashes():
    s = F.figure_series("loss_curves", [
        {"label": "exact NGD train M=16384", "x": [0, 1, 2], "y": [1.3, 0.29, 0.16], "approximation": "exact",
         "split": "train"},
        {"label": "predicted: Newton", "x": [0, 1, 2], "y": [1.3, 0.29, 0.16], "role": "predicted",
         "approximation": "exact", "split": "train"},
        {"label": "predicted: first order", "x": [0, 1, 2], "y": [1.3, 0.43, 0.19], "role": "predicted",
         "approximation": "exact", "split": "train"}])
    fig = F.render_figure(s)
    lines = {line.get_label(): line for line in _lines(fig)}
    newton, first = lines["predicted: Newton"], lines["predicted: first order"]
    assert newton.get_color() == first.get_color() == lines["exact NGD train M=16384"].get_color()
    assert newton.get_linestyle() != first.get_linestyle()
    assert {"predicted: Newton", "predicted: first order"} <= set(_legend_texts(fig))


def test_reference_lines_have_distinct_styles_and_constant_theory_has_no_slope():
    s = F.figure_series("xy", [F.xy_curve("real step", [0.68, 1.0], [0.34, 0.066]),
                               F.xy_curve("|1 - eta alpha|", [0.5, 1.0, 1.5], [0.5, 0.0, 0.5], role="predicted")],
                        logy=True, vlines=[{"x": 0.68, "label": "authors' eta"}, {"x": 1.0, "label": "eta*"}])
    fig = F.render_figure(s)
    styles = {(line.get_linestyle(), line.get_color()) for line in _lines(fig)
              if line.get_label() in ("authors' eta", "eta*")}
    assert len(styles) == 2
    flat = F.figure_series("width_sweep", [F.sweep_curve("EKFAC", [256, 1024, 4096], [0.15, 0.17, 0.18]),
                                           F.sweep_curve("EKFAC, infinite width (theory)", [256, 1024, 4096],
                                                         [0.175] * 3, role="predicted")])
    texts = _legend_texts(F.render_figure(flat))
    assert "EKFAC, infinite width (theory)" in texts and not any("0.000 ± 0.000" in t for t in texts)


def test_eta_scan_describes_markers_not_solid_lines():
    s = F.figure_series("eta_scan", F.eta_curves("exact", [0.5, 1.0, 1.5], [0.25, 1e-4, 0.25], [0.25, 0.0, 0.25]))
    assert "measured (markers)" in F.describe(s) and "solid" not in F.describe(s)


def _pair(claim_id, series):
    from types import SimpleNamespace

    return SimpleNamespace(id=claim_id, title=claim_id), SimpleNamespace(series=series)


def test_overview_of_loss_curves_is_small_multiples_with_short_legends():
    pairs = [_pair("digits.multiclass", {"m": _multiclass()})]
    runs = [{"label": f"relu, damped c = {c}, M={m} (median)", "x": [0, 1], "y": [1.0, 0.01], "split": "train"}
            for c in ("0.001", "0.003", "0.01") for m in (2048, 4096)]
    pairs.append(_pair("ngd.unit_wise.relu_damped_one_step", {"d": F.figure_series("loss_curves", runs)}))
    pairs.append(_pair("ngd.exact.one_step", {"e": F.figure_series("loss_curves", F.loss_curves(
        "exact", [0, 1], {"train": [1.0, 0.01]}, {"train": [1.0, 0.0]}, width=4096))}))
    merged = overview_series(pairs)["overview-loss_curves-train"]
    fig = F.render_figure(merged)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3  # layer-wise, unit-wise, not isotropic
    assert any("unit-wise" in ax.get_title() for ax in visible)
    for ax in visible:
        legend = ax.get_legend()
        assert legend is not None and len(legend.get_texts()) <= 14
    colours = [line.get_color() for line in _lines(fig) if line.get_label().startswith("relu, damped")]
    assert not set(colours) & {F.METHOD_COLOURS[m] for m in ("exact", "block_diagonal", "block_tridiagonal")}


def test_overview_width_sweep_panels_keep_their_own_y_label():
    ratio = F.sweep_series("relu: median L1/L0", [256, 512, 1024], [7.0, 3.0, 0.8], ylabel="L1 / L0 after one step",
                           autofit=False)
    err = F.sweep_series("isotropy error", [256, 512, 1024], [0.2, 0.14, 0.1])
    merged = overview_series([_pair("ngd.unit_wise.relu_one_step", {"r": ratio}),
                              _pair("ngd.unit_wise.relu_asymptotic", {"e": err})])["overview-width_sweep"]
    fig = F.render_figure(merged)
    ylabels = {ax.get_title(): ax.get_ylabel() for ax in fig.axes if ax.get_visible()}
    assert ylabels["unit-wise"] == "isotropy error"
    assert [v for k, v in ylabels.items() if "L1" in k] == ["L1 / L0 after one step"]


def test_width_tick_labels_do_not_run_into_each_other():
    widths = [1024 * 2 ** k for k in range(8)]  # 1024 .. 131072: eight 4-6 digit labels
    fig = F.render_figure(F.sweep_series("isotropy error", widths, [0.04 / 2 ** (k / 2) for k in range(8)]))
    renderer = _renderer(fig)
    boxes = sorted((t.get_window_extent(renderer) for t in fig.axes[0].get_xticklabels() if t.get_text()),
                   key=lambda b: b.x0)
    assert len(boxes) >= 3 and all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))


def test_a_prediction_shared_by_several_curves_is_neutral_not_a_new_colour():
    s = F.figure_series("width_sweep", [
        F.sweep_curve("relu: median L1/L0", [256, 512, 1024], [7.0, 3.0, 0.8]),
        F.sweep_curve("tanh: median L1/L0", [256, 512, 1024], [0.01, 0.003, 0.001]),
        F.sweep_curve("isotropic prediction: 0 after one step", [256, 512, 1024], [0.0] * 3, role="predicted")],
        autofit=False)
    lines = {line.get_label(): line for line in _lines(F.render_figure(s))}
    shared = lines["isotropic prediction: 0 after one step"].get_color()
    assert shared not in (lines["relu: median L1/L0"].get_color(), lines["tanh: median L1/L0"].get_color())
    assert shared not in F.METHOD_COLOURS.values() and shared == "#555555"


def test_a_formula_of_several_tokens_is_not_broken_across_lines():
    title = ("Unit-wise NGD under cross-entropy: C = 2 isotropic with alpha = sum_l M_l + 2 (tanh, exact); C = 3 not "
             "isotropic, and EKFAC with N = 2 (relu, or equal-norm inputs): Theta_G -> (2L - 1) I as M -> infinity")
    heading = F.render_figure(F.sweep_series("q", [1, 2, 4], [1, .5, .3]), title=title).axes[0].get_title()
    lines = heading.split("\n")
    assert any(r"$\alpha$ = $\Sigma_l$ $M_l$ + 2" in line for line in lines), lines
    assert any("M → ∞" in line for line in lines), lines
