"""``hotcold data imagenet``: photos to Datum LMDBs as Caffe's convert_imageset writes them (Sec. 5.3's data)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from hotcold.caffe.lmdb_io import read_datum_lmdb
from hotcold.cli import main
from hotcold.data import imagenet
from hotcold.data.image_sets import read_image
from hotcold.data.imagenet import center_crop, convert_imagenet, read_center_crops, resize_image


def test_training_set_is_shuffled_bgr_256_with_labels_from_sorted_class_folders(photo_folder, tmp_path):
    done = convert_imagenet(tmp_path / "out", train=photo_folder, progress=False)
    classes = sorted(p.name for p in photo_folder.iterdir())
    assert (tmp_path / "out" / "synsets.txt").read_text().split() == classes
    arrays = read_datum_lmdb(done["train"].lmdb)
    assert arrays.images.shape == (12, 256, 256, 3) and done["train"].images == 12
    order = [k.split("_", 1)[1] for k in arrays.keys]
    assert order != sorted(order), "the training LMDB must be shuffled (Caffe's --shuffle)"
    assert [int(k.split("_", 1)[0]) for k in arrays.keys] == list(range(12))
    for key, image, label in zip(arrays.keys, arrays.images, arrays.labels):
        rel = key.split("_", 1)[1]
        assert label == classes.index(rel.split("/")[0])
        rgb = resize_image(read_image(photo_folder / rel, channels=3), 256)
        np.testing.assert_array_equal(image, rgb[..., ::-1])  # stored BGR, as OpenCV / convert_imageset


def test_center_crops_come_back_rgb(photo_folder, tmp_path):
    convert_imagenet(tmp_path, train=photo_folder, progress=False, shorter_side=True)
    stored = read_datum_lmdb(tmp_path / "train_lmdb")
    images, labels, keys = next(read_center_crops(tmp_path / "train_lmdb", 224))
    assert images.shape == (12, 224, 224, 3) and keys == stored.keys
    np.testing.assert_array_equal(images, center_crop(stored.images, 224)[..., ::-1])
    np.testing.assert_array_equal(labels, stored.labels)


def test_unreadable_files_are_skipped_and_listed_never_dropped(photo_folder, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(photo_folder, train)
    (train / "n02123045" / "broken.JPEG").write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    good = (train / "n07920052" / "n07920052_0.JPEG").read_bytes()
    (train / "n07920052" / "cut.JPEG").write_bytes(good[:len(good) // 2])
    (train / "n07920052" / "notes.txt").write_text("annotations are not images")
    done = convert_imagenet(tmp_path / "out", train=train, progress=False)
    assert done["train"].images == 12
    listed = (tmp_path / "out" / "train_lmdb_skipped.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == ["n02123045/broken.JPEG", "n07920052/cut.JPEG"]
    assert "truncated" in " ".join(listed)


def test_flat_validation_folder_takes_labels_from_val_txt(photo_folder, tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    lines = []
    for i, f in enumerate(sorted(photo_folder.rglob("*.JPEG"))):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        shutil.copy(f, val / name)
        lines.append(f"{name} {sorted(p.name for p in photo_folder.iterdir()).index(f.parent.name)}")
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="give its labels with --val-labels"):
        convert_imagenet(tmp_path / "a", train=photo_folder, val=val, progress=False)
    assert not (tmp_path / "a" / "train_lmdb").exists()  # refused before the training set is converted
    done = convert_imagenet(tmp_path / "b", train=photo_folder, val=val, val_labels=tmp_path / "val.txt",
                            progress=False)
    arrays = read_datum_lmdb(done["val"].lmdb)
    assert [k.split("_", 1)[1] for k in arrays.keys] == [ln.split()[0] for ln in lines]  # not shuffled
    assert arrays.labels.tolist() == [int(ln.split()[1]) for ln in lines]


def test_interrupted_conversion_resumes_to_the_same_lmdb(photo_folder, tmp_path, monkeypatch):
    whole = convert_imagenet(tmp_path / "whole", train=photo_folder, progress=False)
    monkeypatch.setattr(imagenet, "CHUNK", 5)
    calls = {"n": 0}
    real = imagenet._load

    def dying(*args):
        calls["n"] += 1
        if calls["n"] > 7:  # during the second chunk
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(imagenet, "_load", dying)
    with pytest.raises(KeyboardInterrupt):
        convert_imagenet(tmp_path / "cut", train=photo_folder, progress=False, threads=1)
    assert len(read_datum_lmdb(tmp_path / "cut" / "train_lmdb").keys) == 5
    monkeypatch.setattr(imagenet, "_load", real)
    convert_imagenet(tmp_path / "cut", train=photo_folder, progress=False)
    a, b = read_datum_lmdb(whole["train"].lmdb), read_datum_lmdb(tmp_path / "cut" / "train_lmdb")
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.images, b.images)


def test_another_conversion_into_the_same_folder_is_refused(photo_folder, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(photo_folder, train)
    convert_imagenet(tmp_path / "out", train=train, progress=False)
    with pytest.raises(Exception, match="holds other results"):
        convert_imagenet(tmp_path / "out", train=train, size=300, progress=False)
    # the same folder and count of files, but not the same files: resuming would mix two listings
    first = sorted((train / "n07920052").iterdir())[0]
    first.rename(first.with_name("renamed.JPEG"))
    with pytest.raises(Exception, match="holds other results.*listing"):
        convert_imagenet(tmp_path / "out", train=train, progress=False)


def test_images_are_read_as_caffe_reads_them(tmp_path):
    # EXIF orientation applied and alpha dropped, as cv::imread(IMREAD_COLOR) in convert_imageset.
    from PIL import Image

    upright = np.zeros((4, 6, 3), np.uint8)
    upright[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(upright).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    assert read_image(tmp_path / "phone.jpg", channels=3).shape == (6, 4, 3)
    gray_alpha = np.dstack([np.full((4, 5), 100, np.uint8), np.full((4, 5), 7, np.uint8)])
    Image.fromarray(gray_alpha, "LA").save(tmp_path / "la.png")
    assert (read_image(tmp_path / "la.png", channels=3) == 100).all()
    assert (read_image(tmp_path / "la.png", channels=1) == 100).all()


@pytest.mark.parametrize("args, message", [
    ([], "give --train DIR, --val DIR or both"),
    (["--train", "{tmp}/nowhere"], "does not exist"),
    (["--train", "{tmp}/empty"], "has no class sub-folders"),
    (["--size", "0"], "must be >= 1"),
])
def test_cli_errors_are_one_line(args, message, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["data", "imagenet", "--out", str(tmp_path / "out"), *[a.format(tmp=tmp_path) for a in args]]
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse rejects the value itself
        status = exc.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_cli_converts_and_reports_counts(photo_folder, tmp_path, capsys):
    assert main(["data", "imagenet", "--train", str(photo_folder), "--out", str(tmp_path), "--quiet"]) == 0
    assert f"train: 12 images in {tmp_path / 'train_lmdb'}" in capsys.readouterr().out
