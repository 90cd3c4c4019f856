"""Shared helpers of the test suite (a package on the tests' path: tests/conftest.py sits beside it).

``testkit.clips``: fake engines and estimators, tiny clips made with ffmpeg; ``testkit.nodes``: call a
node the way ComfyUI does; ``testkit.frames``: compare PNG-folder outputs frame for frame.
"""
