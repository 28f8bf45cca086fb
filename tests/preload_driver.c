/* preload_driver.c - owns the driver of the misuse and malformed-environment
 * tests (docs/DESIGN.md: Options, Bad input): runs one helper program under
 * LD_PRELOAD=libhakmem.so as a child and asserts its exact stderr, its stdout
 * and how it ended.
 *
 * preload_driver --preload LIB [--env NAME=VALUE]... [--stderr LINE]
 *                [--out LINE]... (--signal NUM | --exit NUM) -- PROG [ARG]...
 *
 * --stderr LINE  the child's whole stderr must be exactly LINE and a newline
 *                (without --stderr it must be empty).  "%P" in LINE stands for
 *                the first line of the child's stdout: the pointer the child
 *                printed with printf("%p") before misusing it.
 * --out LINE     the following stdout lines (after the pointer line when %P
 *                is used), exactly and in order; no other lines may follow.
 * --signal NUM   the child must die by signal NUM (6: SIGABRT).
 * --exit NUM     the child must exit with status NUM.
 * The child runs with core dumps off and a 20 s alarm as a deadlock guard. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXV 32

static void fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "preload_driver: FAIL: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

static char *slurp(FILE *f) {
    if (fseek(f, 0, SEEK_END) != 0)
        fail("%s%s", "cannot seek a capture file", "");
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
        fail("%s%s", "cannot read a capture file", "");
    s[n] = '\0';
    return s;
}

/* Replace the first %P of tmpl with ptr. */
static char *expand(const char *tmpl, const char *ptr) {
    const char *at = strstr(tmpl, "%P");
    size_t n = strlen(tmpl) + (ptr ? strlen(ptr) : 0) + 2;
    char *s = malloc(n);
    if (!s)
        fail("%s%s", "out of memory", "");
    if (!at) {
        snprintf(s, n, "%s\n", tmpl);
        return s;
    }
    snprintf(s, n, "%.*s%s%s\n", (int)(at - tmpl), tmpl, ptr, at + 2);
    return s;
}

static int is_pointer(const char *s) {
    if (strncmp(s, "0x", 2) != 0 || !s[2])
        return 0;
    for (s += 2; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    const char *lib = NULL, *want_err = NULL, *envs[MAXV], *outs[MAXV];
    int nenv = 0, nout = 0, want_sig = -1, want_exit = -1, i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            fail("option %s needs a value%s", a, "");
        if (strcmp(a, "--preload") == 0)
            lib = argv[++i];
        else if (strcmp(a, "--env") == 0 && nenv < MAXV)
            envs[nenv++] = argv[++i];
        else if (strcmp(a, "--stderr") == 0)
            want_err = argv[++i];
        else if (strcmp(a, "--out") == 0 && nout < MAXV)
            outs[nout++] = argv[++i];
        else if (strcmp(a, "--signal") == 0)
            want_sig = atoi(argv[++i]);
        else if (strcmp(a, "--exit") == 0)
            want_exit = atoi(argv[++i]);
        else
            fail("unknown option %s%s", a, "");
    }
    if (!lib || i >= argc || (want_sig < 0) == (want_exit < 0))
        fail("usage: preload_driver --preload LIB ... (--signal N | --exit N) -- PROG ARGS%s%s",
             "", "");
    if (access(lib, R_OK) != 0)
        fail("library %s not readable%s", lib, "");

    FILE *out = tmpfile(), *err = tmpfile();
    if (!out || !err)
        fail("%s%s", "tmpfile failed", "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail("%s%s", "fork failed", "");
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        for (int k = 0; k < nenv; k++)
            putenv((char *)envs[k]);
        setenv("LD_PRELOAD", lib, 1);
        alarm(20);
        execv(argv[i], &argv[i]);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        fail("%s%s", "waitpid failed", "");
    char *sout = slurp(out), *serr = slurp(err);
    fprintf(stderr, "---- child stdout ----\n%s---- child stderr ----\n%s----\n", sout, serr);

    char status_s[64];
    if (WIFSIGNALED(status))
        snprintf(status_s, sizeof status_s, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(status_s, sizeof status_s, "exit status %d", WEXITSTATUS(status));
    if (want_sig >= 0 && !(WIFSIGNALED(status) && WTERMSIG(status) == want_sig)) {
        char w[32];
        snprintf(w, sizeof w, "%d", want_sig);
        fail("child %s, expected death by signal %s", status_s, w);
    }
    if (want_exit >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == want_exit)) {
        char w[32];
        snprintf(w, sizeof w, "%d", want_exit);
        fail("child %s, expected exit status %s", status_s, w);
    }

    /* stdout: [pointer line] then exactly the --out lines. */
    char *line = sout, *ptr = NULL;
    if (want_err && strstr(want_err, "%P")) {
        char *nl = strchr(line, '\n');
        if (!nl)
            fail("child printed no pointer line on stdout%s%s", "", "");
        *nl = '\0';
        ptr = line;
        if (!is_pointer(ptr))
            fail("first stdout line '%s' is not a %%p pointer%s", ptr, "");
        line = nl + 1;
    }
    for (int k = 0; k < nout; k++) {
        char *nl = strchr(line, '\n');
        if (!nl)
            fail("stdout ended before the line '%s'%s", outs[k], "");
        *nl = '\0';
        if (strcmp(line, outs[k]) != 0)
            fail("stdout line '%s', expected '%s'", line, outs[k]);
        line = nl + 1;
    }
    if (*line)
        fail("unexpected stdout: '%s'%s", line, "");

    char *expect = want_err ? expand(want_err, ptr) : strdup("");
    if (strcmp(serr, expect) != 0)
        fail("stderr was '%s', expected exactly '%s'", serr, expect);
    fprintf(stderr, "preload_driver: ok (%s)\n", status_s);
    return 0;
}
