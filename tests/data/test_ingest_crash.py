"""An ingestion killed midway (SIGKILL) leaves the pool as it was; a re-run completes it."""
import json
import signal
import subprocess
import sys
import time

from PIL import Image

from lifelong.data.pool import Pool

N = 4000


def _write_dataset(root):
    (root / "images").mkdir(parents=True)
    records = []
    for i in range(N):
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(root / "images" / f"{i}.png")
        records.append({"id": str(i), "image": f"images/{i}.png",
                        "conversations": [{"from": "human", "value": "<image>\nWhich colour?"},
                                          {"from": "gpt", "value": f"colour {i}"}]})
    (root / "train.json").write_text(json.dumps(records))


def test_sigkill_during_ingest_then_rerun(tmp_path):
    data = tmp_path / "big"
    _write_dataset(data)
    pool_dir = tmp_path / "pool"
    # A first, completed ingest: it must survive the killed one untouched.
    small = tmp_path / "small"
    (small / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(small / "images" / "a.png")
    (small / "train.json").write_text(json.dumps([{"id": "a", "image": "images/a.png", "conversations": [
        {"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}]}]))
    cmd = [sys.executable, "-m", "lifelong.cli", "ingest", "--pool", str(pool_dir)]
    subprocess.run(cmd + [str(small)], check=True, capture_output=True)

    proc = subprocess.Popen(cmd + [str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    blobs = pool_dir / "blobs"
    deadline = time.time() + 60
    # Kill once the ingest is well under way (images being copied) but not done.
    while time.time() < deadline and proc.poll() is None:
        if sum(1 for _ in blobs.glob("*/*")) > N // 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "ingest finished before it could be killed; make the dataset larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    with Pool(pool_dir) as pool:
        assert pool.check() == []
        assert pool.count() == 1  # only the earlier, completed ingest
        assert pool.samples()[0].id == "small/train/a"

    subprocess.run(cmd + [str(data)], check=True, capture_output=True)
    with Pool(pool_dir) as pool:
        assert pool.check() == []
        assert pool.count(dataset="big") == N
        assert pool.count() == N + 1
        got = pool.samples(dataset="big")
        assert [s.provenance["source_id"] for s in got] == [str(i) for i in range(N)]
