"""The one figure-series schema (proofs.figures): builders, the validating gate, the producers that
emit it, the printed approximation names, and the drawing of each kind."""
import numpy as np
import pytest

from numerics.sweeps import fit_power_law
from proofs import evidence as ev
from proofs.figures import width_sweep_series
from proofs import figures as F
from theory.registry import approximation_label, theory_names

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _axes(series):
    """Draw ``series`` on a fresh Agg axes and return it (to inspect the drawn lines)."""
    from matplotlib.figure import Figure

    ax = Figure().add_subplot(1, 1, 1)
    F._draw(ax, F.check_series(series))
    return ax


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


# ----------------------------------------------------------------------------- builders
def test_builders_give_canonical_series_and_the_gate_is_idempotent():
    fit = fit_power_law([64, 128, 256], [0.2, 0.14, 0.1])
    s = F.sweep_series("isotropy error", [64, 128, 256], [0.2, 0.14, 0.1], fit, replicates=[[0.2], [0.14], [0.1]])
    assert s["kind"] == "width_sweep" and s["xlabel"] == "width M" and s["ylabel"] == "isotropy error"
    (curve,) = s["curves"]
    assert curve["x"] == [64.0, 128.0, 256.0] and curve["y"] == [0.2, 0.14, 0.1] and curve["role"] == "measured"
    assert curve["fit"] == {"slope": fit.slope, "slope_stderr": fit.slope_stderr, "prefactor": fit.prefactor}
    assert curve["replicates"] == [[0.2], [0.14], [0.1]]
    assert F.check_series(s) == s and F.check_series(F.check_series(s)) == s
    # numpy inputs become plain floats (strict JSON in results.json)
    loss = F.figure_series("loss_curves", F.loss_curves("exact", np.arange(3), {"test": np.array([1.0, 0.5, 0.2])}))
    assert all(type(v) is float for v in loss["curves"][0]["x"] + loss["curves"][0]["y"])


def test_loss_curves_builder_orders_per_split_measured_then_predicted():
    curves = F.loss_curves("block_diagonal", [0, 1], {"train": [1, .1], "test": [1, .3]},
                           {"train": [1, 0], "test": [1, .2]}, width=256)
    bd = approximation_label("block_diagonal")
    assert [(c["label"], c["split"], c["role"]) for c in curves] == [
        (f"{bd} train M=256", "train", "measured"), (f"{bd} train predicted", "train", "predicted"),
        (f"{bd} test M=256", "test", "measured"), (f"{bd} test predicted", "test", "predicted")]
    assert {c["approximation"] for c in curves} == {"block_diagonal"}
    assert curves[0]["width"] == 256 and "width" not in curves[1]
    with pytest.raises(ValueError, match="split='val' is not allowed; allowed: train, test"):
        F.loss_curves("exact", [0, 1], {"val": [1, 0]})


@pytest.mark.parametrize("name", theory_names())
def test_printed_approximation_names_come_from_the_registry(name):
    label = approximation_label(name)
    assert F.sweep_curve(None, [1, 2], [1, 0.5], approximation=name)["label"] == label
    assert F.spectrum_curve([1.0], approximation=name)["label"] == label
    assert [c["label"] for c in F.eta_curves(name, [1.0], [0.1], [0.0])] == [label, f"{label} predicted"]
    assert F.loss_curves(name, [0], {"train": [1.0]})[0]["label"] == f"{label} train"


def test_registry_labels_the_report_relies_on():
    assert approximation_label("kfac") == "K-FAC" and approximation_label("block_tridiagonal") == "block tri-diagonal"


# ----------------------------------------------------------------------------- the gate: errors name series and field
GOOD = {"kind": "eta_scan", "curves": [{"label": "a", "x": [0.5, 1.0], "y": [0.3, 0.01]}]}


def _with(**changes):
    s = {"kind": GOOD["kind"], "curves": [dict(GOOD["curves"][0])]}
    curve = changes.pop("curve", {})
    s["curves"][0].update(curve)
    s["curves"][0] = {k: v for k, v in s["curves"][0].items() if v is not ...}
    s.update(changes)
    return s


