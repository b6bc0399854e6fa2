# A local stand-in for rabbitmq:3-management, from Debian's packages
# (scripts/docker-base): the broker with its management plugin, the
# default user from RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS (guest by
# default, allowed from other hosts as in the official image), and
# rabbitmq-diagnostics for health checks.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && rabbitmq-plugins --offline enable rabbitmq_management \
 && printf 'loopback_users = none\nlisteners.tcp.default = 5672\nmanagement.tcp.port = 15672\n' > /etc/rabbitmq/rabbitmq.conf \
 && mkdir -p /var/lib/rabbitmq /var/log/rabbitmq \
 && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER rabbitmq
ENV HOME=/var/lib/rabbitmq RABBITMQ_LOGS=-
EXPOSE 5672 15672
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
