/* zp_log: stderr logging shared by every zpipe binary. */
#include "zp_log.h"
#include "zp_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *s_program = "zpipe";
static zp_log_level_t s_level = ZP_LOG_INFO;
static bool s_json = false;
static const char *s_names[] = {"error", "warn", "info", "debug"};

void zp_log_init(const char *program)
{
    s_program = program;
}

int zp_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, s_names[i]) == 0) {
            s_level = (zp_log_level_t)i;
            return 0;
        }
    return -1;
}

int zp_log_set_format(const char *name)
{
    if (strcmp(name, "text") == 0)
        s_json = false;
    else if (strcmp(name, "json") == 0)
        s_json = true;
    else
        return -1;
    return 0;
}

const char *zp_log_level_name(void)
{
    return s_names[s_level];
}

const char *zp_log_format_name(void)
{
    return s_json ? "json" : "text";
}

bool zp_log_enabled(zp_log_level_t level)
{
    return level <= s_level;
}

void zp_log(zp_log_level_t level, const char *fmt, ...)
{
    if (level > s_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    /* One write per line so lines from several processes do not interleave. */
    char line[1536];
    int n;
    if (s_json) {
        char esc[1200];
        zp_json_escape(esc, sizeof esc, msg, strlen(msg));
        n = snprintf(
            line, sizeof line,
            "{\"ts\":\"%s.%06ldZ\",\"level\":\"%s\",\"program\":\"%s\","
            "\"pid\":%d,\"msg\":\"%s\"}\n",
            when, ts.tv_nsec / 1000, s_names[level], s_program, (int)getpid(),
            esc);
    } else {
        n = snprintf(line, sizeof line, "%s.%03ldZ %s[%d] %s: %s\n", when,
                     ts.tv_nsec / 1000000, s_program, (int)getpid(),
                     s_names[level], msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

bool zp_log_sampled(uint64_t count)
{
    return count <= 10 || count % 1000 == 0;
}
