# The Heron image: the `heron` command plus Ray, used by the heron, ray-head and ray-worker services
# of docker-compose.yml. GPU workers need the NVIDIA container toolkit on the host; the PyPI torch
# wheel brings its own CUDA libraries.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HERON_HOME=/data/heron \
    HERON_CONFIG_DIR=/app/configs \
    HF_HOME=/data/huggingface

WORKDIR /app

# Dependencies first, read from pyproject alone, so editing Heron's code does not reinstall torch.
COPY pyproject.toml README.md* ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY heron ./heron
RUN pip install --no-deps . && rm -rf build heron.egg-info
# Presets are looked up in $HERON_CONFIG_DIR; they are not part of the installed package.
COPY configs ./configs

ENTRYPOINT ["heron"]
CMD ["--help"]
