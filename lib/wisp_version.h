/* wisp_version: the release of the wisp binaries, in one place. wispctl
 * inject writes it into the image tag and the wisp.dev/injected annotation. */
#ifndef WISP_VERSION_H
#define WISP_VERSION_H

#define WISP_VERSION "0.1.0"

#endif
