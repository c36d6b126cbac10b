# Sourced by Kitware's build.sh inside the image's venv, before requirements.txt: install the viewer.
uv pip install /deploy/webviewer
