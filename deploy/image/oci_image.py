#!/usr/bin/python3
"""oci_image.py: writes the wisp image as an OCI archive (an OCI image
layout in a tar), from scratch and byte for byte reproducible.

The one layer holds the wisp binaries and exactly what they and
wisp-iptables.sh need at run time, copied from this (Debian 12) machine:
their shared libraries (found with ldd, BoringSSL's in Debian's android
directory that the binaries' RUNPATH names), iptables with the nft and the
legacy backend and the xtables extension modules its rules load (dlopened,
so ldd does not list them), and the tools the script calls. Every entry has
a fixed owner, mode and mtime (--epoch, SOURCE_DATE_EPOCH) and the entries
are sorted, so the same inputs give the same layer, config and manifest
digests; gzip carries no name and no time.

usage: oci_image.py --out FILE --name REF --version V --revision R --epoch S
                    --proxy BIN --agent BIN --wispctl BIN --iptables-script SH
Prints the manifest digest, the image id (config digest) and the sizes.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

PROXY_UID = 1337  # wisp-proxy, the image's default user (wispctl inject --proxy-uid)
AGENT_UID = 1338  # wisp-agent (deploy/kubernetes/wisp-agent.yaml runAsUser)
PATH_ENV = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
XTABLES = "/usr/lib/x86_64-linux-gnu/xtables"

# The tools wisp-iptables.sh runs (besides iptables; env for its
# `#!/usr/bin/env bash`), cat for `kubectl exec ... cat bundle.pem`, and
# tar, which `kubectl cp` runs in the container (0.5 MB; its libraries are
# sed's). Image path: where `PATH` finds them.
TOOLS = [
    "/usr/bin/env", "/usr/bin/bash", "/usr/bin/cat", "/usr/bin/cut", "/usr/bin/head",
    "/usr/bin/dirname", "/usr/bin/basename", "/usr/bin/grep", "/usr/bin/sed",
    "/usr/bin/mawk", "/usr/bin/getent", "/usr/bin/ip", "/usr/bin/tar",
]
TOOL_LINKS = {"/usr/bin/awk": "mawk"}

# iptables: both multi-call binaries and the names the script calls.
IPTABLES_BINS = ["/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi"]
IPTABLES_LINKS = {}
for fam in ("iptables", "ip6tables"):
    for suffix in ("", "-restore", "-save"):
        IPTABLES_LINKS["/usr/sbin/%s-nft%s" % (fam, suffix)] = "xtables-nft-multi"
        IPTABLES_LINKS["/usr/sbin/%s-legacy%s" % (fam, suffix)] = "xtables-legacy-multi"
        # `iptables` is the nft backend, as on Debian 12 and current distros.
        IPTABLES_LINKS["/usr/sbin/%s%s" % (fam, suffix)] = "xtables-nft-multi"

# The xtables modules wisp-iptables.sh's rules load, on both backends and
# both families (seen with LD_DEBUG=files over every flag): -m tcp,
# -m owner, -j REDIRECT (a link to the NAT module), and the standard
# targets (RETURN, jumps to WISP_ chains).
XT_MODULES = ["libxt_tcp.so", "libxt_owner.so", "libxt_NAT.so", "libxt_standard.so"]
XT_LINKS = {"libxt_REDIRECT.so": "libxt_NAT.so"}

# Debian 12 is merged-/usr: these are links, as there.
ROOT_LINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib",
              "/lib64": "usr/lib64", "/var/run": "../run"}

ETC = {
    "/etc/passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                   "wisp-proxy:x:%d:%d:wisp-proxy:/nonexistent:/usr/sbin/nologin\n"
                   "wisp-agent:x:%d:%d:wisp-agent:/var/lib/wisp:/usr/sbin/nologin\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                   % (PROXY_UID, PROXY_UID, AGENT_UID, AGENT_UID),
    "/etc/group": "root:x:0:\nwisp-proxy:x:%d:\nwisp-agent:x:%d:\nnogroup:x:65534:\n"
                  % (PROXY_UID, AGENT_UID),
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}

# Directories with an owner of their own. A runtime that ignores fsGroup
# (podman, Docker) gives a fresh named volume the image directory's owner
# and mode: the agent's state dir (a PersistentVolumeClaim) and socket dir
# (an emptyDir) must be the agent's, the proxy's --svid-cache dir the
# proxy's. (Kubernetes makes emptyDirs world-writable anyway.)
DIRS = {
    "/tmp": (0, 0, 0o1777),
    "/var/lib/wisp": (AGENT_UID, AGENT_UID, 0o750),
    "/run/wisp": (AGENT_UID, AGENT_UID, 0o755),
    "/run/wisp/cache": (PROXY_UID, PROXY_UID, 0o700),
}

LDD_LINE = re.compile(r"^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$")


def fail(msg):
    sys.stderr.write("oci_image: %s\n" % msg)
    sys.exit(1)


def canonical(path):
    """The path with its directory's links resolved (merged-/usr), the file
    name kept: /lib/x86_64-linux-gnu/libev.so.4 -> /usr/lib/.../libev.so.4."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def needed_libs(elf):
    """The shared libraries |elf| loads, as ldd resolves them here."""
    out = subprocess.run(["ldd", elf], capture_output=True, text=True)
    if out.returncode != 0:
        fail("ldd %s: %s" % (elf, (out.stderr or out.stdout).strip()))
    libs = []
    for line in out.stdout.splitlines():
        if "not found" in line:
            fail("%s: a library is missing: %s" % (elf, line.strip()))
        m = LDD_LINE.match(line)
        if m:
            libs.append(m.group(1))
    return libs


