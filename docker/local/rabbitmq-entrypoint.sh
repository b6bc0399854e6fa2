#!/bin/sh
# The default user from the official image's variables, then the broker.
set -eu
user="${RABBITMQ_DEFAULT_USER:-guest}"
pass="${RABBITMQ_DEFAULT_PASS:-guest}"
conf=/etc/rabbitmq/rabbitmq.conf
grep -v '^default_user\|^default_pass' "$conf" > "$conf.new" || true
printf 'default_user = %s\ndefault_pass = %s\n' "$user" "$pass" >> "$conf.new"
cat "$conf.new" > "$conf" && rm -f "$conf.new"
exec "$@"
