/*
 * An unmodified program that knows nothing of MPTCP: it creates one
 * socket(AF_INET, SOCK_STREAM, 0) and prints its SO_PROTOCOL (262 = MPTCP,
 * 6 = TCP) or the errno. xtask builds it dynamically and statically linked.
 *
 *   socket-probe            print, exit 0
 *   socket-probe N          print, exit N
 *   socket-probe sleep S    print, then sleep S seconds
 *   socket-probe pid        print, then its pid as pid=N
 *   socket-probe connect P  print, then connect to 127.0.0.1:P and print
 *                           connect=ok or connect=errno N
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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
	else if (argc > 2 && strcmp(argv[1], "connect") == 0) {
		struct sockaddr_in addr = { .sin_family = AF_INET };
		addr.sin_port = htons(atoi(argv[2]));
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			printf("connect=ok\n");
		else
			printf("connect=errno %d\n", errno);
	} else if (argc > 2 && strcmp(argv[1], "sleep") == 0)
		sleep(atoi(argv[2]));
	else if (argc > 1)
		return atoi(argv[1]);
	return 0;
}
