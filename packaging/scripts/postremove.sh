#!/bin/sh
# deb postrm (remove|purge|upgrade|...) and rpm %postun (0 erase, 1
# upgrade). A purge (deb only) also deletes the state directory systemd made
# for StateDirectory=archiver (with DynamicUser=yes the data is under
# /var/lib/private/archiver, /var/lib/archiver a link to it): the checkpoint
# database. The archive itself, in S3, is untouched. The _archiver user is
# kept (see preinstall.sh).
set -e
case "$1" in
purge)
	rm -rf /var/lib/archiver /var/lib/private/archiver
	;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