@pytest.mark.parametrize("series, message", [
    ({"kind": "histogram", "curves": []},
     "field kind is 'histogram'; allowed: loss_curves, width_sweep, spectrum, eta_scan, xy"),
    ([1, 2], "must be a dict with 'kind' and 'curves', got list"),
    (_with(curves=[]), "field curves must be a non-empty list of curves"),
    (_with(curve={"y": ...}), r"field curves\[0\].y is missing"),
    (_with(curve={"y": [1.0]}), r"field curves\[0\].y has 1 values, expected 2 \(the length of its x\)"),
    (_with(curve={"y": ["a", "b"]}), r"field curves\[0\].y must be a non-empty list of numbers"),
    (_with(curve={"y": "ab"}), r"field curves\[0\].y must be a non-empty list of numbers, got str"),
    (_with(curve={"label": ""}), r"field curves\[0\].label must be a non-empty string"),
    (_with(curve={"role": "guess"}), r"field curves\[0\].role is 'guess'; allowed: measured, predicted"),
    (_with(curve={"approximation": "exact, rho=0.1"}), r"curves\[0\].approximation must be a registry name"),
    (_with(curve={"fit": {"slope": -0.5, "prefactor": 1.0}}), r"curves\[0\].fit is only allowed in width_sweep"),
    (_with(curve={"colour": "red"}), r"field curves\[0\].colour is not allowed; allowed: label, x, y, role"),
    (_with(curve={"width": 0}), r"field curves\[0\].width must be a positive integer, got 0"),
    (_with(sweeps={"a": {}}), r"field sweeps is not allowed in a 'eta_scan' series"),
    (_with(normalise=True), r"field normalise is not allowed in a 'eta_scan' series"),
    (_with(data=[1]), "field data must be a dict of named values, got list"),
    (_with(title=3), "field title must be a string, got int"),
    (_with(curves=[GOOD["curves"][0], GOOD["curves"][0]]), r"curves\[1\].label 'a' repeats curves\[0\].label"),
    ({"kind": "loss_curves", "curves": [{"label": "a", "x": [0], "y": [1]}]},
     r"field curves\[0\].split is missing; a loss curve needs one of train, test"),
    ({"kind": "width_sweep", "curves": [{"label": "a", "x": [0, 2], "y": [1, 1]}]},
     r"field curves\[0\].x must hold positive widths"),
    ({"kind": "width_sweep", "curves": [{"label": "a", "x": [1, 2], "y": [1, 1], "fit": {"slope": "steep"}}]},
     r"field curves\[0\].fit must be a dict with 'slope', 'slope_stderr', 'prefactor'"),
    ({"kind": "spectrum", "curves": [{"label": "a", "x": [1], "y": [1], "alpha": "one"}]},
     r"field curves\[0\].alpha must be a number, got str"),
])
def test_malformed_series_raise_value_error_naming_series_and_field(series, message):
    with pytest.raises(ValueError, match=r"^series 'my_series': .*" + message):
        F.check_series(series, name="my_series")


def test_old_two_schema_forms_are_rejected_with_the_field_named():
    """The former canonical (label -> values dicts) and single-curve (x/y at the top) forms are not
    accepted: a producer still emitting them learns which field is wrong."""
    with pytest.raises(ValueError, match="series 'old': field widths is not allowed in a 'width_sweep' series"):
        F.check_series({"kind": "width_sweep", "widths": [1, 2], "errors": [1, 0.5]}, name="old")
    with pytest.raises(ValueError, match="series 'old': field kind is 'loss_curve'"):
        F.check_series({"kind": "loss_curve", "x": [0, 1], "train_measured": [1, 0.1]}, name="old")


def test_builders_fail_where_the_series_is_made():
    with pytest.raises(ValueError, match=r"series 'kfac_sweep': field curves\[0\].y has 2 values, expected 3"):
        F.figure_series("width_sweep", [F.sweep_curve("e", [1, 2, 4], [1, 0.5])], name="kfac_sweep")
    with pytest.raises(ValueError, match="needs a label or approximation="):
        F.sweep_curve(None, [1], [1])


# ----------------------------------------------------------------------------- producers emit the schema
def test_width_sweep_to_series_is_in_the_schema():
    fit = fit_power_law([64, 128, 256], [0.2, 0.14, 0.1])
    s = ev.WidthSweep("isotropy error of kfac", [64, 128, 256], [0.2, 0.14, 0.1], fit, {"alpha": [1.0, 1.1, 1.2]})
    series = width_sweep_series(s)
    assert F.check_series(series) == series
    (curve,) = series["curves"]
    # "<quantity> of <approximation>": the approximation is the label (and colour), the quantity the y label
    assert curve["label"] == approximation_label("kfac") and curve["y"] == [0.2, 0.14, 0.1]
    assert curve["approximation"] == "kfac" and series["ylabel"] == "isotropy error"
    assert curve["fit"]["slope"] == fit.slope and series["data"] == {"alpha": [1.0, 1.1, 1.2]}
    assert "data" not in width_sweep_series(ev.WidthSweep("q", [1, 2], [1, 0.5], None))


