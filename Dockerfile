# One image for every shopstream process; docker-compose.yml picks the subcommand
# (collector, worker, generate, replay) with `command:`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# README.md* matches nothing until a README exists; pyproject.toml keeps the COPY valid either way.
COPY pyproject.toml README.md* ./
COPY cli ./cli
COPY config ./config
COPY contracts ./contracts
COPY client ./client
COPY models ./models
COPY streams ./streams
COPY producers ./producers
COPY bench ./bench
RUN pip install . && rm -rf /src/build

# Unprivileged user; its home holds the worker's data dir so named volumes inherit the ownership.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/shopstream shopstream
USER shopstream
WORKDIR /var/lib/shopstream
RUN mkdir -p /var/lib/shopstream/worker
ENV SHOPSTREAM_DATA_DIR=/var/lib/shopstream/worker
# numba's kernels (the item graphs, the MF's SGD pass, the session blend's kNN) compiled once here, not in every new container:
# site-packages is root's, so their cache lives in the image under the worker's home.
ENV NUMBA_CACHE_DIR=/var/lib/shopstream/numba-cache
RUN python -c "from shopstream.models.stack_config import StackConfig; from shopstream.models.warmup import warm_kernels; \
warm_kernels(StackConfig(session_model='session_blend'))"

# 8080: collector (SHOPSTREAM_PORT), 6066: worker web server (SHOPSTREAM_WEB_PORT).
EXPOSE 8080 6066
ENTRYPOINT ["shopstream"]
CMD ["--help"]
