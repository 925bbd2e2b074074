"""The progress bars of pull count each downloaded byte once."""

from minict.progress import BarProgress


def test_bar_counts_download_once():
    progress = BarProgress()
    progress.layer_added("sha256:" + "a" * 64, 1000, "Waiting")
    progress.layer_added("sha256:" + "b" * 64, 500, "Already exists")
    progress.layer_advance("sha256:" + "a" * 64, 400)
    progress.layer_advance("sha256:" + "a" * 64, 600)
    completed = [task.completed for task in progress._progress.tasks]
    assert completed == [1000, 500]
