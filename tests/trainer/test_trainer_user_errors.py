"""dynloss-train's answer to a user's mistake: one line naming the value, a non-zero exit status,
no traceback; a typo added with Hydra's ``+key`` is refused instead of silently ignored; the
default run folder names the teacher and the controller."""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from trainer_helpers import REPO, run_cli

from fairseq_dynloss.trainer.errors import EXIT_USER_ERROR, report_errors
from fairseq_dynloss.trainer.overrides import check_added_keys
from fairseq_dynloss.trainer.registry import ConfigError
from fairseq_dynloss.trainer.run_name import method_suffix


@pytest.mark.parametrize("args,message", [
    (["loss=dynamic", "loss.form=paper", "loss.parametrisation=dense"], "dense"),
    (["checkpoint_interval_s=-1"], "checkpoint_interval_s"),
    (["+task.epocs=3"], "did you mean task.epochs?"),
    (["++optim.lr_decay=0.1"], "unknown key 'optim.lr_decay'"),
    (["threads=-2"], "threads"),
])
def test_user_errors_are_one_line_and_exit_non_zero(tmp_path, args, message):
    result = run_cli("task.epochs=1", f"hydra.run.dir={tmp_path}", *args)
    assert result.returncode == EXIT_USER_ERROR, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("dynloss-train: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert not (tmp_path / "checkpoint_last.pt").exists() and not (tmp_path / "metrics.csv").exists()


def test_a_bug_keeps_its_traceback(capsys):
    with pytest.raises(ZeroDivisionError):
        report_errors(lambda: 1 / 0)


def test_a_user_error_becomes_system_exit_2_with_the_message(capsys):
    def fail():
        raise ConfigError("task.epochs=-1; expected an integer >= 1\n(second line)")

    with pytest.raises(SystemExit) as exit_info:
        report_errors(fail)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("dynloss-train: error: ConfigError: task.epochs=-1; expected an "
                                       "integer >= 1 (second line)\n")


@pytest.mark.parametrize("override", [
    "task.epochs=3",              # not an addition
    "+task.m_per_class=4",        # task=digits_metric defines it
    "++task.epochs=3",            # force-add of an existing key
    "+hydra.job.name=x",          # Hydra's own settings
    "+loss.nll_weight=0.5",       # loss=dynamic defines it
])
def test_additions_of_keys_some_option_defines_pass(override):
    check_added_keys([override])


@pytest.mark.parametrize("override,expected", [
    ("+task.epocs=3", "did you mean task.epochs?"),
    ("+seeed=2", "did you mean seed?"),
    ("+model.widht=10", "unknown key 'model.widht'"),
    ("++loss.nll_wieght=0.5", "did you mean loss.nll_weight?"),
])
def test_additions_of_unknown_keys_are_refused(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("?", r"\?").replace(".", r"\.")):
        check_added_keys([override])


def test_method_suffix():
    assert method_suffix("none", "none") == ""
    assert method_suffix("l2t", "none") == "-l2t"
    assert method_suffix("none", "ala") == "-ala"
    assert method_suffix("none", "ala", True) == "-ala-multi"


@pytest.mark.parametrize("overrides,folder", [
    ([], "outputs/digits-mlp-ce-seed1"),
    (["loss=dynamic"], "outputs/digits-mlp-dynamic-seed1"),
    (["loss=dynamic", "teacher=l2t", "seed=2"], "outputs/digits-mlp-dynamic-l2t-seed2"),
    (["loss=dynamic", "controller=ala"], "outputs/digits-mlp-dynamic-ala-seed1"),
    (["loss=dynamic", "controller=ala", "controller.multi_network=true"],
     "outputs/digits-mlp-dynamic-ala-multi-seed1"),
])
def test_the_default_run_folder_names_teacher_and_controller(overrides, folder):
    with initialize_config_module("fairseq_dynloss.trainer.conf", version_base="1.3"):
        cfg = compose("dynloss_train", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_struct(cfg, False)
    assert OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"] == folder
    assert OmegaConf.to_container(cfg.hydra.sweep, resolve=True)["subdir"] == folder.split("/")[1]


@pytest.mark.slow
def test_l2t_and_plain_runs_of_one_loss_get_different_folders_from_the_cli(tmp_path):
    """The README's order (a dynamic-loss run, then L2T with the same loss) no longer collides."""
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "fairseq_dynloss.trainer", "progress=false", "task.epochs=1",
            "loss=dynamic", "loss.nll_weight=0.5"]
    for extra in ([], ["teacher=l2t", "teacher.steps=1", "teacher.unroll=2"]):
        result = subprocess.run(base + extra, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=240)
        assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == [
        "digits-mlp-dynamic-l2t-seed1", "digits-mlp-dynamic-seed1"]
    assert (tmp_path / "outputs/digits-mlp-dynamic-l2t-seed1/teacher.pt").exists()
    assert not (tmp_path / "outputs/digits-mlp-dynamic-seed1/teacher.pt").exists()


def test_an_unreachable_download_is_one_line(tmp_path, capsys, monkeypatch):
    """No network (or a dead mirror): the message lists each URL on one line, exit status 2."""
    import urllib.request

    from fairseq_dynloss.data.download import download

    def refuse(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(SystemExit) as exit_info:
        report_errors(lambda: download(["https://a.invalid/x.tgz", "https://b.invalid/x.tgz"],
                                       str(tmp_path / "x.tgz"), md5="0" * 32))
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dynloss-train: error: DownloadError: could not download")
    assert "https://a.invalid/x.tgz: Name or service not known" in err and "https://b.invalid" in err
    assert not (tmp_path / "x.tgz").exists()
