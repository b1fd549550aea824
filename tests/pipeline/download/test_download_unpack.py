"""Safe unpacking (escaping paths, links and special files refused, damage detected, bombs stopped),
path patterns, prefix finding and mirror URLs."""
from __future__ import annotations

import errno
import io
import re
import stat
import tarfile
import zipfile

import pytest

from focusclip.core.errors import FocusError, user_message
from focusclip.pipeline.download import CATALOG
from focusclip.pipeline.download import unpack as unpack_mod
from focusclip.pipeline.download.place import find_prefix
from focusclip.pipeline.download.spec import check_mirror, kept, match, mirrored
from focusclip.pipeline.download.unpack import archive_kind, unpack
from tests.pipeline.download.download_fixtures import tar_with, zeros_zip, zip_with

FILE_MODE, LINK_MODE = 0o100644, 0o120777


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


MALICIOUS = {
    "tar-dotdot": ("x.tar.gz", tar_with([("UTKFace/ok.jpg", b"1"), ("UTKFace/../../evil.jpg", b"2")]),
                   "UTKFace/../../evil.jpg", "climbs out"),
    "tar-absolute": ("x.tar.gz", tar_with([("/tmp/evil.jpg", b"2")]), "/tmp/evil.jpg", "absolute path"),
    "tar-symlink": ("x.tar.gz", tar_with([_link("UTKFace/a.jpg", "/etc/passwd", tarfile.SYMTYPE)]),
                    "UTKFace/a.jpg", "symbolic link"),
    "tar-hardlink": ("x.tar.gz",
                     tar_with([("ok", b"1"), _link("UTKFace/b.jpg", "../../../etc/passwd", tarfile.LNKTYPE)]),
                     "UTKFace/b.jpg", "hard link"),
    "tar-fifo": ("x.tar.gz", tar_with([_fifo("UTKFace/pipe")]), "UTKFace/pipe", "special file"),
    "zip-dotdot": ("x.zip", zip_with([("JPEGImages/a.jpg", b"1", FILE_MODE), ("../evil.jpg", b"2", FILE_MODE)]),
                   "../evil.jpg", "climbs out"),
    "zip-backslash": ("x.zip", zip_with([("JPEGImages\\..\\..\\evil.jpg", b"2", FILE_MODE)]),
                      "JPEGImages\\..\\..\\evil.jpg", "climbs out"),
    "zip-absolute": ("x.zip", zip_with([("/evil.jpg", b"2", FILE_MODE)]), "/evil.jpg", "absolute path"),
    "zip-drive": ("x.zip", zip_with([("C:/evil.jpg", b"2", FILE_MODE)]), "C:/evil.jpg", "absolute path"),
    "zip-symlink": ("x.zip", zip_with([("JPEGImages/a.jpg", b"/etc/passwd", LINK_MODE)]),
                    "JPEGImages/a.jpg", "symbolic link"),
    # a zip member's Unix mode (external_attr >> 16) naming a device, FIFO or socket; the good member first
    **{f"zip-{kind}": ("x.zip", zip_with([("JPEGImages/ok.jpg", b"1", FILE_MODE), ("JPEGImages/dev", b"", mode)]),
                       "JPEGImages/dev", "is a device, FIFO or other special file")
       for kind, mode in [("chardev", stat.S_IFCHR | 0o644), ("blockdev", stat.S_IFBLK | 0o644),
                          ("fifo", stat.S_IFIFO | 0o644), ("socket", stat.S_IFSOCK | 0o755)]},
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_a_malicious_member_refuses_the_whole_archive(tmp_path, case):
    name, data, member, why = MALICIOUS[case]
    archive = tmp_path / "in" / name
    archive.parent.mkdir()
    archive.write_bytes(data)
    out = tmp_path / "work" / "deep" / "out"
    with pytest.raises(FocusError) as e:
        unpack(archive, out)
    msg = str(e.value)
    assert f"member '{member}'" in msg and why in msg and "\n" not in msg
    assert not out.exists()                                        # nothing kept, not even the good member
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == [f"in/{name}"]                                # and nothing escaped anywhere


def test_a_bad_crc_is_found_and_nothing_is_kept(tmp_path):
    data = zip_with([("JPEGImages/a.jpg", b"A" * 4000, FILE_MODE), ("JPEGImages/b.jpg", b"B" * 10, FILE_MODE)])
    i = data.index(b"A" * 4000)
    archive = tmp_path / "Stanford40_JPEGImages.zip"
    archive.write_bytes(data[:i + 2000] + b"Z" + data[i + 2001:])   # one byte of a member's data flipped
    damaged = r"Stanford40_JPEGImages.zip: the archive is damaged or truncated \(BadZipFile: Bad CRC-32"
    with pytest.raises(FocusError, match=damaged):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["UTKFace.tar.gz", "Stanford40_JPEGImages.zip"])