def test_evidence_loss_curve_and_spectrum_series_are_in_the_schema():
    measured = {"train_loss": [1.0, 0.1], "test_loss": [1.0, 0.2]}
    series = ev.loss_curve_series("kfac", measured, {"train_loss": [1.0, 0.0], "test_loss": [np.nan, np.nan]},
                                  512, 0.04)
    assert [(c["label"], c["role"]) for c in series["curves"]] == [
        ("K-FAC train M=512", "measured"), ("K-FAC train predicted", "predicted"), ("K-FAC test M=512", "measured")]
    assert series["data"] == {"learning_rate": 0.04}  # no test predictor: no predicted test curve
    op = np.diag([1.0, 3.0, 2.0])
    spec = ev.spectrum_series("diagonal", op, 64)
    assert spec["curves"][0]["y"] == [3.0, 2.0, 1.0] and spec["curves"][0]["approximation"] == "diagonal"
    assert spec["curves"][0]["label"] == approximation_label("diagonal")


# ----------------------------------------------------------------------------- drawing
SERIES = {
    "loss_curves": F.figure_series("loss_curves", F.loss_curves(
        "exact", [0, 1, 2, 3], {"train": [0.5, 1e-3, 2e-6, 4e-9]}, {"train": [0.5, 0.0, 0.0, 0.0]}, width=512)),
    "width_sweep": F.sweep_series("error", [64, 128, 256, 512], [0.2, 0.14, 0.1, 0.07], expected_slope=-0.5),
    "spectrum": F.figure_series("spectrum", [F.spectrum_curve([3.1, 3.0, 2.9], approximation="block_diagonal",
                                                              alpha=3.0),
                                             F.spectrum_curve([40.0, 30.0, 1.0], approximation="kfac")]),
    "eta_scan": F.figure_series("eta_scan", F.eta_curves("exact", [0.5, 1.0, 1.5], [0.25, 1e-6, 0.25],
                                                         [0.25, 1e-12, 0.25])),
    "xy": F.figure_series("xy", [F.xy_curve(None, [2, 3, 4, 5], [1, 1, 2, 2], approximation="block_tridiagonal"),
                                 F.xy_curve("ceil(L/3)", [2, 3, 4, 5], [1, 1, 2, 2], role="predicted")],
                          vlines=[{"x": 2, "label": "T singular"}, {"x": 5, "label": "T singular"}]),
}


@pytest.mark.parametrize("kind", F.SERIES_KINDS)
def test_each_series_kind_renders(kind):
    png = F.render_png(SERIES[kind], title=kind)
    assert png.startswith(PNG_MAGIC) and len(png) > 5000  # a drawn figure, not an empty canvas


def test_render_png_names_the_series_in_its_error():
    with pytest.raises(ValueError, match="series 'c.x: s': field kind"):
        F.render_png({"kind": "pie", "curves": []}, title="t", name="c.x: s")


def test_predicted_curves_share_the_colour_of_their_measured_curve():
    ax = _axes(F.figure_series("loss_curves", F.loss_curves("exact", [0, 1], {"train": [1, .1]}, {"train": [1, .2]})
                               + F.loss_curves("kfac", [0, 1], {"train": [1, .3]}, {"train": [1, .4]})))
    ex, kf = approximation_label("exact"), approximation_label("kfac")
    assert _line(ax, f"{ex} train").get_color() == _line(ax, f"{ex} train predicted").get_color()
    assert _line(ax, f"{kf} train").get_color() == _line(ax, f"{kf} train predicted").get_color()
    assert _line(ax, f"{ex} train").get_color() != _line(ax, f"{kf} train").get_color()
    assert _line(ax, f"{ex} train predicted").get_linestyle() == "--"
    assert _line(ax, f"{ex} train").get_linestyle() == "-"
    eta = _axes(SERIES["eta_scan"])
    assert _line(eta, f"{ex}").get_color() == _line(eta, f"{ex} predicted").get_color()


