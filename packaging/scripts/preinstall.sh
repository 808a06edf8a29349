#!/bin/sh
# deb preinst (install|upgrade|abort-upgrade) and rpm %pre (1|2): the
# _archiver system user and group, before the files are unpacked, since
# /etc/archiver/config.toml belongs to the group. The units name the user
# (User=_archiver with DynamicUser=yes: systemd uses a static user of that
# name when there is one). Removing the package keeps the user: files it
# owned (the state directory) would otherwise pass to the next user given
# its UID.
set -e
if ! getent group _archiver >/dev/null; then
	groupadd --system _archiver
fi
if ! getent passwd _archiver >/dev/null; then
	useradd --system --gid _archiver --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin --comment "cec-archiver" _archiver
fi
