#!/usr/bin/env bash
# A Debian chroot with another QGIS for the version matrix, cached outside the clone and built from nothing when
# absent.  Needs root, debootstrap and the network (Debian mirror + the host's pip configuration).
#
#   scripts/qgis_chroot.sh build 3.44            # build (or reuse) the chroot
#   scripts/qgis_chroot.sh run 3.44 CMD...       # run CMD in it on a copy of the clone at /src
#   scripts/qgis_chroot.sh path 3.44             # where it lives
#
# 3.40 LTR: bookworm + bookworm-backports (Python 3.11, numpy 1.24).
# 3.44 LTR: trixie + trixie-backports (Python 3.13, numpy 2.2).
# Cache: $TERRAFORM_CHROOT_CACHE (default /var/cache/terraform-dem); a chroot is usable once it holds
# .terraform-ready, so an interrupted build is redone, never reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

action=${1:?usage: qgis_chroot.sh build|run|path VERSION [CMD...]}
version=${2:?usage: qgis_chroot.sh build|run|path VERSION [CMD...]}
shift 2

case "$version" in
  3.40) suite=bookworm ;;
  3.44) suite=trixie ;;
  *) echo "qgis_chroot.sh: no recipe for QGIS $version (known: 3.40, 3.44)" >&2; exit 2 ;;
esac
CACHE=${TERRAFORM_CHROOT_CACHE:-/var/cache/terraform-dem}
ROOT="$CACHE/qgis-$version"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "$action" = path ]; then echo "$ROOT"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "qgis_chroot.sh: needs root (debootstrap, chroot, bind mounts)" >&2; exit 2; fi

mounted=()
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  mounted=()
}
trap unmount_all EXIT

bind() {  # bind SRC DEST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

host_config() {  # what pip and apt need inside: DNS, CA certificates, pip configuration, local wheel indexes
  local root=$1
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  mkdir -p "$root/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
  if [ -d /etc/xdg/pip ]; then mkdir -p "$root/etc/xdg"; cp -r /etc/xdg/pip "$root/etc/xdg/"; fi
  bind /proc "$root/proc"
  bind /sys "$root/sys"
  bind /dev "$root/dev"
  local d
  for d in /opt/pypi /opt/pypi-more /opt/wheels; do [ -d "$d" ] && bind "$d" "$root$d" ro; done
  return 0
}

build() {
  if [ -f "$ROOT/.terraform-ready" ]; then echo "== QGIS $version chroot: reusing $ROOT"; return; fi
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  local work="$ROOT.partial"
  rm -rf "$work"
  mkdir -p "$CACHE"
  echo "== QGIS $version chroot: debootstrap $suite -> $work ($(date -u +%H:%M:%S))"
  debootstrap --variant=minbase "$suite" "$work" "$MIRROR" >"$CACHE/debootstrap-$version.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap-$version.log" >&2; exit 1; }
  cat >"$work/etc/apt/sources.list" <<EOF
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $MIRROR $suite-backports main
EOF
  host_config "$work"
  echo "== QGIS $version chroot: apt-get install -t $suite-backports qgis ($(date -u +%H:%M:%S))"
  chroot "$work" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 bash -c "
    set -e
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends -t $suite-backports qgis python3-qgis qgis-providers >/dev/null
    apt-get install -y -qq --no-install-recommends python3-pip python3-venv make ca-certificates xvfb >/dev/null
    apt-get clean
    qgis_process.bin --version 2>/dev/null | head -3 || true
  "
  unmount_all
  touch "$work/.terraform-ready"
  rm -rf "$ROOT"
  mv "$work" "$ROOT"
  echo "== QGIS $version chroot: ready at $ROOT ($(date -u +%H:%M:%S), $(du -sh "$ROOT" | cut -f1))"
}

run() {
  [ -f "$ROOT/.terraform-ready" ] || build
  host_config "$ROOT"
  # A copy of the clone (tracked and untracked, not ignored files), not a bind mount: the chroot's build/ and
  # caches (another Python's wheels) must not mix with the host's.
  rm -rf "$ROOT/src"
  mkdir -p "$ROOT/src"
  git -C "$SRC" ls-files -z --cached --others --exclude-standard \
    | tar -C "$SRC" --null --ignore-failed-read -T - -cf - | tar -xf - -C "$ROOT/src"
  if [ -d "$SRC/../shared" ]; then bind "$SRC/../shared" "$ROOT/shared" ro; fi
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LC_ALL=C.UTF-8 \
    QT_QPA_PLATFORM=offscreen TERRAFORM_QGIS_MATRIX="$version" bash -c 'cd /src && "$@"' bash "$@"
}

case "$action" in
  build) build ;;
  run) run "$@" ;;
  *) echo "qgis_chroot.sh: unknown action $action (build|run|path)" >&2; exit 2 ;;
esac
