#!/bin/sh
# make-rootfs.sh DIR: a minimal rootfs from Debian's busybox-static
# (apt-get install busybox-static): /bin/busybox plus one symlink per applet.
set -eu
dir=${1:?usage: make-rootfs.sh DIR}
bb=$(command -v busybox || echo /bin/busybox)
file -L "$bb" 2>/dev/null | grep -q "statically linked" || [ -x /bin/busybox ] || {
  echo "busybox-static is not installed" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/sbin" "$dir/etc" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" "$dir/root"
cp /bin/busybox "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$dir/etc/passwd"
echo "nobody:x:65534:65534:nobody:/:/bin/false" >> "$dir/etc/passwd"
echo "root:x:0:" > "$dir/etc/group"
echo "nogroup:x:65534:" >> "$dir/etc/group"
chmod 1777 "$dir/tmp"
