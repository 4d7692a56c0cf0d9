/* probe: what a container process sees of a syscall, for tests that need a
 * syscall busybox has no applet for.  Built static by the tests (gcc -static).
 *   probe syscall NR   raw syscall NR with zero arguments: prints "ok" or
 *                      "errno N" (the errno the kernel or a seccomp filter gave)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "syscall") == 0) {
        long r = syscall(strtol(argv[2], NULL, 0), 0, 0, 0, 0, 0, 0);
        if (r < 0)
            printf("errno %d\n", errno);
        else
            printf("ok\n");
        return 0;
    }
    fprintf(stderr, "usage: probe syscall NR\n");
    return 2;
}