def test_a_predicted_zero_loss_is_marked_at_the_axis_floor():
    ax = _axes(SERIES["loss_curves"])
    floor = ax.get_ylim()[0]
    marks = [line for line in ax.get_lines() if line.get_marker() == "v" and len(line.get_xdata())]
    assert len(marks) == 1 and np.allclose(marks[0].get_ydata(), floor) and list(marks[0].get_xdata()) == [1, 2, 3]
    # the floor is below every measured value, and the legend explains the triangle
    assert floor < 4e-9 and "predicted 0 (drawn at the axis floor)" in [line.get_label() for line in ax.get_lines()]
    # the same for a stand-in such as 1e-300 (digits' predicted train loss) and for an eta scan's exact 0
    stand_in = F.figure_series("loss_curves", F.loss_curves("exact", [0, 1], {"train": [0.5, 1e-4]},
                                                            {"train": [0.5, 1e-300]}))
    assert [len(line.get_xdata()) for line in _axes(stand_in).get_lines() if line.get_marker() == "v"] == [1, 0]
    eta = F.figure_series("eta_scan", F.eta_curves("exact", [0.5, 1.0, 1.5], [0.25, 1e-6, 0.25], [0.25, 0.0, 0.25]))
    assert [list(line.get_xdata()) for line in _axes(eta).get_lines() if line.get_marker() == "v"] == [[1.0], []]
    assert F.has_zero_predictions(eta) and "downward triangle" in F.caption_of(eta, "eta scan")
    assert not F.has_zero_predictions(SERIES["width_sweep"])


def test_normalised_spectra_share_one_isotropic_line_and_keep_other_alphas():
    s = F.figure_series("spectrum", [F.spectrum_curve([2.0, 2.0], approximation="exact", alpha=2.0),
                                     F.spectrum_curve([3.0, 1.0], approximation="kfac", alpha=4.0)], normalise=True)
    ax = _axes(s)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("alpha / mean = 1 (isotropic prediction)") == 1
    kfac_alpha = _line(ax, f"{approximation_label('kfac')}: alpha / mean = 2")  # 4 / mean 2, labelled as such
    assert kfac_alpha.get_ydata()[0] == pytest.approx(2.0, rel=1e-12)
    assert np.allclose(_line(ax, approximation_label("exact")).get_ydata(), [1.0, 1.0])


def test_width_sweep_draws_given_fit_or_fits_three_points():
    fit = {"slope": -1.0, "slope_stderr": 0.01, "prefactor": 2.0}
    ax = _axes(F.figure_series("width_sweep", [F.sweep_curve("given", [1, 2, 4], [2, 1, 0.5], fit),
                                               F.sweep_curve("fitted", [1, 4, 16], [1, 0.5, 0.25]),
                                               F.sweep_curve("two points", [1, 2], [1, 0.5])]))
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    # fitted here: slope of 1, 0.5, 0.25 at 1, 4, 16 is exactly -1/2
    assert labels == ["given (slope -1.000 ± 0.010)", "fitted (slope -0.500 ± 0.000)", "two points"]


