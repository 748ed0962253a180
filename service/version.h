/* version.h -- LOCKSERVICE_VERSION, the release this binary is ("2.0.0").
 *
 * It is written in one place only, the file VERSION at the top of the tree:
 * the Makefile reads it into -DLOCKSERVICE_VERSION, the Debian package
 * (packaging/debian/build-deb) takes its version from the same file, and
 * tests/integration/test_version.c checks that --version, the startup log
 * line and the served openapi.yaml say the same. Include this header for
 * the macro rather than spelling a version anywhere. */
#ifndef LOCKSERVICE_VERSION_H
#define LOCKSERVICE_VERSION_H

/* Only a build that bypasses the Makefile (a fuzz target compiled on its
 * own) gets here; it says so rather than claim a release. */
#ifndef LOCKSERVICE_VERSION
#define LOCKSERVICE_VERSION "unknown"
#endif

#endif
