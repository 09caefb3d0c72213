# Multi-stage image for the Syncline binaries: build on Debian 12 with the same packages as
# scripts/setup, run on a slim Debian 12 with only the runtime libraries, as a non-root user.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/ scripts/
COPY stack/ stack/
RUN SYNCLINE_SETUP_PACKAGES=build scripts/setup
COPY . .
RUN cmake --preset default -DCMAKE_INSTALL_PREFIX=/opt/syncline \
 && cmake --build --preset default \
 && mkdir -p /opt/syncline/bin /opt/syncline/share/syncline \
 && cmake --install build/default \
 && cp -r schemas /opt/syncline/share/syncline/

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl librdkafka1 libpq5 libpqxx-6.4 libcurl4 \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin syncline
COPY --from=build /opt/syncline /opt/syncline
ENV PATH=/opt/syncline/bin:$PATH \
    SYNCLINE_SCHEMA_DIR=/opt/syncline/share/syncline/schemas
USER syncline
