"""Throughput of `describe --backend openai` against a loopback chat-completions server that answers
after 200 ms, at concurrency 1 and 32. Target: ≥ 20× (≥ 60% of the ideal 32×).

    .venv/bin/python benchmarks/describe.py [--latency 0.2] [--images-per-slot 10]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from focusclip.data.records import Annotation, Person
from focusclip.data.skeleton import JOINTS
from focusclip.pipeline.describe.stage import DescribeOptions, run_describe
from focusclip.pipeline.describe.types import GenParams

# An upright person (0-based pixels, MPII joint order by name), shifted per image for distinct prompts.
POSE = {"r_ankle": (485, 460), "r_knee": (485, 360), "r_hip": (475, 260), "l_hip": (525, 260),
        "l_knee": (515, 360), "l_ankle": (515, 460), "pelvis": (500, 260), "thorax": (500, 140),
        "upper_neck": (500, 127), "head_top": (500, 60), "r_wrist": (452, 290), "r_elbow": (455, 220),
        "r_shoulder": (460, 150), "l_shoulder": (540, 150), "l_elbow": (545, 220), "l_wrist": (548, 290)}


def annotations(n: int) -> list[Annotation]:
    out = []
    for i in range(n):
        dx = (i * 37) % 700
        kpts = [[POSE[j][0] + dx, POSE[j][1]] for j in JOINTS]
        out.append(Annotation(image=f"{i:09d}.jpg", split="train", width=1280, height=720, activity="curling",
                              category="sports", people=[Person(id=0, scale=2.0, kpts=kpts, kpts_vis=[2] * 16)]))
    return out


def serve(latency: float) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)  # the model "thinking"
            payload = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                      "role": "assistant", "content": "There is one person in the image."}}],
                                  "usage": {"prompt_tokens": 300, "completion_tokens": 40}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"


def throughput(url: str, concurrency: int, n: int, workdir: Path) -> float:
    out = workdir / f"c{concurrency}.jsonl"
    t0 = time.perf_counter()
    opts = DescribeOptions(None, out, backend="openai", model="bench", base_url=url,
                           gen=GenParams(concurrency=concurrency))
    report = run_describe(opts, records=annotations(n), progress=False)
    seconds = time.perf_counter() - t0
    assert report.counts.get("described") == n, report.to_dict()
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--images-per-slot", type=int, default=10, help="images per concurrent slot")
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench-key")
    httpd, url = serve(args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        throughput(url, 4, 8, Path(tmp))  # warm-up: imports, connection pool
        one = throughput(url, 1, args.images_per_slot, Path(tmp))
        many = throughput(url, 32, 32 * args.images_per_slot, Path(tmp))
    httpd.shutdown()
    ideal = 1 / args.latency
    print(f"latency {args.latency * 1000:.0f} ms per request")
    print(f"concurrency  1: {one:7.2f} images/s  (ideal {ideal:.2f})")
    print(f"concurrency 32: {many:7.2f} images/s  (ideal {32 * ideal:.2f})")
    print(f"ratio: {many / one:.1f}x  (target >= 20x; {100 * many / one / 32:.0f}% of the ideal 32x)")


if __name__ == "__main__":
    main()
