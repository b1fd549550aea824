"""Image-grounded prompts (`pose-vlm-v1`): the picture a loopback OpenAI-compatible server receives is
the right photo, resized and marked where the annotation puts each person."""
from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from focusclip.core.errors import FocusError
from focusclip.core.io import read_jsonl
from focusclip.data.records import Annotation, Person
from tests.pipeline.describe.test_describe import describe_flat

# The marks' colours as prompts/picture.py documents them (Sasha Trubetskoy's first two)
RED, GREEN = (230, 25, 75), (60, 180, 75)


class VLMServer:
    """A chat-completions endpoint on 127.0.0.1 that keeps each request's body and answers `answer(body)`."""

    def __init__(self, answer=lambda body: "There is one person in the image."):
        self.bodies: list[dict] = []
        self.answer = answer   # the text for a request body
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": "vlm", "object": "model", "created": 0,
                                                        "owned_by": "t"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                self._send({"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                "role": "assistant", "content": server.answer(body)}}],
                            "usage": {"prompt_tokens": 900, "completion_tokens": 9, "total_tokens": 909}})

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = VLMServer()
    yield s
    s.close()


def person(pid: int, pts: dict[int, tuple[float, float]]) -> Person:
    kpts = [list(pts.get(j, (-1.0, -1.0))) for j in range(16)]
    return Person(id=pid, kpts=kpts, kpts_vis=[int(j in pts) for j in range(16)])


def standing(x: float, y: float, h: float) -> dict[int, tuple[float, float]]:
    """MPII joints of an upright person whose head top is at (x, y) and who is `h` px tall."""
    rel = {9: (0, 0), 8: (0, .12), 7: (0, .2), 12: (-.1, .2), 13: (.1, .2), 11: (-.12, .38), 14: (.12, .38),
           10: (-.12, .52), 15: (.12, .52), 6: (0, .5), 2: (-.06, .5), 3: (.06, .5), 1: (-.06, .75),
           4: (.06, .75), 0: (-.06, 1.0), 5: (.06, 1.0)}
    return {j: (x + dx * h, y + dy * h) for j, (dx, dy) in rel.items()}