def _png_size(png: bytes):
    """(width, height) in pixels from the PNG IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_crowded_legend_goes_below_in_columns_and_keeps_the_figure_compact():
    """Regression: 20 curves gave a one-column legend 20 rows tall (figure ~ 830 px high at 110 dpi).
    Short labels now take 3 columns (7 rows): 4.2 in + 7 x 0.16 in = 5.3 in ~ 590 px (+ tight bbox)."""
    curves = [{"label": f"approx{i} train M=4096", "x": [0, 1, 2], "y": [1.0, 0.1 / (i + 1), 0.01 / (i + 1)],
               "split": "train"} for i in range(20)]
    png = F.render_png({"kind": "loss_curves", "curves": curves})
    width, height = _png_size(png)
    assert F.legend_columns([c["label"] for c in curves]) == 3
    assert height < 700, (width, height)
    assert width < 800, (width, height)      # the columns fit the 6.4 in (704 px) figure, no overflow sideways


def test_roundoff_curves_get_their_own_panel_and_groups_become_small_multiples():
    mixed = F.figure_series("width_sweep", [F.sweep_curve("diagonal Fisher", [64, 128, 256], [0.45, 0.44, 0.45]),
                                            F.sweep_curve("exact NGD (control)", [64, 128, 256], [4e-16, 3e-16, 4e-16])])
    assert [(title, [c["label"] for c in s["curves"]]) for title, s in F.panels(mixed)] == [
        ("", ["diagonal Fisher"]), (F.ROUNDOFF_PANEL, ["exact NGD (control)"])]
    assert "own" in F.caption_of(mixed, "x")
    only_exact = F.figure_series("width_sweep", [F.sweep_curve("exact", [64, 128], [4e-16, 3e-16])])
    assert len(F.panels(only_exact)) == 1  # nothing to separate it from
    grouped = F.figure_series("width_sweep", [
        dict(F.sweep_curve("isotropy error", [64, 128, 256], [0.2, 0.14, 0.1]), group="claim A"),
        dict(F.sweep_curve("isotropy error", [64, 128, 256], [0.3, 0.2, 0.15]), group="claim B"),
        dict(F.sweep_curve("exact control", [64, 128, 256], [1e-16, 1e-16, 1e-16]), group="claim B")])
    assert [title for title, _ in F.panels(grouped)] == ["claim A", "claim B", F.ROUNDOFF_PANEL]
    png = F.render_png(grouped, title="overview")
    assert png.startswith(PNG_MAGIC) and _png_size(png)[0] > 700  # a grid, wider than one panel
    with pytest.raises(ValueError, match="repeats"):  # within a group labels stay unique
        F.check_series(dict(grouped, curves=grouped["curves"][:1] * 2))


def test_replicates_are_drawn_as_dots_and_autofit_can_be_switched_off():
    s = F.sweep_series("median L1/L0", [256, 1024], [6.0, 0.5], replicates=[[0.08, 6.0, 103.0], [0.2, 0.5, 3.0]],
                       autofit=False)
    ax = _axes(s)
    dots = [line for line in ax.get_lines() if line.get_marker() == "." and len(line.get_xdata())]
    assert sorted(len(d.get_xdata()) for d in dots) == [3, 3]
    assert max(max(d.get_ydata()) for d in dots) == 103.0 and ax.get_ylim()[1] >= 103.0
    assert "median L1/L0" in [line.get_label() for line in ax.get_lines()]  # no slope: no fit drawn
    three = F.sweep_series("q", [64, 128, 256], [3.0, 0.1, 50.0], autofit=False)
    assert [line.get_label() for line in _axes(three).get_lines() if not line.get_label().startswith("_")] == ["q"]
    # the same per curve (the overview merges series with and without a power law)
    mixed = F.figure_series("width_sweep", [dict(F.sweep_curve("ratio", [64, 128, 256], [3.0, 0.1, 50.0]),
                                                 autofit=False), F.sweep_curve("error", [64, 128, 256], [.2, .14, .1])])
    labels = [line.get_label() for line in _axes(mixed).get_lines() if not line.get_label().startswith("_")]
    assert labels[0] == "ratio" and labels[1].startswith("error (slope")


def test_log_axes_label_at_most_three_ticks_per_decade_and_width_axes_the_widths():
    ax = _axes(F.sweep_series("error", [256, 1024], [0.6, 0.5]))
    ax.figure.canvas.draw()
    xlabels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert xlabels == ["256", "1024"]
    assert not [t for t in ax.get_xminorticklabels() + ax.get_yminorticklabels() if t.get_text()]
    ylabels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    # under a decade: enough labelled ticks near the data (3 to 6), never just one or two
    assert 3 <= len(ylabels) <= 6, ylabels
    long = _axes(F.sweep_series("error", [64, 256, 1024, 4096], [1.0, 1e-2, 1e-4, 1e-6]))
    long.figure.canvas.draw()
    lo, hi = long.get_ylim()
    ticks = [t for t in long.get_yticklabels() if t.get_text()]
    assert 3 <= len(ticks) <= 3 * np.log10(hi / lo) + 1


def test_xy_series_draws_marks_and_matching_colours():
    ax = _axes(SERIES["xy"])
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("T singular") == 1 and labels.count("_nolegend_") >= 1  # one legend entry for both marks
    measured = _line(ax, approximation_label("block_tridiagonal"))
    assert measured.get_linestyle() == "-" and _line(ax, "ceil(L/3)").get_linestyle() == "--"
    with pytest.raises(ValueError, match=r"field vlines\[0\] must be a dict"):
        F.check_series(dict(SERIES["xy"], vlines=[3]))


def test_describe_and_captions_say_what_is_shown():
    assert F.describe(SERIES["width_sweep"]) == "error against width (log-log, fitted slopes)"
    assert F.describe(SERIES["spectrum"]).startswith("block-diagonal, K-FAC: eigenvalues of Theta_G")
    caption = F.caption_of(F.figure_series("spectrum", SERIES["spectrum"]["curves"], normalise=True), "spectra")
    assert caption.startswith("spectra.") and "alpha / mean" in caption
