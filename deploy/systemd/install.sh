#!/bin/sh
# Installs zpipe's systemd units on this host: the units, the settings
# files in /etc/zpipe (an existing one is kept: yours), and the zpipe
# user (sysusers.d). The binaries come first, from a build:
#   cmake --install build            # /usr/local/bin, /usr/local/lib/zpipe
#   sh deploy/systemd/install.sh
#   systemctl enable --now zpipe-sink zpipe-ventilator zpipe-worker@9601
# DESTDIR=DIR installs below DIR instead (the tests use it) and leaves the
# running system alone. docs/deploy.md, "Plain hosts: systemd".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${DESTDIR:-}

install -d -m 0755 "$root/etc/systemd/system" "$root/etc/sysusers.d" \
    "$root/etc/zpipe"
for unit in zpipe-sink.service zpipe-ventilator.service zpipe-worker@.service; do
    install -m 0644 "$here/$unit" "$root/etc/systemd/system/$unit"
done
install -m 0644 "$here/zpipe.sysusers" "$root/etc/sysusers.d/zpipe.conf"
for env in zpipe.env sink.env ventilator.env worker.env; do
    if [ -e "$root/etc/zpipe/$env" ]; then
        echo "install.sh: keeping $root/etc/zpipe/$env (new one: $here/$env)" >&2
    else
        install -m 0644 "$here/$env" "$root/etc/zpipe/$env"
    fi
done

if [ -n "$root" ]; then
    systemd-sysusers --root="$root" "$root/etc/sysusers.d/zpipe.conf"
else
    systemd-sysusers /etc/sysusers.d/zpipe.conf
    # Only where systemd is running (not in a container build, say).
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
fi
