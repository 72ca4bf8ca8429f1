# ec2gw container image: `docker build -t ec2gw .` then
#   docker run -p 8773:8773 -e EC2GW_OPENNEBULA_ENDPOINT=http://oned:2633/RPC2 \
#     -e EC2GW_OPENNEBULA_SERVER_USER=ec2gw -e EC2GW_OPENNEBULA_SERVER_SECRET=... ec2gw
# Secrets can come from files instead (Docker or Kubernetes secrets): each secret option's
# EC2GW_<SECTION>_<OPTION>_FILE names a file holding it, e.g.
#     -v /etc/ec2gw/server_secret:/run/secrets/server_secret:ro \
#     -e EC2GW_OPENNEBULA_SERVER_SECRET_FILE=/run/secrets/server_secret
# and EC2GW_AUTH_KEY_ENCRYPTION_KEY_FILE (the plain variable, if also set, wins).
# Make the server account and instance types first with `ec2gw setup` (as oneadmin).
# Without EC2GW_OPENNEBULA_ENDPOINT it serves the embedded OpenNebula (demo), its state
# in the /var/lib/ec2gw volume. Mount your own config at /etc/ec2gw/ec2gw.toml.
# -e EC2GW_GATEWAY_WORKERS=N runs N gateway processes (one per core; tested with the
# image's ENV in tests/e2e/test_workers_latency.py).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ec2gw ./ec2gw
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/ec2gw --create-home ec2gw \
    && mkdir -p /etc/ec2gw
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/ec2gw.toml /etc/ec2gw/ec2gw.toml
USER ec2gw
ENV EC2GW_CONFIG=/etc/ec2gw/ec2gw.toml \
    EC2GW_GATEWAY_HOST=0.0.0.0 \
    EC2GW_EMBEDDED_DATA_DIR=/var/lib/ec2gw
VOLUME /var/lib/ec2gw
EXPOSE 8773
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8773/healthz', timeout=4)"]
ENTRYPOINT ["ec2gw"]
CMD ["serve"]
