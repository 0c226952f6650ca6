# ClusterDNS image: `clusterdns -conf /etc/coredns/Corefile`, so a CoreDNS Deployment's
# ConfigMap mount works unchanged. Non-root (uid 65532), nothing written at run time: runs
# with a read-only root filesystem. Build: docker build -t clusterdns/clusterdns:0.1.0 .
ARG PYTHON_VERSION=3.11

# ---- build: install the package and its dependencies into a virtualenv ----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG PYTHON_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/clusterdns
COPY pyproject.toml README.md /src/
COPY src/ /src/src/
# Byte-compiled at install time: the read-only root filesystem cannot take .pyc files later.
RUN /opt/clusterdns/bin/pip install --compile /src \
 && /opt/clusterdns/bin/pip uninstall -y pip setuptools
# As CoreDNS's image does with its binary: let the non-root user bind port 53 when the pod
# grants NET_BIND_SERVICE (kubeadm's CoreDNS Deployment does; ours also sets the sysctl
# net.ipv4.ip_unprivileged_port_start=53, which needs no capability at all).
RUN setcap cap_net_bind_service=+ep /usr/local/bin/python${PYTHON_VERSION}

# ---- run ------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
ARG PYTHON_VERSION
COPY --from=build /usr/local/bin/python${PYTHON_VERSION} /usr/local/bin/python${PYTHON_VERSION}
COPY --from=build /opt/clusterdns /opt/clusterdns
ENV PATH=/opt/clusterdns/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /etc/coredns
EXPOSE 53/udp 53/tcp 9153 8080 8181
ENTRYPOINT ["clusterdns"]
CMD ["-conf", "/etc/coredns/Corefile"]
