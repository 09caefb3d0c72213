# Multi-stage image for the Syncline binaries and the chat demo's workload: build on Debian 12 with
# the same packages as scripts/setup, run on a slim Debian 12 with only the runtime libraries, as a
# non-root user. No configuration with secrets is baked in: docker-compose.yml mounts the config and
# passes passwords through the environment.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/ scripts/
COPY stack/ stack/
RUN SYNCLINE_SETUP_PACKAGES=build scripts/setup
COPY . .
# Only the installed programs: the test binaries are not needed in the image.
RUN cmake --preset default -DCMAKE_INSTALL_PREFIX=/opt/syncline \
 && cmake --build --preset default --target \
      syncline-producer syncline-pg-projector syncline-es-projector syncline-ctl syncline-chat-workload \
 && cmake --install build/default \
 && mkdir -p /opt/syncline/share/syncline \
 && cp -r schemas /opt/syncline/share/syncline/ \
 && for program in syncline-producer syncline-pg-projector syncline-es-projector syncline-ctl \
                   syncline-chat-workload; do \
      test -x "/opt/syncline/bin/$program" || { echo "Dockerfile: $program was not installed" >&2; exit 1; }; \
    done \
 && test -f /opt/syncline/share/syncline/chat/schema.sql \
 && test -f /opt/syncline/share/syncline/chat/syncline.yaml

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl librdkafka1 libpq5 libpqxx-6.4 libcurl4 \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin syncline
# bin/: the five programs; share/syncline/: JSON schemas, and chat/ with the demo's schema.sql and
# syncline.yaml (the workload finds schema.sql there by itself).
COPY --from=build /opt/syncline /opt/syncline
ENV PATH=/opt/syncline/bin:$PATH \
    SYNCLINE_SCHEMA_DIR=/opt/syncline/share/syncline/schemas
USER syncline