def test_a_truncated_archive_is_damaged(tmp_path, name):
    members = [(f"UTKFace/{i}.jpg", bytes([i]) * 20_000 + bytes(range(256)) * 40) for i in range(8)]
    data = tar_with(members) if name.endswith(".gz") else zip_with([(n, d, FILE_MODE) for n, d in members])
    archive = tmp_path / name
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(FocusError, match="the archive is damaged or truncated"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_good_archives_and_plain_files(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(tar_with([("UTKFace/x.jpg", b"x"), ("UTKFace/y.jpg", b"yy")]))
    assert unpack(tmp_path / "a.tar.gz", tmp_path / "t") == 2
    assert (tmp_path / "t" / "UTKFace" / "y.jpg").read_bytes() == b"yy"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ImageSplits/", b"")
        zf.writestr("ImageSplits/test.txt", b"applauding_001.jpg\n")
    (tmp_path / "download").write_bytes(buf.getvalue())          # a dropped-in file with no suffix
    assert archive_kind(tmp_path / "download") == "zip"
    assert unpack(tmp_path / "download", tmp_path / "z") == 1
    (tmp_path / "val.csv").write_text("label,youtube_id\n")
    assert archive_kind(tmp_path / "val.csv") == "file"
    assert unpack(tmp_path / "val.csv", tmp_path / "c") == 1 and (tmp_path / "c" / "val.csv").is_file()


def test_patterns_stay_in_their_folder_unless_double_star():
    assert match("images/015601864.jpg", "images/*.jpg")
    assert not match("images/a/b.jpg", "images/*.jpg") and not match("x/images/a.jpg", "images/*.jpg")
    assert match("mscoco/images/a/b.jpg", "mscoco/**") and match("a/b/c.mp4", "**/*.mp4")
    assert kept("mscoco/images/p.jpg", ("ade20k/**", "mscoco/**")) and not kept("Annotations/x.mat", ("mscoco/**",))
    assert kept("anything", ())


def test_the_prefix_is_where_the_anchor_matches_most_then_the_shallowest():
    files = ["mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat", "mpii_human_pose_v1_u12_2/README.md"]
    assert find_prefix(files, "mpii_human_pose_v1_u12_1.mat") == "mpii_human_pose_v1_u12_2"
    both = [f"UTKFace/{i}.jpg.chip.jpg" for i in range(3)] + [f"cropped/UTKFace/{i}.jpg.chip.jpg" for i in range(3)]
    assert find_prefix(both, "UTKFace/*.jpg*") == ""
    assert find_prefix(["a/JPEGImages/x.jpg", "a/JPEGImages/y.jpg", "JPEGImages/z.jpg"], "JPEGImages/*.jpg") == "a"
    assert find_prefix(["notes.txt"], "JPEGImages/*.jpg") is None


def test_a_mirror_replaces_scheme_and_host_and_keeps_path_and_query():
    url = "https://drive.usercontent.google.com/download?id=1wOd&export=download&confirm=t"
    assert mirrored(url, "http://127.0.0.1:8000/pre/") == \
        "http://127.0.0.1:8000/pre/download?id=1wOd&export=download&confirm=t"
    assert mirrored("http://vision.stanford.edu/Datasets/x.zip", "https://m.example.org") == \
        "https://m.example.org/Datasets/x.zip"
    assert mirrored(url, None) == url
    for bad in ("ftp://m.example.org", "m.example.org", "http://", "http://m/x?q=1"):
        with pytest.raises(FocusError, match="--mirror"):
            check_mirror(bad)


# ----------------------------------------------------------------------------------- bombs
@pytest.fixture
def small_limits(monkeypatch):
    """The bomb limits lowered from 100 GiB, 200× past 64 MiB to 4 MiB, 200× past 1 MiB."""
    monkeypatch.setattr(unpack_mod, "MAX_UNPACKED", 4 * 2**20)
    monkeypatch.setattr(unpack_mod, "RATIO_FLOOR", 2**20)


def test_a_zip_bomb_is_refused_by_its_ratio_and_nothing_is_kept(tmp_path, small_limits, monkeypatch):
    archive = tmp_path / "Stanford40_JPEGImages.zip"
    archive.write_bytes(zeros_zip(3 * 2**20))                     # 3 MiB in about 3 kB: over 200×, past 1 MiB
    size = archive.stat().st_size
    assert 3 * 2**20 / size > 200
    written = []
    real_take = unpack_mod._Budget.take
    monkeypatch.setattr(unpack_mod._Budget, "take", lambda self, n: (real_take(self, n), written.append(n)))
    with pytest.raises(FocusError) as e:
        unpack(archive, tmp_path / "out", "Stanford40_JPEGImages.zip from http://mirror/x.zip")
    assert str(e.value) == ("Stanford40_JPEGImages.zip from http://mirror/x.zip: the archive unpacks to more than "
                            f"200 times its own {size:,} bytes (a decompression bomb); it is refused and nothing "
                            "of it was kept (use the dataset's official archive; the real ones unpack to under 4 MiB "
                            "and 200 times their size)")
    assert sum(written) == 2**20                                    # the chunk past 1 MiB was never written
    assert not (tmp_path / "out").exists()


def test_an_archive_over_the_size_limit_is_refused_whatever_its_ratio(tmp_path, small_limits):
    """Five incompressible 1 MiB members (ratio about 1) in a tar.gz: the fifth goes past 4 MiB."""
    members = [(f"UTKFace/{i}.jpg", random_bytes(2**20, seed=i)) for i in range(5)]
    archive = tmp_path / "UTKFace.tar.gz"
    archive.write_bytes(tar_with(members))
    with pytest.raises(FocusError, match=r"UTKFace.tar.gz: the archive unpacks to more than 4 MiB, the limit per "
                                         r"archive; it is refused and nothing of it was kept"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    archive.write_bytes(tar_with(members[:4]))                      # exactly 4 MiB is within the limit
    assert unpack(archive, tmp_path / "out") == 4


def random_bytes(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def test_a_small_archive_may_compress_well(tmp_path, small_limits):
    """Under RATIO_FLOOR any ratio is fine: a 1 MiB CSV of zeros in a 1 kB zip unpacks."""
    archive = tmp_path / "x.zip"
    archive.write_bytes(zeros_zip(2**20, "fer2013.csv"))
    assert unpack(archive, tmp_path / "out") == 1 and (tmp_path / "out" / "fer2013.csv").stat().st_size == 2**20


def test_the_real_datasets_are_within_the_default_limits():
    """Every size the catalog states (the largest: MPII's 12.9 GB, Kinetics' estimated 29 GB) is well
    under the per-archive limit; none of them unpacks past the ratio (JPEG, MP4, CSV at most ~3.5×)."""
    stated = [float(n) * {"MB": 1e6, "GB": 1e9}[unit] for d in CATALOG.values()
              for text in (d.size, *(p.size for p in d.parts)) for n, unit in re.findall(r"([\d.]+) (MB|GB)", text)]
    assert max(stated) == 29e9 and max(stated) * 3 < unpack_mod.MAX_UNPACKED


def test_a_full_disk_while_unpacking_names_the_file_and_is_not_damage(tmp_path, monkeypatch):
    (tmp_path / "a.tar.gz").write_bytes(tar_with([("UTKFace/x.jpg", b"x" * 100)]))

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(unpack_mod, "open", lambda path, mode: FullDisk(path, mode.replace("b", "")), raising=False)
    with pytest.raises(OSError) as e:
        unpack(tmp_path / "a.tar.gz", tmp_path / "out")
    assert user_message(e.value) == (f"{tmp_path / 'out' / 'UTKFace' / 'x.jpg'}: no space left on the device "
                                     "(free some space or choose an output on another disk)")
    assert not (tmp_path / "out").exists()