class Layer:
    """The image's files: image path -> entry, written sorted."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.entries = {}

    def _parents(self, path):
        parent = os.path.dirname(path)
        while parent != "/" and parent not in self.entries:
            self.entries[parent] = ("dir", None, 0, 0, 0o755)
            parent = os.path.dirname(parent)

    def add_file(self, path, source, mode):
        real = os.path.realpath(source)
        if not os.path.isfile(real):
            fail("%s: not found (for %s)" % (source, path))
        self._parents(path)
        self.entries[path] = ("file", real, 0, 0, mode)

    def add_bytes(self, path, data, mode=0o644):
        self._parents(path)
        self.entries[path] = ("bytes", data.encode(), 0, 0, mode)

    def add_link(self, path, target):
        self._parents(path)
        self.entries[path] = ("link", target, 0, 0, 0o777)

    def add_dir(self, path, uid, gid, mode):
        self._parents(path)
        self.entries[path] = ("dir", None, uid, gid, mode)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for path in sorted(self.entries):
                kind, src, uid, gid, mode = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.uid, info.gid, info.mode, info.mtime = uid, gid, mode, self.epoch
                info.uname = info.gname = ""
                data = None
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                elif kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, src
                else:
                    if kind == "file":
                        with open(src, "rb") as f:
                            data = f.read()
                    else:
                        data = src
                    info.size = len(data)
                t.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def add_elf_with_libs(layer, path, source, mode, libs):
    """|source| at |path|; its libraries are added to the set |libs|."""
    layer.add_file(path, source, mode)
    for lib in needed_libs(source):
        libs.add(lib)


def add_libs(layer, libs):
    """Each library at its canonical path (ld.so's default search path, or
    the RUNPATH's android directory)."""
    for lib in sorted(libs):
        layer.add_file(canonical(lib), lib, 0o755 if "ld-linux" in lib else 0o644)


def check_links(layer):
    for path in layer.entries:
        parent = os.path.dirname(path)
        if parent != "/" and layer.entries.get(parent, ("dir",))[0] != "dir":
            fail("%s: its directory %s is a link in the image" % (path, parent))


def wisp_layer(a):
    layer = Layer(a.epoch)
    libs = set()
    for name, src in (("wisp-proxy", a.proxy), ("wisp-agent", a.agent), ("wispctl", a.wispctl)):
        with open(src, "rb") as f:
            if b"__asan_init" in f.read():
                fail("%s is built with --config=asan: the image holds the optimized build" % src)
        add_elf_with_libs(layer, "/usr/local/bin/" + name, src, 0o755, libs)
    layer.add_file("/usr/local/bin/wisp-iptables.sh", a.iptables_script, 0o755)
    for tool in TOOLS + IPTABLES_BINS:
        add_elf_with_libs(layer, tool, tool, 0o755, libs)
    for link, target in list(TOOL_LINKS.items()) + list(IPTABLES_LINKS.items()):
        layer.add_link(link, target)
    for mod in XT_MODULES:
        add_elf_with_libs(layer, XTABLES + "/" + mod, XTABLES + "/" + mod, 0o644, libs)
    for link, target in XT_LINKS.items():
        layer.add_link(XTABLES + "/" + link, target)
    add_libs(layer, libs)
    for path, text in ETC.items():
        layer.add_bytes(path, text)
    for path, (uid, gid, mode) in DIRS.items():
        layer.add_dir(path, uid, gid, mode)
    for path, target in ROOT_LINKS.items():
        layer.add_link(path, target)
    layer.add_dir("/usr/lib64", 0, 0, 0o755)
    check_links(layer)
    return layer


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def write_image(out, name, layer, config, labels):
    """Writes the OCI archive |out| of one |layer|, image config fields
    |config| (User, Env, Cmd, ...) and |labels|; returns a dict of the
    digests and sizes."""
    layer_tar = layer.tar()
    layer_gz = gzip_bytes(layer_tar)
    created = datetime.datetime.fromtimestamp(layer.epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = dict(labels, **{"org.opencontainers.image.created": created})
    config_blob = canonical_json({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": dict(config, Labels=labels),
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]},
        "history": [{"created": created, "created_by": "deploy/image/oci_image.py"}],
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer_gz), "size": len(layer_gz)}],
    })
    # The name: containerd's import (kind load image-archive, ctr import)
    # and podman load read the whole of it from io.containerd.image.name;
    # the OCI image-spec's ref.name is the tag alone.
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"org.opencontainers.image.ref.name": tag,
                                       "io.containerd.image.name": name}}],
    })
    blobs = {digest(b): b for b in (layer_gz, config_blob, manifest)}
    write_archive(out, layer.epoch, index, blobs)
    return {"manifest": digest(manifest), "image-id": digest(config_blob),
            "size": len(layer_tar), "gzipped": len(layer_gz)}


