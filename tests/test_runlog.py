"""The run log: metrics.csv, the printed epoch line, and who writes."""

from __future__ import annotations

from aegen.runlog import METRICS_CSV, RunLog, read_metrics


def test_the_epoch_line_and_metrics_csv(tmp_path, capsys):
    log = RunLog(tmp_path, show=True)
    rows = [{"epoch": 1, "step": 5, "train_loss": 0.5, "val_loss": 0.25}]
    log.epoch(rows[0], rows, epochs=3, step=5)
    rows.append({"epoch": 2, "step": 10, "phase": "phase1", "train_loss": 0.4, "val_mse": 0.125})
    log.epoch(rows[1], rows, epochs=3, step=10)
    log.close()
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "epoch 1/3: train_loss 0.5, val_loss 0.25",
        "phase1 epoch 2/3: train_loss 0.4, val_mse 0.125",
    ]
    back = read_metrics(tmp_path / METRICS_CSV)
    assert list(back[0]) == ["epoch", "step", "train_loss", "val_loss", "phase", "val_mse"]
    assert back[1]["phase"] == "phase1" and back[0]["phase"] == "" and back[1]["val_mse"] == "0.125"
    assert RunLog(tmp_path).history() == back


def test_a_log_that_does_not_write_leaves_no_files(tmp_path, capsys):
    log = RunLog(tmp_path, show=False, write=False)
    row = {"epoch": 1, "step": 1, "train_loss": 1.0}
    log.epoch(row, [row], epochs=1, step=1)
    assert not any(tmp_path.iterdir()) and capsys.readouterr().err == ""
