"""docs/napari.png and the time to membranes on screen: napari opens an ISBI 2012 section, the plugin's widget
segments it with isbi-small on onnxruntime, and the viewer is saved as a PNG.

Times each step from a fresh Python process (import napari, viewer, sample data, widget, prediction +
segmentation until the layers are on screen) and prints them. Runs headless under a virtual X server:

    xvfb-run -a -s "-screen 0 1600x1000x24" python3 docs/napari_screenshot.py --out docs/napari.png

(Qt's xcb platform on the virtual X server: the offscreen platform has no OpenGL widget under Qt 6, so the canvas
would stay black; xcb needs libxkbcommon-x11-0 and libxcb-cursor0 from apt.)

Needs the napari and export extras (pip install -e ".[napari,export]") and the ISBI 2012 data (unet-zoo data).
"""

from __future__ import annotations

import argparse
import time

START = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/napari.png", help="PNG to write")
    parser.add_argument("--model", default="isbi-small")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--section", type=int, default=3, help="section of the sample stack (0-5 = ISBI 24-29)")
    args = parser.parse_args()
    times: dict[str, float] = {}

    def mark(step: str) -> None:
        times[step] = time.perf_counter() - START

    import napari
    from napari.settings import get_settings
    from PIL import Image as PILImage
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    mark("import napari")
    get_settings().application.gui_notification_level = "none"  # no toasts over the picture
    viewer = napari.Viewer(title="unet_zoo")
    viewer.window._qt_window.resize(1400, 820)
    mark("viewer")
    viewer.open_sample("unet-zoo", "isbi2012")
    viewer.dims.set_point(0, args.section)
    mark("sample data")
    _dock, widget = viewer.window.add_plugin_dock_widget("unet-zoo", "Segment membranes")
    widget.model_box.setCurrentIndex(widget.model_box.findData(args.model))
    widget.backend.setCurrentText(args.backend)
    widget.sections_box.setCurrentText("current section")
    widget.segment.setChecked(True)
    viewer.window._qt_window.resizeDocks([_dock], [460], Qt.Horizontal)
    mark("widget")
    widget.run()
    app = QApplication.instance()
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.01)
    viewer.reset_view()
    app.processEvents()
    mark("membranes and cells on screen")
    print(widget.status.text())

    viewer.layers[f"ISBI 2012 sections 24-29 cells [{args.model}]"].opacity = 0.25
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    print(f"canvas {canvas.shape}, mean {canvas[..., :3].mean():.1f} (0: nothing drawn)")
    shot = viewer.screenshot(canvas_only=False, flash=False)
    PILImage.fromarray(shot).convert("RGB").quantize(colors=128).save(args.out, optimize=True)
    previous = 0.0
    for step, at in times.items():
        print(f"{step:32s} {at - previous:6.1f} s  (total {at:5.1f} s)")
        previous = at
    print(f"wrote {args.out} ({shot.shape[1]} x {shot.shape[0]})")
    viewer.close()


if __name__ == "__main__":
    main()
