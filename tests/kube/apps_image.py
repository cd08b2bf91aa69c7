#!/usr/bin/python3
"""apps_image.py OUT NAME: the stand-in for the example app's registry
images (hashicorp/http-echo, curlimages/curl), which cannot be pulled here:
busybox (sh, httpd), curl with its libraries, and /http-echo, a shim that
takes http-echo's -listen=:PORT -text=TEXT and serves TEXT with busybox
httpd. Written with deploy/image/oci_image.py like the wisp image."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "../../deploy/image"))
import oci_image  # noqa: E402

HTTP_ECHO = """#!/bin/sh
# http-echo's flags, served by busybox httpd.
port=5678 text=hello
for a in "$@"; do
  case $a in
    -listen=*) port=${a#-listen=}; port=${port##*:} ;;
    -text=*) text=${a#-text=} ;;
  esac
done
mkdir -p /tmp/www && echo "$text" >/tmp/www/index.html
exec httpd -f -p "$port" -h /tmp/www
"""


def main():
    out, name = sys.argv[1], sys.argv[2]
    layer = oci_image.Layer(0)
    libs = set()
    oci_image.add_elf_with_libs(layer, "/usr/bin/curl", "/usr/bin/curl", 0o755, libs)
    oci_image.add_libs(layer, libs)
    layer.add_file("/usr/bin/busybox", "/bin/busybox", 0o755)
    for applet in ("sh", "httpd", "sleep", "mkdir", "cat"):
        layer.add_link("/usr/bin/" + applet, "busybox")
    for path, target in (("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")):
        layer.add_link(path, target)
    layer.add_bytes("/http-echo", HTTP_ECHO, 0o755)
    layer.add_bytes("/etc/passwd", "root:x:0:0:root:/:/bin/sh\ncurl_user:x:100:101::/:/bin/sh\n")
    layer.add_bytes("/etc/group", "root:x:0:\ncurl_group:x:101:\n")
    layer.add_bytes("/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n")
    layer.add_dir("/tmp", 0, 0, 0o1777)
    oci_image.check_links(layer)
    config = {"Env": ["PATH=/usr/bin:/bin"], "Entrypoint": ["/http-echo"], "WorkingDir": "/"}
    r = oci_image.write_image(out, name, layer, config, {"org.opencontainers.image.title": "wisp test apps"})
    print("%s %s" % (name, r["image-id"]))


if __name__ == "__main__":
    main()