def write_archive(path, epoch, index, blobs):
    files = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for d, b in blobs.items():
        files["blobs/sha256/" + d.split(":", 1)[1]] = b
    tmp = path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in ["blobs", "blobs/sha256"] + sorted(files):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            if name in files:
                info.mode, info.size = 0o644, len(files[name])
                t.addfile(info, io.BytesIO(files[name]))
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description="Writes the wisp image as an OCI archive.")
    for flag in ("--out", "--name", "--version", "--revision", "--proxy", "--agent", "--wispctl",
                 "--iptables-script"):
        p.add_argument(flag, required=True)
    p.add_argument("--epoch", type=int, required=True, help="every timestamp (SOURCE_DATE_EPOCH)")
    p.add_argument("--source", default="", help="the source repository's URL (label; none if empty)")
    p.add_argument("--licenses", default="", help="an SPDX license expression (label; none if empty)")
    a = p.parse_args()
    labels = {
        "org.opencontainers.image.title": "wisp",
        "org.opencontainers.image.description":
            "wisp-proxy, wisp-agent, wispctl and wisp-iptables.sh (mTLS sidecar with SPIFFE IDs)",
        "org.opencontainers.image.version": a.version,
        "org.opencontainers.image.revision": a.revision,
    }
    for key, value in (("source", a.source), ("licenses", a.licenses)):
        if value:
            labels["org.opencontainers.image." + key] = value
    config = {"User": "%d:%d" % (PROXY_UID, PROXY_UID), "Env": ["PATH=" + PATH_ENV],
              "Cmd": ["wisp-proxy", "--help"], "WorkingDir": "/"}
    r = write_image(a.out, a.name, wisp_layer(a), config, labels)
    print("name %s" % a.name)
    print("manifest %s" % r["manifest"])
    print("image-id %s" % r["image-id"])
    print("size %d bytes (%d gzipped), archive %d bytes" % (r["size"], r["gzipped"], os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
