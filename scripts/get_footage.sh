#!/usr/bin/env bash
# Real footage for the video autoencoder and the motion model: OpenCV's sample videos (tree.avi, vtest.avi,
# Megamind.avi) from Debian's opencv-doc package, copied into data/footage/, and its sample photos ($PHOTOS)
# into data/photos/. Nothing else is downloaded; the package is fetched
# with apt (`apt-get download`, no root needed) and unpacked with dpkg -x into a temporary folder.
# OPENCV_DOC_DEB=path/to/opencv-doc_*.deb uses a package file already on disk instead of downloading it.
# Usage: bash scripts/get_footage.sh
source "$(dirname "$0")/common.sh"
OUT=data/footage
NAMES="tree vtest Megamind"
PHOTOS="building.jpg home.jpg messi5.jpg butterfly.jpg squirrel_cls.jpg orange.jpg apple.jpg fruits.jpg baboon.jpg
        aero1.jpg aero3.jpg leuvenA.jpg stuff.jpg graf1.png starry_night.jpg left01.jpg box_in_scene.png"

missing=0
for n in $NAMES; do [ -s "$OUT/$n.avi" ] || missing=1; done
for p in $PHOTOS; do [ -s "data/photos/$p" ] || missing=1; done
if [ $missing = 0 ]; then
    echo "footage already in $OUT"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -n "${OPENCV_DOC_DEB:-}" ]; then
    cp "$OPENCV_DOC_DEB" "$TMP/"
else
    (cd "$TMP" && apt-get download opencv-doc)
fi
dpkg -x "$TMP"/opencv-doc_*.deb "$TMP/x"
mkdir -p "$OUT"
for n in $NAMES; do
    cp "$TMP/x/usr/share/doc/opencv-doc/examples/data/$n.avi" "$OUT/$n.avi"
done
mkdir -p data/photos
for p in $PHOTOS; do
    [ -f "$TMP/x/usr/share/doc/opencv-doc/examples/data/$p" ] && cp "$TMP/x/usr/share/doc/opencv-doc/examples/data/$p" data/photos/
done
ls -l "$OUT" data/photos
