#!/bin/sh
# deb postinst (configure [OLD-VERSION]) and rpm %post (1 install, 2
# upgrade). No unit is enabled or started: the example configuration must be
# edited first, and only one of archiver.service and archiver-once.timer may
# run on a state file (docs/packages.md). On an upgrade a running daemon is
# restarted onto the new binary (SIGTERM drains it first).
set -e
upgrade=
case "$1" in
configure) [ -n "$2" ] && upgrade=1 ;;
[2-9] | [1-9][0-9]*) upgrade=1 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -n "$upgrade" ]; then
		systemctl try-restart archiver.service || true
	fi
fi
