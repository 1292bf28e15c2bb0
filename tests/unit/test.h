/* test.h: a minimal test harness in the style of nng's NUTS: each test is a
 * small function named for one behaviour, listed in TEST_LIST at the end of
 * the file. Run all, or one by name: ./test_codec test_decode_rejects_garbage
 */
#ifndef ZP_TEST_H
#define ZP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case_t;

extern int test_failures;
int test_failures = 0;

#define TEST_CHECK_(cond, text)                                                \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    text);                                                     \
            test_failures++;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)

#define TEST_CHECK(cond) TEST_CHECK_(cond, #cond)
#define TEST_EQ_INT(a, b)                                                      \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_) {                                                        \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n",      \
                    __FILE__, __LINE__, #a, a_, #b, b_);                       \
            test_failures++;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)
#define TEST_EQ_STR(a, b)                                                      \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                               \
            fprintf(stderr, "  %s:%d: %s is \"%s\", expected \"%s\"\n",        \
                    __FILE__, __LINE__, #a, a_ ? a_ : "(null)",                \
                    b_ ? b_ : "(null)");                                       \
            test_failures++;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)
/* err contains needle (a refusal reason). */
#define TEST_CONTAINS(err, needle)                                             \
    do {                                                                       \
        if (!strstr((err), (needle))) {                                        \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n",       \
                    __FILE__, __LINE__, (err), (needle));                      \
            test_failures++;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)

/* Whether text (NUL-terminated) holds line as a whole line: a metric
 * sample in a /metrics rendering, say. */
static inline int test_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

#define TEST_MAIN(list)                                                        \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        int ran = 0, failed = 0;                                               \
        for (const test_case_t *t = (list); t->name; t++) {                    \
            if (argc > 1 && strcmp(argv[1], t->name) != 0)                     \
                continue;                                                      \
            int before = test_failures;                                        \
            t->fn();                                                           \
            ran++;                                                             \
            int bool_ok_ = test_failures == before;                            \
            printf("%s %s\n", bool_ok_ ? "ok  " : "FAIL", t->name);            \
            failed += !bool_ok_;                                               \
        }                                                                      \
        printf("%d passed, %d failed\n", ran - failed, failed);                \
        return failed || ran == 0 ? 1 : 0;                                     \
    }

#endif
