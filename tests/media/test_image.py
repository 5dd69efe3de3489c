import numpy as np
import pytest
import torch
from PIL import Image

from headsplat.core.errors import InputError
from headsplat.media import read_image, write_png
from headsplat.media.image import read_image_uint8


def _rgb(h=20, w=30):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (200, 30, 10)
    a[:, w // 2:] = (10, 40, 220)
    return a


@pytest.mark.parametrize("ext,fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".tif", "TIFF"),
                                     (".bmp", "BMP")])
def test_formats_read_as_float_rgb(tmp_path, ext, fmt):
    p = tmp_path / f"x{ext}"
    Image.fromarray(_rgb()).save(p, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    img = read_image(p)
    assert img.dtype == torch.float32 and img.shape == (20, 30, 3)
    assert float(img.min()) >= 0 and float(img.max()) <= 1
    assert abs(float(img[10, 5, 0]) - 200 / 255) < 0.05 and abs(float(img[10, 25, 2]) - 220 / 255) < 0.05


def test_exif_orientation_is_applied(tmp_path):
    a = _rgb(20, 30)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "o.jpg"
    im.save(p, exif=exif, quality=95)
    out = read_image_uint8(p)
    assert out.shape == (30, 20, 3)
    # the left (red) half ends up on top after a clockwise turn
    assert out[2, 10, 0] > 150 and out[27, 10, 2] > 150


def test_grayscale_rgba_palette_and_16bit(tmp_path):
    Image.fromarray(np.full((8, 8), 128, np.uint8), "L").save(tmp_path / "g.png")
    assert (read_image_uint8(tmp_path / "g.png") == 128).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top opaque red, bottom transparent -> white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image_uint8(tmp_path / "a.png")
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[7, 0]) == (255, 255, 255)
    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert read_image_uint8(tmp_path / "p.png").shape == (20, 30, 3)
    g16 = np.full((8, 8), 65535 // 2, np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = read_image_uint8(tmp_path / "g16.png")
    assert out.shape == (8, 8, 3) and abs(int(out[0, 0, 0]) - 128) <= 1


def test_bad_images_raise_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty.png: file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(InputError, match="corrupt.jpg: not a readable image"):
        read_image(tmp_path / "corrupt.jpg")
    Image.fromarray(_rgb()).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.png: not a readable image"):
        read_image(tmp_path / "trunc.png")


def test_write_png_is_atomic_and_round_trips(tmp_path):
    img = torch.rand(6, 7, 3)
    write_png(tmp_path / "o.png", img)
    back = read_image(tmp_path / "o.png")
    assert torch.allclose(back, img, atol=1 / 255)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    import os

    write_png(tmp_path / "o.png", torch.zeros(2, 2, 3))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "o.png").stat().st_mode & 0o777 == 0o666 & ~mask
