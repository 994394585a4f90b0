"""Run pictures: Phi - I on a scale centred at 0, one panel for a Phi that never changed, the
teacher's and the controller's logs drawn from their CSV columns."""

import csv

import matplotlib.pyplot as plt
import pytest
import torch

import fairseq_dynloss.trainer.plots as plots
from fairseq_dynloss.trainer.log_plots import ALA_PANELS, TEACHER_PANELS, plot_log, plot_run_logs


@pytest.fixture
def images(monkeypatch):
    """The arrays and colour limits handed to imshow, per call."""
    drawn = []
    real = plt.Axes.imshow

    def imshow(ax, array, **kwargs):
        drawn.append((array.copy(), kwargs["vmin"], kwargs["vmax"], kwargs["cmap"]))
        return real(ax, array, **kwargs)

    monkeypatch.setattr(plt.Axes, "imshow", imshow)
    return drawn


def test_phi_minus_identity_on_a_symmetric_diverging_scale(tmp_path, images):
    phi0 = torch.eye(3)
    phi5 = torch.eye(3) * 4.0
    phi5[0, 1] = -0.5
    assert plots.plot_phi(str(tmp_path / "phi.png"), {0: phi0, 5: phi5}) == [0, 5]
    (a, low, high, cmap), (b, _, _, _) = images
    assert torch.equal(torch.from_numpy(a), torch.zeros(3, 3))
    expected = phi5 - torch.eye(3)
    assert torch.equal(torch.from_numpy(b), expected)
    assert (low, high) == (-3.0, 3.0) and cmap == "RdBu_r"  # centred at 0, max |Phi - I| = 3
    assert (tmp_path / "phi.png").stat().st_size > 0


def test_a_phi_that_never_changed_gets_one_panel(tmp_path, images):
    fixed = torch.eye(4)
    assert plots.plot_phi(str(tmp_path / "phi.png"), {e: fixed.clone() for e in (0, 2, 4, 6)}) == [0]
    assert len(images) == 1


def test_off_diagonal_plot_is_not_shifted(tmp_path, images):
    offdiag = torch.tensor([[0.0, 0.2], [-0.1, 0.0]])
    plots.plot_phi(str(tmp_path / "p.png"), {1: offdiag}, minus_identity=False)
    assert torch.equal(torch.from_numpy(images[0][0]), offdiag)


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_teacher_log_panels_use_either_column_name(tmp_path):
    # dynloss-train's teacher_log.csv says grad_norm, translation_l2t's hypergrad_norm.
    write_csv(tmp_path / "a.csv", [{"step": i, "dev_objective": 0.1 * i, "grad_norm": 1.0, "skipped": 0}
                                   for i in range(1, 4)])
    write_csv(tmp_path / "b.csv", [{"teacher_step": i, "update": 3 * i, "dev_objective": 0.1,
                                    "hypergrad_norm": 2.0, "skipped": 0} for i in range(1, 4)])
    expected = ["dev objective (after the unroll)", "hypergradient norm", "skipped teacher steps"]
    for name in ("a", "b"):
        assert plot_log(str(tmp_path / f"{name}.csv"), str(tmp_path / f"{name}.png"), TEACHER_PANELS) == expected
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_ala_log_panels_and_empty_reward_cells(tmp_path):
    rows = [{"update": 10 * i, "reward": "" if i == 1 else 1.0, "entropy": 1.09 - 0.1 * i, "baseline": 0.0,
             "actions_minus": 3, "actions_zero": 4, "actions_plus": 2, "metric": 0.5, "W_mean_abs": 0.01,
             "W_min": -0.1, "W_max": 0.1} for i in range(1, 5)]
    write_csv(tmp_path / "ala_log.csv", rows)
    assert plot_run_logs(str(tmp_path)) == ["ala.png"]
    titles = plot_log(str(tmp_path / "ala_log.csv"), str(tmp_path / "x.png"), ALA_PANELS)
    assert titles == [title for title, _ in ALA_PANELS]


def test_a_log_without_any_known_column_is_an_error(tmp_path):
    write_csv(tmp_path / "x.csv", [{"foo": 1}])
    with pytest.raises(ValueError, match="none of the columns"):
        plot_log(str(tmp_path / "x.csv"), str(tmp_path / "x.png"), TEACHER_PANELS)
