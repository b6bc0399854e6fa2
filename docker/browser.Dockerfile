# Headless Chromium behind chromedriver (WebDriver on port 9515), for
# scrapes with render = "browser" and webdriver_url = "http://browser:9515".
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        chromium chromium-driver fonts-liberation curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --create-home browser
USER browser
EXPOSE 9515
HEALTHCHECK --interval=5s --timeout=5s --retries=30 CMD ["curl", "-fsS", "http://127.0.0.1:9515/status"]
# --allowed-ips= and --allowed-origins=*: answer the other containers,
# which reach it by its service name.
ENTRYPOINT ["chromedriver", "--port=9515", "--allowed-ips=", "--allowed-origins=*"]
