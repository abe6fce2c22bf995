# Demo IMAP server (Dovecot) for docker-compose.yml; built with deploy/demo as context.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends dovecot-imapd \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 5000 vmail \
 && useradd --system --uid 5000 --gid 5000 --home-dir /srv/mail --no-create-home \
      --shell /usr/sbin/nologin vmail
COPY dovecot.conf /etc/dovecot/dovecot.conf
COPY dovecot-entrypoint.sh /usr/local/bin/dovecot-entrypoint.sh
EXPOSE 143
ENTRYPOINT ["/usr/local/bin/dovecot-entrypoint.sh"]
