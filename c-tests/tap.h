/* Minimal TAP producer for `meson test` (protocol: 'tap'). */
#ifndef VCP_TAP_H
#define VCP_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n;
static int tap_failed;

#define TAP_OK(cond, ...) \
    do { \
        int tap_pass_ = (cond) ? 1 : 0; \
        ++tap_n; \
        if (tap_pass_) { \
            printf("ok %d - ", tap_n); \
        } else { \
            ++tap_failed; \
            printf("not ok %d - ", tap_n); \
        } \
        printf(__VA_ARGS__); \
        printf("\n"); \
        if (!tap_pass_) \
            printf("# failed at %s:%d\n", __FILE__, __LINE__); \
    } while (0)

#define TAP_DONE() (printf("1..%d\n", tap_n), tap_failed ? EXIT_FAILURE : EXIT_SUCCESS)

/* Reads DIR/NAME into a malloc'ed NUL-terminated buffer; NULL if it cannot. */
static inline char *
tap_read_file(const char *dir, const char *name)
{
    char path[4096];
    FILE *fp;
    long len;
    char *buf;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(fp = fopen(path, "rb")))
        return NULL;
    if (fseek(fp, 0, SEEK_END) < 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) < 0) {
        fclose(fp);
        return NULL;
    }
    buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, fp) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[len] = '\0';
    fclose(fp);
    return buf;
}

/* The test data folder given as argv[1]; exits with a usage message without it. */
static inline const char *
tap_datadir(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA_DIR\n", argv[0]);
        exit(EXIT_FAILURE);
    }
    return argv[1];
}

/* The last error's code, or 0. */
static inline int
tap_err_code(void)
{
    const vcp_error *err = vcp_last_error();
    return err ? err->code : 0;
}

/* Whether the last error's message equals MSG. */
static inline int
tap_err_is(int code, const char *msg)
{
    const vcp_error *err = vcp_last_error();
    if (!err) {
        printf("# no error set\n");
        return 0;
    }
    if (err->code != code || strcmp(err->message, msg) != 0) {
        printf("# got code %d message '%s'\n", err->code, err->message);
        return 0;
    }
    return 1;
}

#endif /* VCP_TAP_H */
