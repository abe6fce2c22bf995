#!/bin/sh
# Starts the demo Dovecot: writes the users (DEMO_USERS, all with DEMO_PASSWORD), fills
# empty mailboxes with DEMO_MESSAGES generated messages per folder when DEMO_MESSAGES > 0
# (the source; the target starts empty), then runs Dovecot in the foreground.
set -eu

: "${DEMO_PASSWORD:?is not set: the compose file reads it from deploy/demo/demo.env}"
case "$DEMO_PASSWORD" in
  *:* | *'
'*) echo "DEMO_PASSWORD must not contain ':' or a newline" >&2; exit 2 ;;
esac
users="${DEMO_USERS:-alice bob carol}"
messages="${DEMO_MESSAGES:-0}"
conf="${DOVECOT_CONF:-/etc/dovecot/dovecot.conf}"
users_file="${DEMO_USERS_FILE:-/etc/dovecot/users}"
mail_root="${DEMO_MAIL_ROOT:-/srv/mail}"

umask 027
: > "$users_file"
for u in $users; do
  printf '%s:{PLAIN}%s\n' "$u" "$DEMO_PASSWORD" >> "$users_file"
done
chgrp dovecot "$users_file"

# One message file in Maildir folder $1 (relative to the user's Maildir), number $2.
message() {
  folder=$1 n=$2
  name=${folder#.}
  name=${name:-INBOX}
  dir="$maildir/$folder"
  mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
  ts=$((1700000000 + n * 3600))
  file="$dir/cur/$ts.demo$n.mailhaul:2,S"
  {
    printf 'From: Demo Sender <sender%s@demo.example>\n' "$((n % 7))"
    printf 'To: %s@demo.example\n' "$u"
    printf 'Subject: %s message %s\n' "$name" "$n"
    printf 'Date: %s\n' "$(date -u -R -d "@$ts")"
    printf 'Message-ID: <%s.%s.%s@demo.example>\n' "$u" "$name" "$n"
    printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n'
    printf 'Demo message %s in %s for %s.\n' "$n" "$name" "$u"
    i=0
    while [ "$i" -lt $((n % 40)) ]; do
      printf 'Line %s of a body that grows with the message number.\n' "$i"
      i=$((i + 1))
    done
  } > "$file"
  touch -d "@$ts" "$file"
}

if [ "$messages" -gt 0 ]; then
  for u in $users; do
    maildir="$mail_root/$u/Maildir"
    [ -d "$maildir" ] && continue
    n=1
    while [ "$n" -le "$messages" ]; do
      message . "$n"
      message .Sent "$n"
      message .Projects "$n"
      n=$((n + 1))
    done
    echo "demo: $u has $((3 * messages)) messages in INBOX, Sent and Projects"
  done
fi
mkdir -p "$mail_root"
chown -R vmail:vmail "$mail_root"

exec dovecot -F -c "$conf"
