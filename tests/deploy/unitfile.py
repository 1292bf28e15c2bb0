"""Reads systemd unit files and environment files the way systemd does, as
far as zpipe's units use them, so a test can run a unit's ExecStart= as a
plain process with the environment, user, umask and state directories
systemd would give it (systemd.syntax(7), systemd.unit(5) "Specifiers",
systemd.service(5) "Command lines", systemd.exec(5) "EnvironmentFile=").

Anything outside that subset (an unknown specifier, an unset variable in
a command line, a quote left open) raises ValueError rather than being
guessed at: a test built on this fails instead of running something the
unit would not."""
import re

# Settings that reset to empty on an empty assignment and otherwise
# accumulate (systemd.exec(5)); every other key keeps its last value.
LISTS = {"Environment", "EnvironmentFile", "StateDirectory", "ExecStart",
         "ExecStartPre", "ExecStartPost", "ExecStop", "SystemCallFilter",
         "RestrictAddressFamilies", "ReadWritePaths", "ReadOnlyPaths",
         "After", "Wants", "Requires", "WantedBy", "RestartPreventExitStatus",
         "CapabilityBoundingSet", "AmbientCapabilities",
         "SuccessExitStatus"}


class Unit:
    """One unit file: sections of key -> value (str) or list of values."""

    def __init__(self, path, name=None):
        self.path = path
        self.name = name or path.rsplit("/", 1)[-1]
        self.sections = {}
        with open(path, encoding="utf-8") as f:
            self._parse(f.read())

    def _parse(self, text):
        section = None
        logical = ""
        for raw in text.split("\n"):
            line = raw.strip()
            if not logical and (not line or line[0] in "#;"):
                continue
            if line.endswith("\\"):
                logical += line[:-1] + " "
                continue
            line, logical = logical + line, ""
            if line.startswith("[") and line.endswith("]"):
                section = self.sections.setdefault(line[1:-1], {})
                continue
            if section is None or "=" not in line:
                raise ValueError("%s: not a setting: %r" % (self.path, line))
            key, value = (s.strip() for s in line.split("=", 1))
            if key in LISTS:
                if value == "":
                    section[key] = []
                else:
                    section.setdefault(key, []).append(value)
            else:
                section[key] = value

    def get(self, section, key, default=None):
        return self.sections.get(section, {}).get(key, default)

    def service(self, key, default=None):
        return self.get("Service", key, default)


def instance_of(unit_name):
    """'zpipe-worker@9601.service' -> ('zpipe-worker', '9601')."""
    prefix = unit_name.rsplit(".", 1)[0]
    if "@" in prefix:
        p, i = prefix.split("@", 1)
        return p, i
    return prefix, ""


def specifiers(unit_name, host, state_root, runtime_root="/run"):
    """The %-specifiers a system unit named unit_name sees (the subset
    zpipe's units may use)."""
    prefix, instance = instance_of(unit_name)
    return {"i": instance, "I": instance, "n": unit_name,
            "N": unit_name.rsplit(".", 1)[0], "p": prefix, "P": prefix,
            "H": host, "l": host.split(".")[0], "S": state_root,
            "t": runtime_root, "%": "%"}


def expand_specifiers(s, spec):
    def one(m):
        c = m.group(1)
        if c not in spec:
            raise ValueError("unsupported specifier %%%s in %r" % (c, s))
        return spec[c]
    return re.sub(r"%(.)", one, s)


def split_words(s):
    """Splits a value into words as systemd.syntax(7) says: whitespace
    separates, "double" and 'single' quotes group, and C-style backslash
    escapes in and out of quotes."""
    words, cur, i, have = [], [], 0, False
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'",
               " ": " ", "s": " ", "$": "$"}
    while i < len(s):
        c = s[i]
        if c in " \t":
            if have:
                words.append("".join(cur))
                cur, have = [], False
            i += 1
        elif c in "\"'":
            end = i + 1
            have = True
            while True:
                if end >= len(s):
                    raise ValueError("unterminated quote in %r" % s)
                if s[end] == "\\" and end + 1 < len(s):
                    cur.append(escapes.get(s[end + 1], s[end + 1]))
                    end += 2
                    continue
                if s[end] == c:
                    break
                cur.append(s[end])
                end += 1
            i = end + 1
        elif c == "\\" and i + 1 < len(s):
            cur.append(escapes.get(s[i + 1], s[i + 1]))
            have = True
            i += 2
        else:
            cur.append(c)
            have = True
            i += 1
    if have:
        words.append("".join(cur))
    return words


def read_env_file(path):
    """KEY=VALUE lines as EnvironmentFile= reads them: # and ; comments,
    blank lines skipped, a value in quotes unquoted, backslash at the end
    of a line continues it."""
    env = {}
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", "")
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if "=" not in line:
            raise ValueError("%s: not KEY=VALUE: %r" % (path, line))
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", key):
            raise ValueError("%s: bad variable name %r" % (path, key))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env


def environment(unit, spec, env_file_path=lambda p: p):
    """The variables the unit's process gets from Environment= (specifiers
    expanded) and then EnvironmentFile= (later files win; '-' marks a file
    that may be missing). env_file_path maps a file's path in the unit to
    where the test keeps it. Returns (env, [files read])."""
    env, read = {}, []
    for value in unit.service("Environment", []):
        for word in split_words(expand_specifiers(value, spec)):
            key, _, v = word.partition("=")
            env[key] = v
    for value in unit.service("EnvironmentFile", []):
        optional = value.startswith("-")
        path = env_file_path(expand_specifiers(value.lstrip("-"), spec))
        try:
            env.update(read_env_file(path))
            read.append(path)
        except FileNotFoundError:
            if not optional:
                raise
    return env, read


def _expand_vars(word, env, alone):
    """${VAR} in a word; $VAR only as a whole word (then split on
    whitespace), as systemd.service(5) says. An unset variable is an
    error here (systemd would pass an empty string)."""
    def lookup(name):
        if name not in env:
            raise ValueError("command line uses unset variable %s" % name)
        return env[name]
    m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
    if alone and m:
        return lookup(m.group(1)).split()
    return [re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                   lambda mm: lookup(mm.group(1)), word)]


def command_line(unit, key, spec, env):
    """The argv of the unit's only `key` (ExecStart) command: specifiers
    and variables expanded, the '-@:+!' prefixes refused (zpipe's units
    use none)."""
    values = unit.service(key, [])
    if len(values) != 1:
        raise ValueError("%s: want one %s=, have %d" % (unit.name, key,
                                                        len(values)))
    raw = values[0]
    if raw[:1] in "-@:+!":
        raise ValueError("%s: prefix %r not handled" % (unit.name, raw[0]))
    argv = []
    for word in split_words(expand_specifiers(raw, spec)):
        argv.extend(_expand_vars(word, env, alone=True))
    if not argv or not argv[0].startswith("/"):
        raise ValueError("%s: %s must start with an absolute path: %r"
                         % (unit.name, key, argv))
    return argv


def state_directories(unit):
    """StateDirectory= entries, relative to /var/lib."""
    out = []
    for value in unit.service("StateDirectory", []):
        out.extend(split_words(value))
    return out
