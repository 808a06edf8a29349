#!/bin/sh
# deb prerm (remove|upgrade|...) and rpm %preun (0 erase, 1 upgrade): on a
# removal, stop the units and remove their enablement links, so that no
# dangling link in /etc/systemd/system is left. An upgrade keeps both.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl --no-reload disable --now archiver.service archiver-once.timer archiver-once.service || true
	else
		systemctl --root=/ --no-reload disable archiver.service archiver-once.timer archiver-once.service >/dev/null 2>&1 || true
	fi
	;;
esac
