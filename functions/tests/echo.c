/*
 * echo — shows exactly what the host passed in.
 *
 * Output: stdout = stdin copied byte for byte;
 *         stderr = each argv element after argv[0] on its own line, then
 *         each environment variable as "KEY=VALUE" on its own line, in the
 *         order the host provides them.
 * Exit code 0 (1 on an I/O error).
 * Example: stdin "abc", args ["echo", "x", "y z"], env {A=1}
 *          -> stdout "abc", stderr "x\ny z\nA=1\n".
 */
#include <stdio.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    /* static: wasm-ld's default shadow stack is only 64 KiB and has no
     * guard, so a 64 KiB local would silently overwrite static data. */
    static char buf[65536];
    ssize_t got;
    while ((got = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < got; ) {
            ssize_t put = write(1, buf + off, (size_t)(got - off));
            if (put <= 0) return 1;
            off += put;
        }
    }
    if (got < 0) return 1;

    for (int i = 1; i < argc; i++) fprintf(stderr, "%s\n", argv[i]);
    for (char **e = environ; e && *e; e++) fprintf(stderr, "%s\n", *e);
    return fflush(stderr) == 0 ? 0 : 1;
}
