/* wk_shell_send: what the worker's shell sends: hello, credit and
 * heartbeats to the ventilator, results to the sink, and the hooks the
 * runner and the executor call after tasks (wk_shell.h). */
#define _GNU_SOURCE
#include "wk_shell.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <unistd.h>
#include <zmq.h>

/* ---- to the ventilator --------------------------------------------------- */

static int s_send_credit(zp_wk_shell_t *w, uint64_t n)
{
    Zpipe__V1__Credit c = ZPIPE__V1__CREDIT__INIT;
    c.credit = (uint32_t)n;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_CREDIT;
    m.credit = &c;
    if (zp_send(w->tasks, NULL, 0, &m, &w->scratch, 0) < 0) {
        zp_warn("credit to %s: %s", w->cfg->ventilator, zmq_strerror(errno));
        return -1;
    }
    zp_wk_credit_granted(&w->credit, n);
    w->last_sent_us = zp_mono_us();
    return 0;
}

/* Tasks sent now would start at once: in process, or an executor is
 * ready. */
static bool s_can_run(const zp_wk_shell_t *w)
{
    return !w->exec || zp_wk_exec_ready(w->exec);
}

int zp_wk_shell_send_hello(zp_wk_shell_t *w)
{
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    zp_plugins_t *plugins = zp_wk_runner_plugins(w->runner);
    size_t n = zp_plugins_count(plugins);
    char *names[64];
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        names[i] = (char *)zp_plugins_at(plugins, i)->desc.name;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    h.worker_id = w->id;
    h.plugins = names;
    h.n_plugins = n;
    h.window = (uint32_t)w->cfg->window;
    /* No credit before the executor is ready: a task sent to a worker
     * still starting its interpreter would wait there while another
     * worker, ready, idles (a 1-item map took the slower one). */
    h.credit = s_can_run(w) ? (uint32_t)zp_wk_credit_hello(&w->credit) : 0;
    h.host = host;
    h.pid = (uint32_t)getpid();
    h.in_process = !w->isolated;
    h.payload_frames = true; /* big payloads may come as frames of their own */
    h.cluster = (char *)(w->cfg->cluster ? w->cfg->cluster : "");
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HELLO;
    m.hello = &h;
    if (zp_send(w->tasks, NULL, 0, &m, &w->scratch, 0) < 0) {
        zp_error("hello to %s: %s", w->cfg->ventilator, zmq_strerror(errno));
        return -1;
    }
    zp_wk_credit_hello_sent(&w->credit, h.credit);
    w->last_sent_us = zp_mono_us();
    return 0;
}

void zp_wk_shell_send_heartbeat(zp_wk_shell_t *w)
{
    Zpipe__V1__Heartbeat hb = ZPIPE__V1__HEARTBEAT__INIT;
    hb.tasks_done = w->credit.completed;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HEARTBEAT;
    m.heartbeat = &hb;
    if (zp_send(w->tasks, NULL, 0, &m, &w->scratch, ZMQ_DONTWAIT) == 0)
        w->last_sent_us = zp_mono_us();
}

/* Grants the credit wk_credit says is due. */
void zp_wk_shell_grant(void *arg)
{
    zp_wk_shell_t *w = arg;
    if (!w->credit_mode || zp_stopping() || !s_can_run(w))
        return;
    uint64_t n = zp_wk_credit_due(&w->credit);
    if (n)
        s_send_credit(w, n);
}

/* ---- to the sink --------------------------------------------------------- */

/* Sends msg (taken: closed whatever happens) to the sink, n results. */
static int s_send_results(zp_wk_shell_t *w, zmq_msg_t *msg, size_t n)
{
    int rc = 0;
    while (zmq_msg_send(msg, w->results, 0) < 0) {
        if (errno == EINTR && !zp_stopping())
            continue;
        zp_error("results to %s: %s (%zu results not sent)", w->cfg->sink,
                 zmq_strerror(errno), n);
        rc = -1;
        break;
    }
    zmq_msg_close(msg);
    return rc;
}

/* Sends the pending results as one ResultBatch, encoded straight into the
 * message sent. */
int zp_wk_shell_flush_results(zp_wk_shell_t *w)
{
    size_t n = zp_wk_results_count(w->pending);
    if (n == 0)
        return 0;
    zp_wk_batch_info_t info = {
        .worker_id = w->id,
        .window = w->credit_mode ? (uint32_t)w->cfg->window : 0,
        .max_held = (uint32_t)w->credit.max_held,
        .tasks_done = w->credit.completed,
    };
    int rc = -1;
    zmq_msg_t msg;
    size_t len = zp_wk_results_size(w->pending, &info);
    if (zmq_msg_init_size(&msg, len) == 0) {
        zp_wk_results_write(w->pending, &info, zmq_msg_data(&msg));
        rc = s_send_results(w, &msg, n);
    } else
        zp_error("out of memory sending %zu results (%zu bytes)", n, len);
    zp_wk_results_clear(w->pending);
    return rc;
}

void zp_wk_shell_flush_hook(void *arg)
{
    zp_wk_shell_flush_results(arg);
}

/* Sends an executor's result frame to the sink as it is. */
void zp_wk_shell_forward(void *arg, zmq_msg_t *msg, size_t n)
{
    s_send_results(arg, msg, n);
}

void zp_wk_shell_observe(void *arg, uint64_t elapsed_us)
{
    zp_wk_shell_t *w = arg;
    zp_histogram_observe(&w->call_hist, (double)elapsed_us / 1e6, 1);
}

/* In process, after each task: the books, then results and credit when
 * due, and a heartbeat when one is due in a long batch. */
bool zp_wk_shell_task_done(void *arg, const zp_wk_done_t *d, size_t payload_len,
                           uint64_t end)
{
    zp_wk_shell_t *w = arg;
    zp_wk_credit_done(&w->credit, 1);
    zp_wk_credit_observe(&w->credit, d->elapsed_us, payload_len, 1);
    zp_wk_shell_observe(w, d->elapsed_us);
    bool slow = false;
    if (zp_wk_results_due(w->pending, end, 0)) {
        zp_wk_shell_flush_results(w);
        zp_wk_shell_grant(w);
        slow = true;
    }
    if (w->credit_mode &&
        end - w->last_sent_us >= w->cfg->heartbeat_ms * 1000) {
        zp_wk_shell_send_heartbeat(w);
        slow = true;
    }
    return slow;
}
