/* echo: returns the payload unchanged. The smallest complete plugin, and
 * the overhead benchmark's task. */
#include <zpipe/plugin.h>

static int echo_process(void *state, zpipe_call_t *call)
{
    (void)state;
    if (zpipe_append(call, call->input, call->input_len) < 0)
        return zpipe_fail(call, ZPIPE_ERROR, "output too large");
    return ZPIPE_OK;
}

static const zpipe_plugin_t echo_plugin = {
    ZPIPE_PLUGIN_HEADER,     .name = "echo",
    .version = "1.0",        .description = "returns the payload unchanged",
    .process = echo_process,
};

ZPIPE_PLUGIN_EXPORT(echo_plugin)
