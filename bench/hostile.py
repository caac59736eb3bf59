"""Memory of every hostile file, each in a fresh process (run by hand).

    .venv/bin/python bench/hostile.py

The files are tests/hostile_files.py's. For each, a fresh Python imports numpy, Pillow,
SQLAlchemy and mnistnet, opens a store on a new SQLite file and reads the file's bytes (the
idle level); then passes it through load_model and import_model_upload (a model),
digits_from_zip and import_uploads (a zip) or image_to_digit and import_uploads (an image).
"Peak over idle" is the growth of the process's peak RSS during each call, so Pillow's own
pixel buffers, which tracemalloc does not see, count too. On Linux the peak is reset to the
current RSS first (/proc/self/clear_refs) and read as VmHWM: ru_maxrss never goes below the
peak of the process that spawned the child (this bench, holding every file) nor below the
imports' own peak, so it would hide anything smaller. Elsewhere, ru_maxrss it is.
Columns: "check" the first function, "import" the second (which also stores what it accepts),
"s" the slower of the two in seconds.
A hostile file is mishandled if it is accepted, raises anything but ValueError, gives a message
naming an exception class or costs over 200 MB; a legitimate one if it is refused or over 200 MB.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import hostile_files as H  # noqa: E402

from mnistnet.modelfile import load_model  # noqa: E402
from mnistnet.store import Store  # noqa: E402
from mnistnet.uploads import digits_from_zip, image_to_digit, import_model_upload, import_uploads  # noqa: E402

LIMIT_MB = 200
CLASS_NAME = re.compile(r"\b[A-Z][a-zA-Z]+Error\b|Traceback")


def child(kind: str, path: str, db: str) -> None:
    """In the fresh process (numpy, Pillow and the rest already imported): measure one file,
    print one JSON line."""
    store = Store(f"sqlite:///{db}")
    data = Path(path).read_bytes()
    calls = {"model": [lambda: load_model(data), lambda: import_model_upload(store, data, "up.npz", "bench")],
             "zip": [lambda: digits_from_zip(data, "up.zip"),
                     lambda: import_uploads(store, [("up.zip", data, None)], "bench")],
             "image": [lambda: image_to_digit(data, "up.png"),
                       lambda: import_uploads(store, [("up.png", data, 3)], "bench")]}[kind]
    outcome, message, peaks, seconds = "accepted", "", [], []
    for call in calls:
        idle, t = H.reset_peak_rss(), time.perf_counter()
        try:
            call()
        except ValueError as e:
            outcome, message = "refused", str(e)
        except Exception as e:  # noqa: BLE001  (what the bench is looking for)
            outcome, message = "crashed", f"{type(e).__name__}: {e}"
        seconds.append(time.perf_counter() - t)
        peaks.append((H.peak_rss_kb() - idle) / 1024)
    print(json.dumps({"outcome": outcome, "message": message, "peaks_mb": peaks, "seconds": seconds}))


def measure(kind: str, data: bytes, folder: Path, i: int) -> dict:
    path, db = folder / "input", folder / f"store{i}.sqlite3"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(db)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"outcome": "crashed", "message": out.stderr.strip().splitlines()[-1], "peaks_mb": [float("nan")],
                "seconds": [float("nan")]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows, mishandled = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kind, make) in enumerate([*H.HOSTILE, *H.LEGIT]):
            data = make()
            r = measure(kind, data, Path(tmp), i)
            hostile = (name, kind, make) in H.HOSTILE
            bad = (r["outcome"] != ("refused" if hostile else "accepted") or not max(r["peaks_mb"]) <= LIMIT_MB
                   or bool(CLASS_NAME.search(r["message"])) or "\n" in r["message"])
            mishandled += bad and hostile
            result = f"refused: {r['message']}" if r["outcome"] == "refused" else r["outcome"]
            if r["outcome"] == "crashed":
                result += f" ({r['message']})"
            rows.append((name if hostile else f"{name} (legitimate)", f"{len(data):,}",
                         *(f"{p:.1f}" for p in (r["peaks_mb"] * 2)[:2]), f"{max(r['seconds']):.2f}", result,
                         ("MISHANDLED" if hostile else f"NOT WITHIN {LIMIT_MB} MB OR REFUSED") if bad else ""))
    w = [max(len(row[i]) for row in rows) for i in range(2)]
    print(f"{'file':<{w[0]}}  {'bytes':>{w[1]}}  {'check':>6}  {'import':>6}  {'s':>5}  "
          "result (peak MB over idle; s: the slower call's seconds)")
    for name, size, check, imp, secs, result, flag in rows:
        print(f"{name:<{w[0]}}  {size:>{w[1]}}  {check:>6}  {imp:>6}  {secs:>5}  {result[:100]}  {flag}".rstrip())
    print(f"{len(H.HOSTILE)} hostile inputs, {mishandled} mishandled")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
    else:
        main()
