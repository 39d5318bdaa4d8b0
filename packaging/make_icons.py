"""Render the app icon (an SVG) into the formats installers want: PNG sizes, .ico and .icns.

    python packaging/make_icons.py [SVG] [OUT_DIR]

Defaults: ``resources/icons/llm-workbench.svg`` into ``build/icons``. Writes
``llm-workbench-<N>.png`` for N in 16..1024, ``llm-workbench.ico`` (Windows: 16-256, PNG
entries, which Windows Vista and later read) and ``llm-workbench.icns`` (macOS: PNG entries
ic04..ic14). Rendering uses Qt's SVG renderer from the build environment's PySide6, so no
ImageMagick, Pillow or iconutil is needed on any of the three build machines.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# icns element types holding PNG data, by pixel size (the @2x types reuse the larger images).
ICNS_TYPES = (
    (b"ic04", 16),
    (b"ic05", 32),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic10", 1024),
    (b"ic11", 32),
    (b"ic12", 64),
    (b"ic13", 256),
    (b"ic14", 512),
)


def render_pngs(svg: Path, sizes: tuple[int, ...] = SIZES) -> dict[int, bytes]:
    """The SVG drawn at each size, as PNG bytes (transparent background)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {svg} is not an SVG file Qt can draw")
    out: dict[int, bytes] = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        out[size] = bytes(data.data())
    return out


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico whose entries are PNG images."""
    sizes = [s for s in ICO_SIZES if s in pngs]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        blob = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in the directory entry
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset)
        blobs += blob
        offset += len(blob)
    return header + entries + blobs


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns whose elements are PNG images."""
    body = b""
    for kind, size in ICNS_TYPES:
        if size in pngs:
            body += kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main(argv: list[str]) -> int:
    svg = Path(argv[0]) if argv else ROOT / "resources" / "icons" / "llm-workbench.svg"
    out_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "build" / "icons"
    if not svg.is_file():
        print(f"make_icons: the icon {svg} is missing", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = render_pngs(svg)
    for size, data in pngs.items():
        (out_dir / f"llm-workbench-{size}.png").write_bytes(data)
    (out_dir / "llm-workbench.ico").write_bytes(ico_bytes(pngs))
    (out_dir / "llm-workbench.icns").write_bytes(icns_bytes(pngs))
    print(f"make_icons: wrote PNG {min(pngs)}-{max(pngs)} px, .ico and .icns to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
