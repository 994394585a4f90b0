"""Which tables the mnist1d part makes: the budgeted plan by default, the product of what the
user names otherwise, and never an oracle row on clean data."""

from types import SimpleNamespace

from fairseq_dynloss.study import mnist1d


def cells(settings=None, models=None, methods=None):
    return mnist1d.cells(SimpleNamespace(mnist1d_settings=settings, mnist1d_models=models,
                                         mnist1d_methods=methods))


def test_the_default_is_the_plan():
    got = {(s, m): rows for s, m, rows in cells()}
    assert got == mnist1d.PLAN
    # every row of the development table; the CNN only under pair-flip noise
    assert set(got[("pairflip40", "mnist1d_mlp")]) == set(mnist1d.METHODS)
    assert [m for s, m in got if s != "pairflip40"] == ["mnist1d_mlp"] * 3


def test_named_settings_or_models_give_their_product_with_the_plans_rows():
    got = cells(settings=["symmetric50"], models=["mnist1d_mlp", "mnist1d_cnn"])
    assert [(s, m) for s, m, _ in got] == [("symmetric50", "mnist1d_mlp"), ("symmetric50", "mnist1d_cnn")]
    assert got[0][2] == mnist1d.PLAN[("symmetric50", "mnist1d_mlp")]
    assert got[1][2] == mnist1d.CORE  # not in the plan: the core rows
    # settings named, models not: the plan's models
    assert [m for _, m, _ in cells(settings=["clean"])] == ["mnist1d_mlp", "mnist1d_cnn"]


def test_named_methods_fill_every_table_and_clean_has_no_oracle():
    got = cells(settings=["clean", "pairflip40"], models=["mnist1d_mlp"],
                methods=["ce", "forward_corrected", "l2t"])
    assert got == [("clean", "mnist1d_mlp", ["ce", "l2t"]),
                   ("pairflip40", "mnist1d_mlp", ["ce", "forward_corrected", "l2t"])]
