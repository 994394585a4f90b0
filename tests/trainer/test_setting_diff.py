"""trainer/setting_diff.setting_differences: the comparison behind the resume check and the L2T
teacher's reuse check, against hand-written expectations."""

from fairseq_dynloss.trainer.setting_diff import setting_differences


def test_nested_keys_dotted_sorted_and_lists_compared_whole():
    saved = {"seed": 1, "optim": {"lr": 0.1, "milestones": [2, 4]}, "model": {"hidden": [32]}}
    now = {"seed": 1, "optim": {"lr": 0.05, "milestones": [2, 4]}, "model": {"hidden": [16]}}
    assert setting_differences(saved, now) == ["model.hidden: [32] -> [16]", "optim.lr: 0.1 -> 0.05"]


def test_a_setting_on_one_side_only_is_named_absent_on_the_other():
    assert setting_differences({"a": {"b": 1}}, {"a": {"c": None}}) == [
        "a.b: 1 -> '(absent)'", "a.c: '(absent)' -> None"]


def test_equal_settings_and_allowed_differences_are_not_listed():
    assert setting_differences({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}) == []
    grows = lambda key, old, new: key == "epochs" and new >= old
    assert setting_differences({"epochs": 2, "lr": 1}, {"epochs": 3, "lr": 1}, grows) == []
    assert setting_differences({"epochs": 2}, {"epochs": 1}, grows) == ["epochs: 2 -> 1"]
