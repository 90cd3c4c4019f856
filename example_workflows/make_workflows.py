"""Write every example workflow in both formats from one description: ``<title>.json`` (ComfyUI's UI
format, for the template browser, which shows the file name as the title and ``<title>.jpg`` as the
thumbnail) and ``api/<title>.json`` (API format, for POST /prompt). The UI graph opens with a note that
describes it.

    python example_workflows/make_workflows.py [--thumbnails COMFYUI_OUTPUT_DIR]

``--thumbnails`` makes each ``<title>.jpg`` from the workflow's own output in a ComfyUI output folder
(after running it, e.g. with bench/comfyui_smoke.py): a frame near the end of its video, or the middle
image of its last batch.

A graph is a list of nodes ``(id, class_type, inputs, title)``; an input value ``("3", 1)`` links
output slot 1 of node 3. Our nodes' widgets, sockets and outputs are read from the node classes, the
core nodes' from :data:`CORE` (what ComfyUI 0.33 declares), so the two formats cannot drift apart
(tests/nodes/test_example_workflows.py checks that they agree).
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import nodes  # noqa: E402

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
# core node -> (link inputs [(name, type, optional)], widget names (UI order), outputs [(name, type)])
CORE = {
    "LoadVideo": ([], ["file", "upload"], [("VIDEO", "VIDEO")]),
    "GetVideoComponents": ([("video", "VIDEO", False)], [], [("images", "IMAGE"), ("audio", "AUDIO"),
                                                            ("fps", "FLOAT"), ("bit_depth", "INT"),
                                                            ("color_space", "COMBO")]),
    "CreateVideo": ([("images", "IMAGE", False), ("audio", "AUDIO", True)], ["fps", "bit_depth"], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO", False)], ["filename_prefix", "format", "format.codec"], [("video", "VIDEO")]),
    "ImageFromBatch": ([("image", "IMAGE", False)], ["batch_index", "length"], [("IMAGE", "IMAGE")]),
    "ImageStitch": ([("image1", "IMAGE", False), ("image2", "IMAGE", True)],
                    ["direction", "match_image_size", "spacing_width", "spacing_color"], [("IMAGE", "IMAGE")]),
    "ImageScaleBy": ([("image", "IMAGE", False)], ["upscale_method", "scale_by"], [("IMAGE", "IMAGE")]),
    "SaveImage": ([("images", "IMAGE", False)], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE", False)], [], []),
    "MaskToImage": ([("mask", "MASK", False)], [], [("IMAGE", "IMAGE")]),
    "UpscaleModelLoader": ([], ["model_name"], [("UPSCALE_MODEL", "UPSCALE_MODEL")]),
    "ImageUpscaleWithModel": ([("upscale_model", "UPSCALE_MODEL", False), ("image", "IMAGE", False)], [],
                              [("IMAGE", "IMAGE")]),
    "PreviewAny": ([("source", "*", False)], [], [("STRING", "STRING")]),
}
# values of core widgets the API format leaves out (UI-only) or that a link feeds (their defaults)
UI_DEFAULTS = {"upload": "image", "bit_depth": 8, "fps": 30.0}


OURS = {cls.__name__: cls for cls in nodes.NODES}


def ports(cls):
    """Our node's (link inputs [(name, type, optional)], widgets [(name, type, control?, default)], outputs
    [(name, type)]) from its V3 schema, in the order the UI serialises them."""
    schema = cls.define_schema()
    links, widgets = [], []
    for port in schema.inputs:
        if port.io_type in WIDGET_TYPES:
            widgets.append((port.id, port.io_type, bool(getattr(port, "control_after_generate", None)),
                            getattr(port, "default", None)))
        else:
            links.append((port.id, port.io_type, bool(port.optional)))
    return links, widgets, [(o.display_name or o.id, o.io_type) for o in schema.outputs]


def choice(node_class: str, input_id: str, ident: str) -> str:
    """The dropdown entry of ``ident`` (our loaders show an id followed by what it needs)."""
    options = next(p for p in OURS[node_class].define_schema().inputs if p.id == input_id).options
    return next(o for o in options if o.split(" · ")[0] == ident)


def _spec(kind: str):
    if kind in OURS:
        return ports(OURS[kind])
    links, names, outputs = CORE[kind]
    return links, [(n, None, False, UI_DEFAULTS.get(n)) for n in names], outputs


def _is_link(value) -> bool:
    return isinstance(value, tuple)


def build(name: str, graph: list, description: str = "") -> tuple[dict, dict]:
    """(API workflow, UI workflow) for ``graph`` (module docstring)."""
    api = {}
    for node_id, kind, inputs, title in graph:
        api[node_id] = {"class_type": kind,
                        "inputs": {k: [v[0], v[1]] if _is_link(v) else v for k, v in inputs.items()},
                        "_meta": {"title": title or (OURS[kind].define_schema().display_name if kind in OURS else kind)}}
    links, out_links = [], {}
    for node_id, kind, inputs, _ in graph:
        for key, value in inputs.items():
            if _is_link(value):
                link_id = len(links) + 1
                src_kind = next(k for i, k, _, _ in graph if i == value[0])
                typ = _spec(src_kind)[2][value[1]][1]
                links.append([link_id, int(value[0]), value[1], int(node_id), key, typ])
                out_links.setdefault((value[0], value[1]), []).append(link_id)
    order = _topological(graph)
    ui_nodes = []
    for column, (node_id, kind, inputs, title) in enumerate(graph):
        link_inputs, widgets, outputs = _spec(kind)
        sockets = []
        for slot_name, typ, optional in link_inputs:
            link = next((lk[0] for lk in links if lk[3] == int(node_id) and lk[4] == slot_name), None)
            sockets.append({"name": slot_name, "type": typ, "link": link, **({"shape": 7} if optional else {})})
        for wname, typ, _, _ in widgets:  # a widget fed by a link becomes an input socket
            if _is_link(inputs.get(wname)):
                link = next(lk[0] for lk in links if lk[3] == int(node_id) and lk[4] == wname)
                sockets.append({"name": wname, "type": typ or "FLOAT", "widget": {"name": wname}, "link": link})
        values = []
        for wname, _, control, default in widgets:  # a linked widget keeps its default in the UI
            value = inputs.get(wname, default)
            values.append(default if _is_link(value) else value)
            if control:
                values.append("fixed")
        node = {"id": int(node_id), "type": kind, "pos": [40 + 380 * (order[node_id] // 2), 40 + 420 * (order[node_id] % 2)],
                "size": [340, 260], "flags": {}, "order": order[node_id], "mode": 0, "inputs": sockets,
                "outputs": [{"name": oname, "type": otyp, "links": out_links.get((node_id, slot))}
                            for slot, (oname, otyp) in enumerate(outputs)],
                "properties": {"Node name for S&R": kind,
                               "cnr_id": "comfyui-pervfi" if kind in OURS else "comfy-core"},
                "widgets_values": values}
        if title:
            node["title"] = title
        ui_nodes.append(node)
    if description:  # a note at the top left, UI only (the frontend's Markdown Note; not part of the API graph)
        ui_nodes.append({"id": max(int(n[0]) for n in graph) + 1, "type": "MarkdownNote", "pos": [40, -260],
                         "size": [720, 220], "flags": {}, "order": len(graph), "mode": 0, "inputs": [], "outputs": [],
                         "properties": {}, "widgets_values": [f"## {name}\n\n{description}"], "title": "About"})
    # UI links name the destination slot by index
    for lk in links:
        dst = next(n for n in ui_nodes if n["id"] == lk[3])
        lk[4] = next(i for i, s in enumerate(dst["inputs"]) if s["name"] == lk[4])
    shipped = HERE / f"{name}.json"  # a workflow keeps its id across regenerations
    ident = json.loads(shipped.read_text())["id"] if shipped.is_file() else str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    ui = {"id": ident, "revision": 0,
          "last_node_id": max(n["id"] for n in ui_nodes), "last_link_id": len(links), "nodes": ui_nodes,
          "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [30, 90]}},
          "version": 0.4}
    return api, ui


def _topological(graph) -> dict:
    done, order = set(), {}
    while len(order) < len(graph):
        for node_id, _, inputs, _ in graph:
            if node_id not in done and all(v[0] in done for v in inputs.values() if _is_link(v)):
                order[node_id] = len(order)
                done.add(node_id)
    return order


def loaders(checkpoint: str = "training-free") -> list:  # no download, except the τ comparison (the default)
    return [("3", "PerVFILoadModel", {"checkpoint": choice("PerVFILoadModel", "checkpoint", checkpoint),
                                      "dtype": "auto"}, None),
            ("4", "PerVFILoadFlowModel", {"estimator": choice("PerVFILoadFlowModel", "estimator", "auto"),
                                          "checkpoint": choice("PerVFILoadFlowModel", "checkpoint", "default")}, None)]


INTERPOLATE = {"multiplier": 2, "tau": 0.3, "seed": 0, "source_fps": ("2", 2), "target_fps": 0.0, "scene_threshold": 0.2,
               "loop": False, "chunk_mode": "off", "chunk_index": -1, "noise": "shared"}
SAVE = {"format": "auto", "format.codec": "auto"}
CLIP = "pervfi_bunny_192x108.mp4"
CLIP_AUDIO = "pervfi_bunny_audio_192x108.mp4"
UPSCALE_MODEL = "RealESRGAN_x2plus.pth"  # any ESRGAN-family model in models/upscale_models

BASIC = "PerVFI - Double the frame rate of a clip"
VIDEO = "PerVFI - Interpolate a video file (streamed, audio kept)"
LOOP = "PerVFI - Seamless loop"
TAU = "PerVFI - Compare tau (Motion, Asymmetric Blend, Decode)"
UPSCALE = "PerVFI - Interpolate then upscale with a model"
DESCRIPTIONS = {
    BASIC: "Load Video -> Get Video Components -> **PerVFI Interpolate Frames** (x2) -> Create Video -> Save Video. "
           "The clip's fps goes in as `source_fps` and the node's `fps` output feeds Create Video, so the result "
           "plays at twice the rate. The training-free engine and auto motion: nothing to download (pick 'default', pervfi-rife, for the best measured quality: its RIFE trunk is downloaded once).",
    VIDEO: "Load Video -> **PerVFI Interpolate Video** (x2) -> Save Video. A video loaded from a file is streamed "
           "pair by pair into a new file, so memory does not grow with its length; its audio is kept.",
    LOOP: "**PerVFI Interpolate Frames** in loop mode (x4): the last frame is also interpolated towards the first, "
          "so the saved clip repeats without a jump.",
    TAU: "The three stages as separate nodes: **PerVFI Motion (optical flow) -> PerVFI Asymmetric Blend (ASB) -> "
         "PerVFI Decode (τ)**, decoded at τ = 0, 0.3 and 0.6 and stitched side by side. Change τ or the seed and only "
         "the decoders re-run. Uses the default engine, pervfi-rife (its RIFE trunk is downloaded once, 25 MB): it "
         "finds its own motion (the Motion node's flow feeds the preview), and τ acts where the two warped frames "
         "disagree — moving edges, occlusions. Pick pervfi-own-tau for a run with no download.",
    UPSCALE: "**PerVFI Interpolate Frames** (x2) chained with core's Load Upscale Model -> Upscale Image (using "
             "Model) -> Create Video -> Save Video. Put an ESRGAN-family x2 model (e.g. RealESRGAN_x2plus.pth) into "
             "models/upscale_models and pick it in Load Upscale Model.",
}

WORKFLOWS = {
    BASIC: [
        ("1", "LoadVideo", {"file": CLIP}, None),
        ("2", "GetVideoComponents", {"video": ("1", 0)}, None),
        *loaders(),
        ("5", "PerVFIInterpolate", {"frames": ("2", 0), "model": ("3", 0), "flow_model": ("4", 0), **INTERPOLATE}, None),
        ("6", "CreateVideo", {"images": ("5", 0), "fps": ("5", 1)}, None),
        ("7", "SaveVideo", {"video": ("6", 0), "filename_prefix": "pervfi/basic", **SAVE}, None),
        ("8", "PreviewAny", {"source": ("5", 2)}, "PerVFI report"),
    ],
    UPSCALE: [
        ("1", "LoadVideo", {"file": CLIP}, None),
        ("2", "GetVideoComponents", {"video": ("1", 0)}, None),
        *loaders(),
        ("5", "PerVFIInterpolate", {"frames": ("2", 0), "model": ("3", 0), "flow_model": ("4", 0), **INTERPOLATE}, None),
        ("9", "UpscaleModelLoader", {"model_name": UPSCALE_MODEL}, None),
        ("6", "ImageUpscaleWithModel", {"upscale_model": ("9", 0), "image": ("5", 0)}, None),
        ("7", "CreateVideo", {"images": ("6", 0), "fps": ("5", 1)}, None),
        ("8", "SaveVideo", {"video": ("7", 0), "filename_prefix": "pervfi/upscaled", **SAVE}, None),
    ],
    TAU: [
        ("1", "LoadVideo", {"file": CLIP}, None),
        ("2", "GetVideoComponents", {"video": ("1", 0)}, None),
        *loaders("default"),
        ("5", "ImageFromBatch", {"image": ("2", 0), "batch_index": 0, "length": 2}, "First two frames"),
        ("6", "PerVFIFlowEstimation", {"frames": ("5", 0), "flow_model": ("4", 0)}, None),
        ("7", "PerVFIASBBlend", {"frames": ("5", 0), "flow": ("6", 0), "model": ("3", 0), "multiplier": 2,
                                 "timesteps": "", "source_fps": ("2", 2), "target_fps": 0.0, "scene_threshold": 0.2}, None),
        *[(str(8 + k), "PerVFIFlowDecode", {"blend": ("7", 0), "model": ("3", 0), "tau": tau, "seed": 0,
                                           "compare_taus": "", "noise": "shared"}, f"PerVFI Decode (τ = {tau:g})")
          for k, tau in enumerate((0.0, 0.3, 0.6))],
        ("11", "ImageStitch", {"image1": ("8", 0), "image2": ("9", 0), "direction": "right", "match_image_size": True,
                               "spacing_width": 4, "spacing_color": "white"}, None),
        ("12", "ImageStitch", {"image1": ("11", 0), "image2": ("10", 0), "direction": "right", "match_image_size": True,
                               "spacing_width": 4, "spacing_color": "white"}, None),
        ("13", "SaveImage", {"images": ("12", 0), "filename_prefix": "pervfi/tau_comparison"}, None),
        ("14", "PerVFIFlowToImage", {"flow": ("6", 0), "direction": "both", "max_flow": 0.0}, None),
        ("15", "PreviewImage", {"images": ("14", 0)}, None),
    ],
    VIDEO: [
        ("1", "LoadVideo", {"file": CLIP_AUDIO}, None),
        *loaders(),
        ("5", "PerVFIInterpolateVideo", {"video": ("1", 0), "model": ("3", 0), "flow_model": ("4", 0), "multiplier": 2,
                                         "tau": 0.3, "seed": 0, "target_fps": 0.0, "scene_threshold": 0.2,
                                         "loop": False, "noise": "shared"}, None),
        ("6", "SaveVideo", {"video": ("5", 0), "filename_prefix": "pervfi/video", **SAVE}, None),
        ("7", "PreviewAny", {"source": ("5", 1)}, "PerVFI report"),
    ],
    LOOP: [
        ("1", "LoadVideo", {"file": CLIP}, None),
        ("2", "GetVideoComponents", {"video": ("1", 0)}, None),
        *loaders(),
        ("5", "PerVFIInterpolate", {"frames": ("2", 0), "model": ("3", 0), "flow_model": ("4", 0),
                                    **{**INTERPOLATE, "multiplier": 4, "loop": True}}, "PerVFI Interpolate (loop)"),
        ("6", "CreateVideo", {"images": ("5", 0), "fps": ("5", 1)}, None),
        ("7", "SaveVideo", {"video": ("6", 0), "filename_prefix": "pervfi/loop", **SAVE}, None),
        ("8", "PreviewAny", {"source": ("5", 2)}, "PerVFI report"),
    ],
}


def thumbnail(api: dict, output_dir: Path, dest: Path) -> bool:
    """``dest`` (JPEG, 384 px wide) from the newest output of the workflow's Save Video / Save Image node."""
    import subprocess

    from pervfi_core.video import ffmpeg_exe

    saver = next((n for n in api.values() if n["class_type"] in ("SaveVideo", "SaveImage")), None)
    if saver is None:
        return False
    prefix = Path(saver["inputs"]["filename_prefix"])
    found = sorted((output_dir / prefix.parent).glob(f"{prefix.name}*"), key=lambda p: p.stat().st_mtime)
    if not found:
        return False
    last_run = [f for f in found if f.stat().st_mtime >= found[-1].stat().st_mtime - 2]  # a batch of images
    src = last_run[len(last_run) // 2]  # its middle one: a new frame
    seek = ["-sseof", "-0.5"] if src.suffix in (".mp4", ".webm", ".mov") else []
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *seek, "-i", str(src), "-frames:v", "1", "-vf",
                    "scale=384:-2", str(dest)], check=True)
    return True


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thumbnails", type=Path, help="a ComfyUI output folder holding these workflows' outputs")
    args = p.parse_args()
    for name, graph in WORKFLOWS.items():
        api, ui = build(name, graph, DESCRIPTIONS[name])
        (HERE / "api" / f"{name}.json").write_text(json.dumps(api, indent=2, ensure_ascii=False) + "\n")
        (HERE / f"{name}.json").write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {name}.json and api/{name}.json")
        if args.thumbnails and thumbnail(api, args.thumbnails, HERE / f"{name}.jpg"):
            print(f"wrote {name}.jpg")


if __name__ == "__main__":
    main()
