/*
 * An unmodified program that knows nothing of MPTCP: it creates one
 * socket(AF_INET, SOCK_STREAM, 0) and prints its SO_PROTOCOL (262 = MPTCP,
 * 6 = TCP) or the errno. xtask builds it dynamically and statically linked.
 *
 *   socket-probe            print, exit 0
 *   socket-probe N          print, exit N
 *   socket-probe sleep S    print, then sleep S seconds
 *   socket-probe pid        print, then its pid as pid=N
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		printf("errno=%d\n", errno);
		return 3;
	}
	int protocol = -1;
	socklen_t len = sizeof(protocol);
	getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
	printf("protocol=%d\n", protocol);
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "pid") == 0)
		printf("pid=%d\n", (int)getpid());
	else if (argc > 2 && strcmp(argv[1], "sleep") == 0)
		sleep(atoi(argv[2]));
	else if (argc > 1)
		return atoi(argv[1]);
	return 0;
}
