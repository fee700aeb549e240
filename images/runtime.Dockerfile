# The image compiled kfnb steps run in by default (`kfnb/runtime:<version>`): Python with kfnb,
# papermill, ipykernel and the data extra, so a step's pod downloads and installs nothing.
#
#   python -m build --wheel                       # from a checkout (needs Node.js for the UI)
#   docker build -f images/runtime.Dockerfile -t kfnb/runtime:0.1.0 .
#   docker tag kfnb/runtime:0.1.0 REGISTRY/kfnb/runtime:0.1.0 && docker push ...
#
# Then compile with `--image REGISTRY/kfnb/runtime:0.1.0` (or `kfp: {image: ...}` in the kfnb
# config file). Steps that need more (torch with CUDA, ...) name their own image with an
# `image:REF` tag; it must hold kfnb too (`pip install kfnb` in its Dockerfile).
FROM python:3.11-slim

COPY dist/kfnb-*.whl /tmp/
RUN pip install --no-cache-dir "$(ls /tmp/kfnb-*.whl)[data]" \
    && rm /tmp/kfnb-*.whl \
    && python -m ipykernel install --sys-prefix --name python3

RUN useradd --create-home --uid 1000 kfnb
USER kfnb
WORKDIR /home/kfnb
