/* notify.h -- tell systemd how the service is doing (sd_notify(3)'s
 * protocol, without libsystemd). */
#ifndef LOCKSERVICE_NOTIFY_H
#define LOCKSERVICE_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", newline-separated assignments) as
 * one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET: a path, or
 * "@name" for the abstract namespace. Without $NOTIFY_SOCKET (not started
 * by systemd, or a unit that is not Type=notify) it does nothing. Returns 0
 * when sent or not asked for; -1 when the socket is unusable, after a
 * warn line (the service keeps serving: systemd times the start out). */
int notify_systemd(const char *state);

#endif