def synthetic(tmp_path: Path) -> tuple[Path, list[Annotation]]:
    """A 1600×1000 gradient photo with two upright people drawn as grey bars."""
    folder = tmp_path / "images"
    folder.mkdir()
    yy, xx = np.mgrid[0:1000, 0:1600]
    arr = np.stack([xx * 255 // 1600, yy * 255 // 1000, (xx + yy) * 255 // 2600], -1).astype(np.uint8)
    im = Image.fromarray(arr)
    ImageDraw.Draw(im).rectangle((380, 200, 420, 800), fill=(40, 40, 40))
    im.save(folder / "synthetic.jpg", quality=95)
    people = [person(0, standing(400, 200, 600)), person(1, standing(1200, 300, 500))]
    return folder, [Annotation("synthetic.jpg", "val", 1600, 1000, activity="yoga, Power", category="sports",
                               people=people)]


def mpii(folder: Path) -> list[Annotation]:
    """The real samples' annotations, keypoints 0-based (the JSON is 1-based)."""
    people: dict[str, list[Person]] = {}
    for row in json.loads((folder / "test_mpii.json").read_text()):
        ps = people.setdefault(row["image"], [])
        ps.append(Person(id=len(ps), kpts=[[x - 1.0, y - 1.0] for x, y in row["joints"]],
                         kpts_vis=[int(v) for v in row["joints_vis"]]))
    out = []
    for name, ps in sorted(people.items()):
        w, h = Image.open(folder / name).size
        out.append(Annotation(name, "val", w, h, activity="", people=ps))
    return out


def sent_picture(body: dict) -> Image.Image:
    """The image part of a request's user turn, decoded."""
    parts = body["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 1 and urls[0].startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))).convert("RGB")


def expected_box(p: Person, scale: float) -> tuple[float, float, float, float]:
    """The padded keypoint box as docs/describe.md states it: 10% of the larger side on each side."""
    xy = np.array([q for q, v in zip(p.kpts, p.kpts_vis) if v > 0])
    pad = 0.1 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 20.0)
    x1, y1 = xy.min(0) - pad
    x2, y2 = xy.max(0) + pad
    return x1 * scale, y1 * scale, x2 * scale, y2 * scale


def near(im: Image.Image, x: float, y: float, colour, tol: int = 60) -> bool:
    """Some pixel within 2 px of (x, y) has `colour` (within JPEG error)."""
    arr = np.asarray(im).astype(int)
    xi, yi = int(round(x)), int(round(y))
    patch = arr[max(0, yi - 2): yi + 3, max(0, xi - 2): xi + 3]
    return bool((np.abs(patch - np.array(colour)).max(-1) <= tol).any())


def check_picture(got: Image.Image, source: Path, ann: Annotation, max_side: int, mark: str) -> None:
    src = Image.open(source).convert("RGB")
    scale = min(1.0, max_side / max(src.size))
    assert got.size == (round(src.width * scale), round(src.height * scale))
    ref = np.asarray(src.resize(got.size, Image.Resampling.LANCZOS)).astype(int)
    diff = np.abs(np.asarray(got).astype(int) - ref).max(-1)
    # away from the marks the picture is the photo, within JPEG error
    unmarked = np.ones(diff.shape, bool)
    for p in ann.people:
        x1, y1, x2, y2 = expected_box(p, scale)
        unmarked[max(0, int(y1) - 40): int(y2) + 40, max(0, int(x1) - 40): int(x2) + 40] = False
    if mark != "none" and unmarked.any():
        assert np.median(diff[unmarked]) <= 6, np.median(diff[unmarked])
    if mark == "none":
        assert np.median(diff) <= 6
    for k, p in enumerate(ann.people):
        colour = (RED, GREEN)[k % 2] if k < 2 else None
        if colour is None:
            continue
        x1, y1, x2, y2 = expected_box(p, scale)
        x1, y1 = max(x1, 0), max(y1, 0)
        x2, y2 = min(x2, got.width - 1), min(y2, got.height - 1)
        head = p.kpts[9] if p.kpts_vis[9] else p.kpts[8]
        if mark == "box":   # the four sides (the top left under the number, also the colour)
            for x, y in (((x1 + x2) / 2, y2), (x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2), ((x1 + x2) / 2, y1)):
                assert near(got, x, y, colour), (k, x, y)
        elif mark in ("number", "skeleton"):
            assert near(got, head[0] * scale, head[1] * scale, colour) or mark == "skeleton"
        if mark == "skeleton":   # the middle of the thorax–pelvis bone
            (ax, ay), (bx, by) = p.kpts[7], p.kpts[6]
            if p.kpts_vis[7] and p.kpts_vis[6]:
                assert near(got, (ax + bx) / 2 * scale, (ay + by) / 2 * scale, colour)


def run(server, anns, folder, tmp_path, name="out", **kw):
    out = tmp_path / f"{name}.jsonl"
    describe_flat(anns, out, backend="openai", model="vlm", base_url=server.url, prompt_id="pose-vlm-v1",
                  images=folder, concurrency=1, **kw)
    return list(read_jsonl(out))


@pytest.mark.parametrize("mark", ["none", "box", "number", "skeleton"])
def test_the_server_gets_the_resized_photo_with_each_mark_where_the_annotation_puts_it(server, tmp_path, mark):
    folder, anns = synthetic(tmp_path)
    recs = run(server, anns, folder, tmp_path, mark=mark, image_max_side=640)
    body, = server.bodies
    check_picture(sent_picture(body), folder / "synthetic.jpg", anns[0], 640, mark)
    text = " ".join(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
    assert "Number of people: 2" in text and ("(marked 1)" in text) == (mark != "none")
    assert recs[0]["prompt_id"] == "pose-vlm-v1" and recs[0]["usage"]["prompt_tokens"] == 900
    assert (tmp_path / "images" / "synthetic.jpg").read_bytes() == (folder / "synthetic.jpg").read_bytes()


@pytest.mark.parametrize("mark", ["box", "number", "skeleton"])
def test_real_mpii_samples_reach_the_server_resized_and_marked(server, tmp_path, mpii_samples, mark):
    anns = mpii(mpii_samples)
    recs = run(server, anns, mpii_samples, tmp_path, mark=mark)
    assert len(recs) == len(anns) == len(server.bodies) == 5
    for body in server.bodies:   # each request matches one image: find it by its picture's size and pixels
        got = sent_picture(body)
        matches = [a for a in anns if _matches(got, mpii_samples / a.image)]
        assert len(matches) == 1
        check_picture(got, mpii_samples / matches[0].image, matches[0], 768, mark)


def _matches(got: Image.Image, source: Path) -> bool:
    src = Image.open(source).convert("RGB")
    scale = min(1.0, 768 / max(src.size))
    if got.size != (round(src.width * scale), round(src.height * scale)):
        return False
    ref = np.asarray(src.resize(got.size, Image.Resampling.LANCZOS)).astype(int)
    return float(np.median(np.abs(np.asarray(got).astype(int) - ref))) <= 6


def test_settings_of_the_picture_are_part_of_the_prompt_hash_and_file_urls_point_at_the_marked_copy(
        server, tmp_path):
    folder, anns = synthetic(tmp_path)
    a = run(server, anns, folder, tmp_path, name="a", mark="box")[0]
    b = run(server, anns, folder, tmp_path, name="b", mark="number")[0]
    c = run(server, anns, folder, tmp_path, name="c", mark="box", image_url="file")[0]
    assert a["prompt_sha"] != b["prompt_sha"] and a["prompt_sha"] == c["prompt_sha"]
    url = [p for p in server.bodies[-1]["messages"][-1]["content"] if p["type"] == "image_url"][0]["image_url"]["url"]
    assert url.startswith("file:///")
    copy = Path(url[len("file://"):])
    assert copy.parent == tmp_path / "c.marked"
    check_picture(Image.open(copy).convert("RGB"), folder / "synthetic.jpg", anns[0], 768, "box")


def test_a_picture_prompt_without_images_or_with_an_unknown_mark_is_one_line(tmp_path):
    folder, anns = synthetic(tmp_path)
    with pytest.raises(FocusError, match="--images"):
        describe_flat(anns, tmp_path / "o.jsonl", prompt_id="pose-vlm-v1")
    with pytest.raises(FocusError, match="--mark"):
        describe_flat(anns, tmp_path / "o.jsonl", prompt_id="pose-vlm-v1", images=folder, mark="circle")
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_sends_the_picture_with_the_given_mark_and_size(server, tmp_path):
    import subprocess

    from focusclip.data.records import write_annotations
    from tests.conftest import console_script

    folder, anns = synthetic(tmp_path)
    write_annotations(tmp_path / "ann.jsonl", anns)
    out = tmp_path / "cli.jsonl"
    proc = subprocess.run([console_script("focus-data"), "describe", str(tmp_path / "ann.jsonl"), "-o", str(out),
                           "--backend", "openai", "--model", "vlm", "--base-url", server.url, "--prompt",
                           "pose-vlm-v1", "--images", str(folder), "--mark", "skeleton", "--image-max-side", "500"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check_picture(sent_picture(server.bodies[0]), folder / "synthetic.jpg", anns[0], 500, "skeleton")
    assert len(list(read_jsonl(out))) == 1
