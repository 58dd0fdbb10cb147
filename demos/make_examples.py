"""Make the demo's example inputs (committed in vistool/app/examples; all generated, none downloaded).

    python demos/make_examples.py [--chromium /usr/bin/chromium]

shapes.png      coloured shapes (detect, ground, point, caption, ask)
document.png    rendered text: a small receipt (OCR, ask)
screenshot.png  a sign-in web page rendered by headless Chromium (GUI)
clip.webm       3 s, 10 fps: a red ball crosses, a blue square appears at 1.5 s (video)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parents[1] / "vistool" / "app" / "examples"

PAGE = """<!doctype html><html><head><style>
body { font-family: sans-serif; margin: 0; background: #f4f6fa; }
nav { display: flex; gap: 24px; align-items: center; padding: 14px 28px; background: #1f3a68; color: white; }
nav b { font-size: 20px; margin-right: auto; } nav a { color: #dbe6ff; text-decoration: none; }
main { width: 360px; margin: 36px auto; background: white; padding: 24px 28px; border-radius: 10px;
       box-shadow: 0 2px 8px #0002; }
h1 { font-size: 22px; margin: 0 0 16px; } label { display: block; font-size: 14px; margin: 12px 0 4px; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: 8px; font-size: 15px;
       border: 1px solid #aab; border-radius: 6px; }
.row { display: flex; align-items: center; justify-content: space-between; margin: 14px 0; font-size: 14px; }
button { width: 100%; padding: 10px; font-size: 16px; color: white; background: #2f6fde; border: 0; border-radius: 6px; }
</style></head><body>
<nav><b>Acme Cloud</b><a href="#">Products</a><a href="#">Pricing</a><a href="#">Docs</a><a href="#">Help</a></nav>
<main><h1>Sign in to your account</h1>
<label>Email</label><input type="text" placeholder="you@example.com">
<label>Password</label><input type="password" value="secret">
<div class="row"><span><input type="checkbox" checked> Remember me</span><a href="#">Forgot password?</a></div>
<button>Sign in</button></main></body></html>"""


def font(size: int) -> ImageFont.ImageFont:
    """Return Pillow's built-in scalable font at `size` pixels."""
    return ImageFont.load_default(size=size)


def make_shapes(path: Path) -> None:
    """Draw a red circle, a blue square, a green triangle and two yellow stars on white."""
    image = Image.new("RGB", (480, 320), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 160, 160), fill=(220, 40, 40))
    draw.rectangle((200, 60, 300, 160), fill=(40, 80, 220))
    draw.polygon([(400, 40), (460, 160), (340, 160)], fill=(40, 170, 70))
    for cx, cy in ((120, 250), (330, 250)):
        star = [(cx + r * np.cos(a), cy + r * np.sin(a))
                for k in range(10) for r, a in [((36 if k % 2 == 0 else 15), -np.pi / 2 + k * np.pi / 5)]]
        draw.polygon(star, fill=(240, 200, 20))
    image.save(path, optimize=True)


def make_document(path: Path) -> None:
    """Render a short receipt in black text on off-white paper."""
    image = Image.new("RGB", (420, 360), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    draw.text((30, 20), "CORNER CAFE", font=font(30), fill="black")
    draw.text((30, 60), "12 Market Street, Springfield", font=font(16), fill=(60, 60, 60))
    lines = [("Cappuccino", "3.20"), ("Blueberry muffin", "2.50"), ("Orange juice", "2.80"), ("Bagel with cream cheese", "3.90")]
    y = 110
    for name, price in lines:
        draw.text((30, y), name, font=font(20), fill="black")
        draw.text((330, y), price, font=font(20), fill="black")
        y += 34
    draw.line((30, y + 4, 390, y + 4), fill="black", width=2)
    draw.text((30, y + 16), "TOTAL", font=font(24), fill="black")
    draw.text((320, y + 16), "12.40", font=font(24), fill="black")
    draw.text((30, y + 64), "Thank you! Card payment 14:32", font=font(16), fill=(60, 60, 60))
    image.save(path, optimize=True)


def make_screenshot(path: Path, chromium: str) -> None:
    """Render `PAGE` with headless Chromium (Python playwright) at 800x480 and save a PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.set_content(PAGE)
        page.screenshot(path=str(path))
        browser.close()
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)  # small palette PNG


def make_clip(path: Path) -> None:
    """Write a 3 s, 10 fps, 320x240 VP8 WebM: a red ball moves left to right; a blue
    square appears at 1.5 s."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10, (320, 240))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write VP8 WebM here")
    for index in range(30):
        frame = np.full((240, 320, 3), 245, dtype=np.uint8)
        cv2.circle(frame, (20 + index * 9, 120), 18, (40, 40, 220), -1)  # BGR red
        if index >= 15:
            cv2.rectangle(frame, (220, 30), (290, 100), (220, 80, 40), -1)  # BGR blue
        writer.write(frame)
    writer.release()


def main() -> None:
    """Write every example into vistool/app/examples (shipped with the package)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium used to render screenshot.png")
    args = parser.parse_args()
    make_shapes(HERE / "shapes.png")
    make_document(HERE / "document.png")
    make_screenshot(HERE / "screenshot.png", args.chromium)
    make_clip(HERE / "clip.webm")
    for file in sorted(HERE.iterdir()):
        print(f"{file.name:20s} {file.stat().st_size:8d} bytes")


if __name__ == "__main__":
    main()
