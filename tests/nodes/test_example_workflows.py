"""The shipped example workflows: API and UI formats agree, and our nodes in them are valid.

They are also run end to end in a real ComfyUI (POST /prompt); that needs a ComfyUI install and is
recorded in the node pack's report, not repeated here.
"""
from __future__ import annotations

import json

import pytest

import nodes
from testkit.nodes import ROOT, validate_inputs

OURS = {cls.__name__: cls for cls in nodes.NODES}

WORKFLOWS = ROOT / "example_workflows"
NAMES = sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json"))
CORE_NODES = {"LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo", "ImageScaleBy", "ImageStitch",
              "ImageFromBatch", "SaveImage", "PreviewImage", "MaskToImage", "PreviewAny", "UpscaleModelLoader",
              "ImageUpscaleWithModel"}
# loader choices fetched on first use (weights_manifest.json): the official models, and the default (pervfi-rife: its
# RIFE trunk)
DOWNLOADS = {"pervfi-v00", "pervfi-vb", "default", "pervfi-rife"}


def _widget_names(cls) -> list[str]:
    """Our node's widget inputs in the order the UI serialises them (seed adds its control value)."""
    names = []
    for port in cls.define_schema().inputs:
        if port.io_type in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
            names.append(port.id)
            if getattr(port, "control_after_generate", None):
                names.append(f"{port.id}:control")
    return names


def test_the_required_examples_are_shipped_in_both_formats():
    from example_workflows.make_workflows import BASIC, LOOP, TAU, UPSCALE, VIDEO

    assert {BASIC, LOOP, TAU, UPSCALE, VIDEO} <= set(NAMES)
    for name in NAMES:
        assert (WORKFLOWS / f"{name}.json").is_file(), f"{name}: UI format missing"
        assert name.startswith("PerVFI - "), f"{name}: the template browser shows the file name as its title"


@pytest.mark.parametrize("name", NAMES)
def test_templates_describe_themselves_and_have_a_thumbnail_made_from_their_output(name):
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    notes = [n for n in ui["nodes"] if n["type"] == "MarkdownNote"]
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 100
    thumb = WORKFLOWS / f"{name}.jpg"
    assert thumb.is_file() and thumb.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG


@pytest.mark.parametrize("name", NAMES)
def test_the_readme_says_which_workflows_need_a_download(name):
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    needs = sorted({n["inputs"]["checkpoint"] for n in api.values()
                    if n["class_type"] == "PerVFILoadModel" and n["inputs"]["checkpoint"].split(" · ")[0] in DOWNLOADS})
    row = next((line for line in (WORKFLOWS / "README.md").read_text().splitlines() if f"`{name}`" in line), None)
    assert row is not None, f"{name} is not in example_workflows/README.md"
    says = "a download" if needs else "no download"
    assert says in row, f"{name}: its README row should say '{says}' ({needs or 'no manifest checkpoint'})"


def test_the_video_workflow_keeps_audio_and_the_loop_workflow_loops():
    from example_workflows.make_workflows import LOOP, VIDEO

    video = json.loads((WORKFLOWS / "api" / f"{VIDEO}.json").read_text())
    kinds = {n["class_type"]: n for n in video.values()}
    assert {"LoadVideo", "PerVFIInterpolateVideo", "SaveVideo"} <= set(kinds)
    assert kinds["SaveVideo"]["inputs"]["video"][0] == next(k for k, n in video.items()
                                                            if n["class_type"] == "PerVFIInterpolateVideo")
    import subprocess

    from testkit.clips import ffmpeg

    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(WORKFLOWS / "inputs" / kinds["LoadVideo"]["inputs"]["file"])],
                           capture_output=True, text=True).stderr
    assert "Audio:" in probe, "the VIDEO example's input must have an audio track to keep"
    loop = json.loads((WORKFLOWS / "api" / f"{LOOP}.json").read_text())
    assert any(n["class_type"] == "PerVFIInterpolate" and n["inputs"]["loop"] is True for n in loop.values())


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_uses_only_core_nodes_and_ours_with_valid_inputs(name):
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    for node_id, node in api.items():
        kind = node["class_type"]
        assert kind in CORE_NODES or kind in OURS, f"{name}: unexpected node {kind}"
        for value in node["inputs"].values():
            if isinstance(value, list):  # a link [source id, output slot] to an existing node
                assert value[0] in api and isinstance(value[1], int)
        if kind in OURS:
            cls = OURS[kind]
            widgets = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
            links = {k: None for k, v in node["inputs"].items() if isinstance(v, list)}
            validate_inputs(cls, {**widgets, **links})
            for key, (src, slot) in ((k, v) for k, v in node["inputs"].items() if isinstance(v, list)):
                produced = api[src]["class_type"]
                if produced in OURS:  # link types between our nodes match
                    expected = next(p.io_type for p in cls.define_schema().inputs if p.id == key)
                    assert OURS[produced].define_schema().outputs[slot].io_type == expected
        if kind == "LoadVideo":
            assert (WORKFLOWS / "inputs" / node["inputs"]["file"]).is_file(), "input media not shipped"


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_matches_the_api_one(name):
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    assert ui["version"] == 0.4
    by_id = {str(n["id"]): n for n in ui["nodes"] if n["type"] != "MarkdownNote"}  # notes live in the UI only
    assert set(by_id) == set(api)
    links = {link[0]: link for link in ui["links"]}
    for node_id, node in api.items():
        ui_node = by_id[node_id]
        assert ui_node["type"] == node["class_type"]
        linked = {}
        for entry in ui_node["inputs"]:
            if entry["link"] is not None:
                _, src, slot, dst, _, _ = links[entry["link"]]
                assert dst == int(node_id)
                linked[entry["name"]] = [str(src), slot]
        assert linked == {k: v for k, v in node["inputs"].items() if isinstance(v, list)}
        if node["class_type"] in OURS:
            cls = OURS[node["class_type"]]
            names = _widget_names(cls)
            assert len(ui_node["widgets_values"]) == len(names)
            for widget, ui_value in zip(names, ui_node["widgets_values"]):
                if widget.endswith(":control"):
                    assert ui_value == "fixed"
                elif not isinstance(node["inputs"][widget], list):  # a linked widget's UI value is unused
                    assert ui_value == node["inputs"][widget], widget


def test_workflows_saved_with_the_earlier_engine_id_still_validate_and_load_todays_engine():
    """Before the decoder's rename the τ example saved 'pervfi-own-flow · pervfi-v00, shipped with the pack'
    (today: pervfi-own-tau); such a saved value passes validation and loads today's engine."""
    from nodes import comfy
    from nodes.loaders import PerVFILoadModel, checkpoint_id
    from testkit.nodes import run_node

    saved = {"checkpoint": "pervfi-own-flow · pervfi-v00, shipped with the pack", "dtype": "auto"}
    assert checkpoint_id(saved["checkpoint"]) == "pervfi-own-tau"
    model, = run_node(PerVFILoadModel, **saved)  # validated as ComfyUI does, then loaded
    assert comfy.unwrap(model).name == "pervfi-own-tau"
