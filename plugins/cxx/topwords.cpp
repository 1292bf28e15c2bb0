// topwords: the distinct words of each task's text, most frequent first, as
// "word count" pairs: "the 3, cat 2, a 1". A plugin written in C++17 behind
// the C ABI, to show what that takes (see plugins/README.md):
//  - the entry symbol has C linkage (ZPIPE_PLUGIN_EXPORT says extern "C"
//    when compiled as C++);
//  - no exception may unwind into the host, a C program: every callback is
//    noexcept and catches everything, std::bad_alloc as ZPIPE_NOMEM and any
//    other exception as ZPIPE_ERROR with its what();
//  - the descriptor is value-initialised and then filled by name, since
//    C++17 has no designated initialisers (ZPIPE_PLUGIN_HEADER uses them);
//    fields a later ABI appends stay zero.
//
// A word is a run of ASCII letters, digits and apostrophes, lower-cased
// (ASCII only; other bytes separate words). Ties in count are broken
// alphabetically (byte order).
//
// Settings (zpipe run --config KEY=VALUE, --plugin-config topwords.KEY=VALUE,
// or ZPIPE_PLUGIN_TOPWORDS_KEY):
//   top  the most pairs per task, 0 = all. Default 0.
#include <zpipe/plugin.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace
{

struct State {
    std::size_t top = 0;
    // Kept between tasks so their buckets and capacity are reused.
    std::unordered_map<std::string, std::uint64_t> counts;
    std::vector<std::pair<std::string_view, std::uint64_t>> sorted;
    std::string out;
};

bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '\'';
}

char lower(unsigned char c)
{
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

void count_words(State &s, const std::uint8_t *p, std::size_t n)
{
    s.sorted.clear(); // views into the keys below
    s.counts.clear();
    std::string word;
    for (std::size_t i = 0; i <= n; i++) {
        if (i < n && is_word_byte(p[i])) {
            word.push_back(lower(p[i]));
        } else if (!word.empty()) {
            s.counts[word]++;
            word.clear();
        }
    }
}

void format_top(State &s)
{
    s.sorted.assign(s.counts.begin(), s.counts.end());
    std::sort(s.sorted.begin(), s.sorted.end(),
              [](const auto &a, const auto &b) {
                  return a.second != b.second ? a.second > b.second
                                              : a.first < b.first;
              });
    std::size_t keep =
        s.top && s.top < s.sorted.size() ? s.top : s.sorted.size();
    s.out.clear();
    for (std::size_t i = 0; i < keep; i++) {
        if (i)
            s.out += ", ";
        s.out += s.sorted[i].first;
        s.out += ' ';
        s.out += std::to_string(s.sorted[i].second);
    }
}

int topwords_init(const zpipe_host_t *host, void **state) noexcept
{
    try {
        auto s = std::make_unique<State>();
        if (const char *v = zpipe_config(host, "top")) {
            std::string text(v);
            std::size_t used = 0;
            unsigned long long n = 0;
            try {
                n = std::stoull(text, &used, 10);
            } catch (const std::exception &) {
                used = 0; // not a number, or out of range
            }
            if (text.empty() || text[0] < '0' || text[0] > '9' ||
                used != text.size() || n > 1000000) {
                std::string msg =
                    "setting top=" + text + ": expected 0 (all) to 1000000";
                return zpipe_init_fail(host, msg.c_str());
            }
            s->top = static_cast<std::size_t>(n);
        }
        *state = s.release();
        return ZPIPE_OK;
    } catch (const std::bad_alloc &) {
        return ZPIPE_NOMEM;
    } catch (const std::exception &e) {
        return zpipe_init_fail(host, e.what());
    } catch (...) {
        return zpipe_init_fail(host, "unknown C++ exception");
    }
}

int topwords_process(void *state, zpipe_call_t *call) noexcept
{
    auto &s = *static_cast<State *>(state);
    try {
        count_words(s, call->input, call->input_len);
        format_top(s);
    } catch (const std::bad_alloc &) {
        return zpipe_fail(call, ZPIPE_NOMEM, "out of memory");
    } catch (const std::exception &e) {
        return zpipe_fail(call, ZPIPE_ERROR, e.what());
    } catch (...) {
        return zpipe_fail(call, ZPIPE_ERROR, "unknown C++ exception");
    }
    if (zpipe_append(call, s.out.data(), s.out.size()) < 0)
        return zpipe_fail(call, ZPIPE_ERROR, "output too large");
    return ZPIPE_OK;
}

void topwords_fini(void *state) noexcept
{
    delete static_cast<State *>(state);
}

// Value-initialised ({} zeroes every field, including any a later ABI
// appends), then named: C++17 has no designated initialisers.
zpipe_plugin_t make_descriptor() noexcept
{
    zpipe_plugin_t d{};
    d.struct_size = sizeof d;
    d.abi_major = ZPIPE_ABI_MAJOR;
    d.abi_minor = ZPIPE_ABI_MINOR;
    d.name = "topwords";
    d.version = "1.0";
    d.description = "distinct words by count, then alphabetically, as "
                    "\"word count\" pairs (C++; --config top=N)";
    d.init = topwords_init;
    d.process = topwords_process;
    d.fini = topwords_fini;
    return d;
}

const zpipe_plugin_t topwords_plugin = make_descriptor();

} // namespace

ZPIPE_PLUGIN_EXPORT(topwords_plugin)
